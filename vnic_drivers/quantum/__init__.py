"""The host's view of the Quantum (Neutron) v2.0 API: port and network facts for the hooks.

- :mod:`.client`: the HTTP client (requests), bounded per call and per hook run;
- :mod:`.auth`: what authenticates a request (noauth, Keystone v2.0 / v3 passwords);
- :mod:`.hook_steps`: what the hooks ask, and what they do with the answer.

Everything here runs on the unprivileged side (the hook process, user vdsm): root never
talks to the network. With ``[quantum] url`` empty (the default) nothing here is imported.
"""


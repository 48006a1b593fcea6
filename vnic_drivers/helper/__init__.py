"""The resident privileged helper, ``quantum-vnic-helper``, and its clients.

- :mod:`.protocol`: the framing on the Unix socket (newline-delimited JSON, and the binary
  answer of ``run_hook``) and its limits;
- :mod:`.client`: how a hook's driver asks for one privileged operation (stdlib only,
  no lxml/pyroute2/ovs); :class:`vnic_drivers.host.HelperHost` uses it;
- :mod:`.hook_client`: how an ``after_*`` hook process has the helper run the whole hook
  point for it, before it has read any config (no ``re``, ``json``, ``configparser``);
- :mod:`.hook_runner`: the helper's side of that;
- :mod:`.server`: the root daemon systemd starts on the first connection
  (``quantum-vnic-helper.socket``); it runs the operations of
  :mod:`vnic_drivers.host.privileged` through ``privileged.run``, the same validation
  as the sudo entry point, which stays the fallback.
"""

# Where quantum-vnic-helper.socket listens (ListenStream=), and the default of
# [helper] socket. An after_* hook tries this path before it reads any config.
DEFAULT_SOCKET = "/run/quantum-vnic/helper.sock"

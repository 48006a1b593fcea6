"""The resident privileged helper, ``quantum-vnic-helper``, and its client.

- :mod:`.protocol`: the framing on the Unix socket (newline-delimited JSON) and its limits;
- :mod:`.client`: what a hook runs to ask the helper (stdlib only, no lxml/pyroute2/ovs);
- :mod:`.server`: the root daemon systemd starts on the first connection
  (``quantum-vnic-helper.socket``); it runs the operations of
  :mod:`vnic_drivers.host.privileged` through ``privileged.run``, the same validation
  as the sudo entry point, which stays the fallback (:class:`vnic_drivers.host.HelperHost`).
"""

"""The helper's side of ``run_hook``: an ``after_*`` hook point run whole for a hook process.

An ``after_*`` hook (``plug``, ``keep``, ``unplug``; :data:`vnic_drivers.hook_main.HELPER_ACTIONS`)
sends its validated properties (:mod:`.hook_client`). Here they are validated again,
exactly as the hook would (:func:`vnic_drivers.vnic.from_environment`), and the same
:func:`vnic_drivers.hook_main.finish` runs with the same driver, on root's config (the same
``/etc/vdsm/quantum_vnic.conf`` the hook reads) and with the operations run in-process.
What it logs is collected and sent back for the hook's stderr; syslog gets it from here.

Declined (the hook runs it itself) when the step needs what only vdsm has:

- ``[quantum] url`` is set and the action is ``plug``: the Quantum API is asked with
  vdsm's credentials and token cache;
- the driver needs the vNIC's MAC to plug (OVS plug mode ``hook``): the record is in
  vdsm's state dir, and libvirt's answer is the hook's to get.
"""

from .. import base, hook_main, hooking
from .. import vnic as vnic_module
from ..errors import HookError, InputError
from ..log import LOG, stderr_text

# run_hook's arguments -> the VDSM environment names the hook read them from.
ENVIRONMENT = (
    ("port_id", "vnic_id"),
    ("plugin_type", "plugin_type"),
    ("network_id", "network_id"),
    ("security_groups", "security_groups"),
    ("mtu", "mtu"),
    ("vm_id", "vmId"),
)


class Declined(Exception):
    """The hook must run this hook point itself; ``str()`` says why (for the helper's log)."""


def parse(args):
    """``(hook_point, environ)`` from run_hook's *args*; Declined when they are not what
    a hook sends (the hook's own run then says what is wrong)."""
    hook_point = args.get("hook_point")
    if hook_main.HOOK_POINTS.get(hook_point) not in hook_main.HELPER_ACTIONS:
        raise Declined("hook point %r is not one the helper runs" % (hook_point,))
    unknown = set(args) - {"hook_point"} - {key for key, _ in ENVIRONMENT}
    if unknown:
        raise Declined("unknown arguments %s" % ", ".join(sorted(unknown)))
    environ = {"provider_type": vnic_module.PROVIDER_TYPE}
    for key, name in ENVIRONMENT:
        value = args.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise Declined("%s is not a string" % key)
        environ[name] = value
    return hook_point, environ


def _no_mac(vnic):
    # Only plug_needs_mac() drivers ask, and those are declined before they run.
    raise HookError("the MAC of port %s is not known to the helper" % vnic.port_id)


class HookRun:
    """One accepted hook point: its driver, ready to :meth:`run`."""

    def __init__(self, hook_point, environ, config, host):
        self.hook_point = hook_point
        self.action = hook_main.HOOK_POINTS[hook_point]
        self.config = config
        if self.action in hook_main.API_ACTIONS and config.get("quantum", "url"):
            raise Declined("[quantum] url is set: the Quantum API is asked with vdsm's credentials")
        try:
            self.vnic = vnic_module.from_environment(environ, mac=_no_mac,
                                                     default_mtu=config.get("hook", "mtu"))
        except InputError as err:
            raise Declined(str(err)) from None
        self.driver = base.driver_for(self.vnic, config, host)
        if self.action == "plug" and self.driver.plug_needs_mac(self.vnic):
            raise Declined("plugging needs the vNIC's MAC, from vdsm's record or libvirt")

    def bound(self, client_timeout):
        """Whole seconds the hook should wait for the result: the longest agent wait the
        config allows this driver, plus the helper's client timeout."""
        waits = [self.config.get(section, "wait_timeout") for section in ("linux_bridge", "openvswitch")]
        return int(client_timeout + max(waits)) + 1

    def run(self):
        """``(exit code, stderr text)``: what the hook process would have ended with."""
        with LOG.capture() as messages:
            try:
                hook_main.finish(self.action, self.hook_point, self.vnic, self.driver, self.config, LOG)
                code = hooking.EXIT_OK
            except HookError as err:
                LOG.error("%s", err)
                code = err.exit_code if err.exit_code is not None else hook_main.failure_exit_code(self.hook_point)
            except Exception:  # a bug: the traceback goes to the hook's stderr, as it would
                LOG.exception("unexpected failure; please report this with the traceback")
                code = hook_main.failure_exit_code(self.hook_point)
        LOG.to_syslog(self.hook_point, messages)
        return code, stderr_text(self.hook_point, messages)

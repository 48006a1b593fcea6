"""What a hook asks the Quantum API, and what it does with the answers.

Only with ``[quantum] url`` set; :mod:`vnic_drivers.hook_main` calls :func:`complete`
once the properties are validated, and :meth:`ApiSteps.after_plug` after the driver's plug.

===========================  ====================================================
hook action                  asks
===========================  ====================================================
create (before_device_create the port: binding check (``binding:host_id`` is this
/ before_nic_hotplug)        host's binding id, ``binding:vif_type`` not
                             ``binding_failed``); its network id and the network's
                             MTU when no property gave them
prepare (OVS)                the MTU (for the hybrid devices) when no property gave it
plug (Linux Bridge)          the network id when no property gave it (for ``brq…``)
plug at after_device_create  then, with ``active_wait > 0``, polls the port until
/ after_nic_hotplug          ``status`` is ACTIVE, warning when it is not in time
update, keep, unplug         nothing
===========================  ====================================================

A property always wins over the API; the API's MTU wins over ``[hook] mtu``. A lookup that
fails leaves the vNIC as it would be without the API, with one warning line; with
``[quantum] strict = true`` a failed lookup or a binding problem is an error instead
(exit 2 at ``before_*`` points, which stops the VM start or the hot-plug).
"""

import time

from ..binding_host import binding_host_id
from ..errors import HookError, HostError
from . import client as client_module
from ..log import LOG

ACTIVE = "ACTIVE"
WAIT_HOOK_POINTS = ("after_device_create", "after_nic_hotplug")
POLL_FIRST, POLL_MAX = 0.2, 1.0


def complete(vnic, environ, config, hook_point, action, client=None):
    """Fill what the properties left out of *vnic* from the API; check the binding.

    Returns the :class:`ApiSteps` for what comes after the driver's step."""
    steps = ApiSteps(config, hook_point, client)
    steps.complete(vnic, environ, action)
    return steps


class ApiSteps:
    def __init__(self, config, hook_point, client=None):
        self.config = config
        self.hook_point = hook_point
        self.strict = config.get("quantum", "strict")
        self._client = client
        self._failed = False

    @property
    def client(self):
        # Made on first use, inside _lookup: a credentials file the auth refuses is a
        # failed lookup like any other (a warning, or with strict an error).
        if self._client is None:
            self._client = client_module.Client(self.config)
        return self._client

    def _problem(self, message, fix):
        """One warning line, or with strict the error that stops the hook."""
        line = "%s; fix: %s" % (message, fix)
        if self.strict:
            raise HostError(line + " (an error because [quantum] strict = true)")
        LOG.warning("%s", line)

    def _lookup(self, what, method, *args):
        """``client.method(*args)``, or None after one warning (a second failure says
        nothing more)."""
        if self._failed:
            return None
        try:
            return getattr(self.client, method)(*args)
        except client_module.NotFound as err:
            self._failed = True
            self._problem("%s: %s does not exist in Quantum (deleted?)" % (err, what),
                          "check the vNIC profile and the port in the provider; the vNIC is wired "
                          "without the API's facts and no agent will bind it")
        except HookError as err:  # the API, or the auth before it (credentials, Keystone)
            self._failed = True
            self._problem("%s; going on without the API (%s)" % (err, what),
                          "check [quantum] url, auth and credentials, and that the provider is "
                          "up; the vNIC is wired as with the API off")
        return None

    def complete(self, vnic, environ, action):
        # The MTU goes into the XML (create; libvirt sets it on the tap, and a migrating
        # VM's XML carries it) and into hybrid devices (prepare, OVS); plug never needs it.
        uses_mtu = action == "create" or (action == "prepare" and vnic.plugin_type == "OPEN_VSWITCH")
        need_mtu = uses_mtu and not environ.get("mtu", "").strip()
        need_network_id = vnic.network_id is None and (
            need_mtu or (action == "plug" and vnic.plugin_type == "LINUX_BRIDGE"))
        port = None
        if action == "create" or need_network_id:
            port = self._lookup("port %s" % vnic.port_id, "port", vnic.port_id)
        if port is not None:
            if vnic.network_id is None and port.get("network_id"):
                vnic.network_id = port["network_id"]
                LOG.debug("port %s is on network %s (from the API)", vnic.port_id, vnic.network_id)
            if action == "create":
                self.check_binding(vnic, port)
        if need_mtu and vnic.network_id is not None:
            network = self._lookup("network %s" % vnic.network_id, "network", vnic.network_id)
            if network is not None and network.get("mtu"):
                vnic.mtu = network["mtu"]

    def check_binding(self, vnic, port):
        expected, source = binding_host_id(self.config, vnic.plugin_type)
        host_id = port.get("binding:host_id") or ""
        vif_type = port.get("binding:vif_type") or ""
        if host_id != expected:
            self._problem(
                "port %s has binding:host_id=%r but this host's binding id is %r (%s): the "
                "%s agent here will not wire it (binding:vif_type=%s)"
                % (vnic.port_id, host_id, expected, source, vnic.plugin_type, vif_type or "unset"),
                "make them agree: set the agent's host option (or OVS external_ids:system-id) "
                "to what the engine uses, or refresh this host's capabilities in the engine so "
                "its ports get %r" % expected)
        elif vif_type == "binding_failed":
            self._problem(
                "port %s failed to bind (binding:vif_type=binding_failed) on binding:host_id=%r "
                "(this host, %s): Quantum knows no live %s agent with host=%r"
                % (vnic.port_id, host_id, source, vnic.plugin_type, expected),
                "start the %s agent here and check its host option is %r, then re-bind the port "
                "(restart the VM)" % (vnic.plugin_type, expected))

    def after_plug(self, vnic):
        seconds = self.config.get("quantum", "active_wait")
        if seconds > 0 and self.hook_point in WAIT_HOOK_POINTS and not self._failed:
            self.wait_active(vnic, seconds)

    def wait_active(self, vnic, seconds, clock=time.monotonic, sleep=time.sleep):
        """Poll the port until ACTIVE or *seconds* passed (each poll bounded too)."""
        start = clock()
        deadline = start + seconds
        self._lookup("the ACTIVE wait", "extend", seconds)
        if self._failed:
            return None
        pause, status = POLL_FIRST, None
        while True:
            port = self._lookup("port %s" % vnic.port_id, "port", vnic.port_id)
            if port is None:
                return None
            status = port.get("status")
            if status == ACTIVE:
                LOG.info("port %s is ACTIVE after %.1fs", vnic.port_id, clock() - start)
                return status
            left = deadline - clock()
            if left <= 0.05:  # no poll past the bound
                break
            sleep(min(pause, left))
            pause = min(pause * 2, POLL_MAX)
            if clock() >= deadline:
                break
        LOG.warning("port %s is still %s after %gs ([quantum] active_wait): its agent has not "
                    "wired it yet, the guest's link may stay down until it does; fix: check the "
                    "%s agent on this host", vnic.port_id, status, seconds, vnic.plugin_type)
        return status

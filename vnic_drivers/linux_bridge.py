"""LINUX_BRIDGE driver: a ``tap``+port[:11] device the Quantum Linux Bridge agent wires.

XML: the tap target, on VDSM's dummy bridge (mode ``bridge``, libvirt needs a bridge to
attach to) or unattached (mode ``ethernet``, libvirt creates a bare tap). The agent later
finds ``tap…`` and enslaves it to ``brq``+network[:11].

Host, once libvirt made the tap (one privileged operation per hook point, see
:func:`vnic_drivers.host.netlink.linux_bridge_plug`): the tap leaves the dummy bridge,
which the agent cannot enslave it away from, and when the network id is known and the
agent's ``brq`` bridge exists the hook enslaves it there itself, so there is no race
with the agent. Unplug deletes a tap that outlived its device; libvirt deletes the rest.
Both operations take the port and network ids, never device names: the privileged side
derives ``tap…`` and ``brq…`` and moves a tap only off the configured dummy bridge or an
agent bridge.
"""


from . import domxml
from .base import VnicDriver
from .log import LOG



class LinuxBridgeDriver(VnicDriver):
    plugin_type = "LINUX_BRIDGE"

    def rewrite(self, iface, vnic):
        domxml.remove_children(iface, "virtualport")
        if self.config.get("linux_bridge", "mode") == "ethernet":
            domxml.set_type(iface, "ethernet")
            domxml.remove_children(iface, "source")
        else:
            domxml.set_type(iface, "bridge")
            domxml.set_source_bridge(iface, self.config.get("linux_bridge", "dummy_bridge"))
        self.set_tap_and_mtu(iface, vnic)

    def plug(self, vnic):
        # Ids, not device names: the privileged side derives tap… and brq… itself.
        result = self.host.call(
            "linux_bridge_plug",
            port_id=vnic.port_id,
            network_id=vnic.network_id,
            mtu=vnic.mtu,
            wait=self.config.get("linux_bridge", "wait_timeout"),
        )
        if result is None:  # dry run
            return
        bridge = result["bridge"]
        LOG.info("%s", describe_plug(result))
        if result["timed_out"]:
            LOG.warning(
                "%s is not on %s after %ss: the Linux Bridge agent has not wired it yet; "
                "the guest's link stays dead until it does (is the agent running, and does "
                "it know port %s?)",
                vnic.tap, bridge or "a brq bridge", result["waited"], vnic.port_id,
            )

    def unplug(self, vnic):
        result = self.host.call("linux_bridge_unplug", port_id=vnic.port_id)
        if result is None:  # dry run
            return
        if result["deleted"]:
            LOG.info("%s outlived its device: deleted it (it was on %s)",
                     vnic.tap, result["master"] or "no bridge")
        elif result["existed"]:
            LOG.warning("%s exists but is a %s device, not a tap: left alone",
                        vnic.tap, result["kind"] or "plain")
        else:
            LOG.debug("%s is already gone: nothing to remove", vnic.tap)


def describe_plug(result):
    """One line saying what :func:`linux_bridge_plug` changed, for the hook's INFO log."""
    bridge = result["bridge"]
    done = []
    if result["mtu"]:
        done.append("MTU %s -> %s" % tuple(result["mtu"]))
    if result["detached_from"]:
        done.append("detached from %s" % result["detached_from"])
    if result["attached_to"]:
        done.append("attached to %s" % result["attached_to"])
    if result["up"]:
        done.append("brought up")
    if result["attached_to"]:
        where = None  # "attached to" says it all
    elif result["wired"]:
        where = "on %s" % result["master"]
        if result["waited"]:
            where += " (wired by the agent after %ss)" % result["waited"]
    elif bridge is None:
        where = "unattached for the Linux Bridge agent (no network_id property)"
    elif result["bridge_missing"] and result["master"]:
        where = "left on %s (%s does not exist yet)" % (result["master"], bridge)
    elif result["bridge_missing"]:
        where = "unattached for the Linux Bridge agent (%s does not exist yet)" % bridge
    else:
        where = "unattached"
    line = "%s: %s" % (result["tap"], ", ".join(done) or "nothing to change")
    return line if where is None else "%s; %s" % (line, where)

"""OPEN_VSWITCH driver: the vNIC on the integration bridge, keyed by the Quantum port id.

Three wirings, chosen per vNIC from its properties and ``[openvswitch]`` in the config:

=============  ==================================  =====================================
mode           when                                what the host gets
=============  ==================================  =====================================
hybrid         ``security_groups`` set and         qbr+id (Linux bridge, for iptables),
               ``firewall = hybrid`` (default)     veth qvb/qvo, qvo on br-int; the tap
                                                   goes in qbr (``<source bridge=qbr…>``)
virtualport    otherwise, ``plug = virtualport``   libvirt adds the tap to br-int from
               (default)                           ``<virtualport type='openvswitch'>``
hook           otherwise, ``plug = hook``          libvirt makes a bare tap
                                                   (``type='ethernet'``); the hook adds it
                                                   to br-int, as libvirt would
=============  ==================================  =====================================

Hybrid devices are made before libvirt needs them (``prepare``: create, hot-plug, and
the migration destination). After libvirt made the device, ``plug`` attaches the tap
(``hook``) or checks the port is on br-int with the right ``iface-id``, optionally
waiting until the agent moved it off the dead VLAN. ``unplug`` removes every port and
device this driver may have made for the port id, whatever the mode: a config change
between start and stop still leaves nothing behind.

Host operations get the port id, never an OVSDB remote or a bridge: the privileged side
takes ``[openvswitch] ovsdb`` and ``integration_bridge`` from its own config (through
sudo, root's /etc/vdsm/quantum_vnic.conf). Here ``integration_bridge`` only goes into
the XML for libvirt.
"""


from . import domxml, naming
from .base import VnicDriver
from .errors import HostError, InputError
from .log import LOG


HYBRID, VIRTUALPORT, HOOK = "hybrid", "virtualport", "hook"
# What plug mode hook did to the port (host/ovs_plug.attach_tap), for the log line.
ATTACHED = {"added": " (added)", "updated": " (external_ids or MTU corrected in place)",
            "kept": " (already in place: left alone)"}


class OpenVSwitchDriver(VnicDriver):
    plugin_type = "OPEN_VSWITCH"

    def _option(self, name):
        return self.config.get("openvswitch", name)

    def mode(self, vnic):
        if vnic.security_groups and self._option("firewall") == "hybrid":
            return HYBRID
        return self._option("plug")

    def rewrite(self, iface, vnic):
        mode = self.mode(vnic)
        if mode == VIRTUALPORT:
            domxml.set_type(iface, "bridge")
            domxml.set_source_bridge(iface, self._option("integration_bridge"))
            domxml.set_openvswitch_virtualport(iface, vnic.port_id)
        else:
            domxml.remove_children(iface, "virtualport")
            if mode == HYBRID:
                domxml.set_type(iface, "bridge")
                domxml.set_source_bridge(iface, naming.hybrid_names(vnic.port_id)[0])
            else:
                domxml.set_type(iface, "ethernet")
                domxml.remove_children(iface, "source")
        self.set_tap_and_mtu(iface, vnic)

    def _attached_mac(self, vnic, mode):
        if vnic.mac is None:
            raise InputError("the device XML has no <mac address>: %s plugging needs it for the "
                             "port's attached-mac, which the OVS agent requires" % mode)
        return vnic.mac

    def prepare(self, vnic):
        if self.mode(vnic) != HYBRID:
            return
        done = self.host.call("ovs_hybrid_plug", port_id=vnic.port_id, mac=self._attached_mac(vnic, HYBRID),
                              vm_id=vnic.vm_id, mtu=vnic.mtu)
        if done is not None:  # None: a dry run
            # The bridge the privileged side used: its own config's, which the hook does not send.
            LOG.info("hybrid devices for port %s ready, %s on %s", vnic.port_id, done["port"], done["bridge"])

    def plug_needs_mac(self, vnic):
        return self.mode(vnic) == HOOK  # the port's attached-mac

    def plug(self, vnic):
        mode = self.mode(vnic)
        wait = self._option("wait_timeout")
        if mode == HOOK:
            status = self.host.call("ovs_attach_tap", port_id=vnic.port_id,
                                    mac=self._attached_mac(vnic, HOOK), vm_id=vnic.vm_id, mtu=vnic.mtu,
                                    wait=wait)
        else:
            status = self.host.call("ovs_port_status", port_id=vnic.port_id, hybrid=mode == HYBRID, wait=wait)
        if status is not None:  # None: a dry run
            self._report(vnic, mode, status, wait)

    def _report(self, vnic, mode, status, wait):
        where = "port %s on %s" % (status["name"], status["bridge"])
        if not status["on_bridge"]:
            cause = {
                VIRTUALPORT: "libvirt did not add it; check libvirt's log, or set "
                             "[openvswitch] plug = hook where libvirt mishandles "
                             "openvswitch virtualports",
                HYBRID: "the hybrid devices were not made or were removed since; restart the "
                        "vNIC",
                HOOK: "it was removed as soon as it was added",
            }[mode]
            raise HostError("%s: not there%s: %s" % (
                where, " (it is on another bridge)" if status["exists"] else "", cause))
        if status["iface_id"] != vnic.port_id:
            raise HostError("%s has external_ids:iface-id=%s, expected %s: the OVS agent would "
                            "wire it to the wrong Quantum port" % (where, status["iface_id"], vnic.port_id))
        if wait <= 0 or status["wired"]:
            LOG.info("%s is in place for Quantum port %s%s", where, vnic.port_id,
                     ATTACHED.get(status.get("attach"), ""))
            return
        LOG.warning("%s: the OVS agent has not wired it within %gs (VLAN tag %s); the guest "
                    "has no network until it does; is the agent running?",
                    where, wait, "none" if status["tag"] is None else status["tag"])

    def unplug(self, vnic):
        result = self.host.call("ovs_unplug", port_id=vnic.port_id)
        if result is None:
            return
        if result["kept"]:
            LOG.warning("left %s alone: same name as a hybrid device but another kind (or a "
                        "veth paired elsewhere), so not made by quantum-vnic", ", ".join(result["kept"]))
        LOG.info("port %s unplugged (OVS ports removed: %s; devices removed: %s)", vnic.port_id,
                 ", ".join(result["ports"]) or "none", ", ".join(result["devices"]) or "none")

"""LINUX_BRIDGE driver: a ``tap``+port[:11] device the Quantum Linux Bridge agent wires.

XML: the tap target, on VDSM's dummy bridge (mode ``bridge``, libvirt needs a bridge to
attach to) or unattached (mode ``ethernet``, libvirt creates a bare tap). The agent later
finds ``tap…`` and enslaves it to ``brq``+network[:11].
"""

from . import domxml
from .base import VnicDriver


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

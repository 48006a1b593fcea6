"""OPEN_VSWITCH driver: the tap on the integration bridge, keyed by the Quantum port id.

XML (plug mode ``virtualport``): ``<source bridge='br-int'/>`` and
``<virtualport type='openvswitch'>`` with the port id, so libvirt itself adds the OVS
port with the ``external_ids`` (``iface-id``, ``attached-mac``, ``vm-id``) the OVS agent
looks for.
"""

from . import domxml
from .base import VnicDriver


class OpenVSwitchDriver(VnicDriver):
    plugin_type = "OPEN_VSWITCH"

    def rewrite(self, iface, vnic):
        domxml.set_type(iface, "bridge")
        domxml.set_source_bridge(iface, self.config.get("openvswitch", "integration_bridge"))
        domxml.set_openvswitch_virtualport(iface, vnic.port_id)
        self.set_tap_and_mtu(iface, vnic)

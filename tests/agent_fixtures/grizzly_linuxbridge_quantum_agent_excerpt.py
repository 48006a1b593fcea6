# Minimal excerpt of Quantum Grizzly's
# quantum/plugins/linuxbridge/agent/linuxbridge_quantum_agent.py (Copyright 2012 Cisco
# Systems, Inc., Apache License 2.0), for testing agent_patches/grizzly-*.diff: the
# module constants the patch uses and LinuxBridgeManager.add_tap_interface as Grizzly
# ships it; every other line of the file is left out. The full file is not on PyPI.

import os

BRIDGE_NAME_PREFIX = "brq"
TAP_INTERFACE_PREFIX = "tap"
BRIDGE_FS = "/sys/devices/virtual/net/"
BRIDGE_NAME_PLACEHOLDER = "bridge_name"
BRIDGE_INTERFACES_FS = BRIDGE_FS + BRIDGE_NAME_PLACEHOLDER + "/brif/"
DEVICE_NAME_PLACEHOLDER = "device_name"
BRIDGE_PORT_FS_FOR_DEVICE = BRIDGE_FS + DEVICE_NAME_PLACEHOLDER + "/brport"


class LinuxBridgeManager:
    def add_tap_interface(self, network_id, physical_network, vlan_id,
                          tap_device_name):
        """
        If a VIF has been plugged into a network, this function will
        add the corresponding tap device to the relevant bridge
        """
        if not self.device_exists(tap_device_name):
            LOG.debug(_("Tap device: %s does not exist on "
                        "this host, skipped"), tap_device_name)
            return False

        bridge_name = self.get_bridge_name(network_id)
        if int(vlan_id) == lconst.LOCAL_VLAN_ID:
            self.ensure_local_bridge(network_id)
        else:
            result = self.ensure_physical_in_bridge(network_id,
                                                    physical_network,
                                                    vlan_id)
            if not result:
                return False

        # Check if device needs to be added to bridge
        tap_device_in_bridge = self.get_bridge_for_tap_device(tap_device_name)
        if not tap_device_in_bridge:
            msg = _("Adding device %(tap_device_name)s to bridge "
                    "%(bridge_name)s") % locals()
            LOG.debug(msg)
            if utils.execute(['brctl', 'addif', bridge_name, tap_device_name],
                             root_helper=self.root_helper):
                return False
        else:
            msg = _("%(tap_device_name)s already exists on bridge "
                    "%(bridge_name)s") % locals()
            LOG.debug(msg)
        return True

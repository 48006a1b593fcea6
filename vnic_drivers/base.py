"""The driver interface every Quantum plugin's driver implements, and driver lookup.

A driver has four steps, each called by :mod:`vnic_drivers.hook_main` at the hook points
listed there:

- :meth:`VnicDriver.rewrite` edits the ``<interface>`` element; pure, no host access;
- :meth:`VnicDriver.prepare` creates what libvirt needs before it builds the device
  (e.g. hybrid bridges); it undoes its own partial work when it fails;
- :meth:`VnicDriver.plug` finishes wiring after libvirt created the device;
- :meth:`VnicDriver.unplug` removes whatever this project created; idempotent.

Drivers reach the host only through ``self.host.call(operation, ...)``.
"""

from . import domxml

# plugin_type -> "module:class", imported only for the plugin in use.
DRIVERS = {
    "LINUX_BRIDGE": "vnic_drivers.linux_bridge:LinuxBridgeDriver",
    "OPEN_VSWITCH": "vnic_drivers.openvswitch:OpenVSwitchDriver",
}


class VnicDriver:
    """Base class: the XML every plugin shares, and no-op host steps."""

    plugin_type = None

    def __init__(self, config, host):
        self.config = config
        self.host = host

    def rewrite(self, iface, vnic):
        """Point the device at the plugin's wiring; must be idempotent."""
        raise NotImplementedError

    def prepare(self, vnic):
        """Create host objects libvirt needs before it creates the device."""

    def plug(self, vnic):
        """Complete the wiring once libvirt has created the device."""

    def unplug(self, vnic):
        """Remove what this project created for the vNIC; a no-op when already gone."""

    def plug_needs_mac(self, vnic):
        """Whether :meth:`plug` needs the vNIC's MAC (only the hook process can find it:
        the record in vdsm's state dir, or libvirt)."""
        return False

    def set_tap_and_mtu(self, iface, vnic):
        """The part of :meth:`rewrite` common to all plugins: tap name and MTU."""
        domxml.set_target(iface, vnic.tap)
        if vnic.mtu is not None:
            domxml.set_mtu(iface, vnic.mtu)


def driver_for(vnic, config, host):
    """The driver instance for ``vnic.plugin_type`` (already validated)."""
    module_name, class_name = DRIVERS[vnic.plugin_type].split(":")
    # __import__, not importlib.import_module: the importlib package is ~1 ms of a hook.
    driver_class = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    return driver_class(config, host)

"""The validated description of one Quantum vNIC, built from VDSM's environment.

The engine passes the port's details as custom properties; VDSM puts them (and the VM's
properties, which win on a clash) in the environment. :func:`from_environment` checks
each one and returns a :class:`Vnic` whose fields are safe to hand to the host.
"""

from . import naming
from .errors import InputError

PROVIDER_TYPE = "OPENSTACK_NETWORK"
PLUGIN_TYPES = ("LINUX_BRIDGE", "OPEN_VSWITCH")


def is_quantum_vnic(environ):
    """True when this device belongs to us (``provider_type=OPENSTACK_NETWORK``)."""
    return environ.get("provider_type", "").strip() == PROVIDER_TYPE


class Vnic:
    """One vNIC: its Quantum port and how it is to be wired.

    *mac* is the address from the device XML, or a function of the Vnic returning it:
    most hook points never need it, and finding it means a file or libvirt, so it is
    looked up (and validated) on first use.
    """

    def __init__(self, port_id, plugin_type, network_id=None, security_groups=(),
                 mtu=None, mac=None, vm_id=None):
        self.port_id = port_id
        self.plugin_type = plugin_type
        self.network_id = network_id
        self.security_groups = security_groups
        self.mtu = mtu
        self._mac = mac
        self.vm_id = vm_id

    @property
    def mac(self):
        if callable(self._mac):
            raw = self._mac(self)
            self._mac = None if raw is None else naming.mac(raw, "<mac address> of the device")
        return self._mac

    @property
    def tap(self):
        return naming.tap_name(self.port_id)

    def __repr__(self):
        return "Vnic(port=%s, plugin=%s, tap=%s)" % (self.port_id, self.plugin_type, self.tap)


def _required(environ, name, expected):
    value = environ.get(name)
    if value is None or value.strip() == "":
        raise InputError(
            "property %s is missing: the engine must pass %s for an %s vNIC; check the "
            "vNIC profile's custom properties" % (name, expected, PROVIDER_TYPE)
        )
    return value.strip()


def _optional(environ, name):
    value = environ.get(name)
    return None if value is None or value.strip() == "" else value


def from_environment(environ, mac=None, default_mtu=None):
    """Validate the custom properties in *environ*; *mac* comes from the device XML
    (a string), or is a function of the Vnic that finds it when first needed."""
    port_id = naming.uuid(_required(environ, "vnic_id", "the Quantum port UUID"), "property vnic_id")
    plugin_type = _required(environ, "plugin_type", "LINUX_BRIDGE or OPEN_VSWITCH")
    if plugin_type not in PLUGIN_TYPES:
        raise InputError(
            "property plugin_type=%r is not supported: expected LINUX_BRIDGE or "
            "OPEN_VSWITCH" % plugin_type[:40]
        )
    network_id = _optional(environ, "network_id")
    security_groups = _optional(environ, "security_groups")
    mtu = _optional(environ, "mtu")
    vm_id = _optional(environ, "vmId")
    return Vnic(
        port_id=port_id,
        plugin_type=plugin_type,
        network_id=None if network_id is None else naming.uuid(network_id, "property network_id"),
        security_groups=() if security_groups is None else naming.token_list(security_groups, "property security_groups"),
        mtu=default_mtu if mtu is None else naming.mtu(mtu, "property mtu"),
        mac=mac if mac is None or callable(mac) else naming.mac(mac, "<mac address> of the device"),
        vm_id=None if vm_id is None else naming.uuid(vm_id, "vmId"),
    )

"""Quantum vNICs for the e2e tests and bench, and what libvirt made of them."""

import random
import uuid

from tests.conftest import quantum_properties
from tests.e2e import vdsm_driver
from tests.e2e.vdsm_driver import Nic

# A port with security groups is plugged hybrid (the value is a list of group ids).
SECURITY_GROUPS = "9a2e4c1d-5b6f-4a7e-8c9d-0e1f2a3b4c5d,0f4b7c2e-8d1a-4e3b-9c5f-6a7d8e9f0a1b"


def quantum_nic(plugin_type, **properties):
    """A vNIC of a fresh Quantum port (its own port id and MAC) with these properties."""
    port_id = str(uuid.uuid4())
    mac = "00:1a:4a:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(3))
    return Nic(mac, quantum_properties(plugin_type, port_id=port_id, **properties))


def tap_of(nic):
    """The tap name the agents expect: 'tap' + port id[:11]."""
    return "tap" + nic.properties["vnic_id"][:11]


def hybrid_names(nic):
    """(qbr, qvb, qvo) + port id[:11]: the OVS agent's hybrid plugging devices."""
    port = nic.properties["vnic_id"][:11]
    return "qbr" + port, "qvb" + port, "qvo" + port


def live_interfaces(vm):
    """{mac: {'type', 'bridge', 'tap', 'mtu', 'link', 'xml'}} of the VM's vNICs as libvirt runs them."""
    return vdsm_driver.live_interfaces(vm.domain)

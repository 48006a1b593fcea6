"""LINUX_BRIDGE vNICs through a real libvirtd and QEMU: the tap the agent looks for."""

from tests.conftest import NETWORK_ID
from tests.e2e.vnics import live_interfaces, quantum_nic, tap_of
from tests.e2e.host import DUMMY_BRIDGE
from tests.e2e.vdsm_driver import Vm


def test_libvirt_creates_the_agents_tap_on_the_dummy_bridge(e2e_host, vdsm):
    nics = [quantum_nic("LINUX_BRIDGE", network_id=NETWORK_ID), quantum_nic("LINUX_BRIDGE")]
    vm = Vm("lb-bridge-mode", nics)

    vdsm.start(vm)

    links = e2e_host.links()
    for nic in nics:
        assert live_interfaces(vm)[nic.mac]["tap"] == tap_of(nic)
        assert links[tap_of(nic)]["kind"] == "tun"
        assert links[tap_of(nic)]["master"] == DUMMY_BRIDGE

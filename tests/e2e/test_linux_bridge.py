"""LINUX_BRIDGE vNICs through a real libvirtd and QEMU: the tap the agent looks for."""

from tests.conftest import NETWORK_ID
from tests.e2e.host import AGENT_BRIDGE, DUMMY_BRIDGE
from tests.e2e.vdsm_driver import Vm
from tests.e2e.vnics import live_interfaces, quantum_nic, tap_of


def test_taps_leave_the_dummy_bridge_for_the_agents_bridge(e2e_host, vdsm):
    known_network = quantum_nic("LINUX_BRIDGE", network_id=NETWORK_ID, mtu="1400")
    unknown_network = quantum_nic("LINUX_BRIDGE")
    vm = Vm("lb", [known_network, unknown_network])

    vdsm.start(vm)

    links = e2e_host.links()
    live = live_interfaces(vm)
    for nic in (known_network, unknown_network):
        # libvirt made it on VDSM's dummy bridge, with the name the agent polls for ...
        assert live[nic.mac]["bridge"] == DUMMY_BRIDGE
        assert links[tap_of(nic)]["kind"] == "tun"
        assert links[tap_of(nic)]["up"]
    # ... and after_device_create took it off: into brq… when the network is known,
    # else free for the agent to enslave (it cannot take a tap from another bridge).
    assert links[tap_of(known_network)]["master"] == AGENT_BRIDGE
    assert links[tap_of(known_network)]["mtu"] == 1400
    assert links[tap_of(unknown_network)]["master"] is None

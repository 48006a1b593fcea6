"""OPEN_VSWITCH vNICs through a real libvirtd and QEMU: the port the OVS agent wires."""

from tests.e2e.vnics import live_interfaces, quantum_nic, tap_of
from tests.e2e.host import DUMMY_BRIDGE, INTEGRATION_BRIDGE
from tests.e2e.vdsm_driver import Nic, Vm


def assert_agent_port(host, vm, nic):
    """On br-int, with the external_ids the OVS agent looks for (iface-id, attached-mac)."""
    tap = tap_of(nic)
    assert tap in host.ovs.ports(INTEGRATION_BRIDGE)
    external_ids = host.ovs.interfaces()[tap]
    assert external_ids["iface-id"] == nic.properties["vnic_id"]
    assert external_ids["attached-mac"] == nic.mac
    assert external_ids["vm-id"] == vm.uuid


def test_virtualport_mode_libvirt_adds_the_ports(e2e_host, vdsm):
    ours = [quantum_nic("OPEN_VSWITCH"), quantum_nic("OPEN_VSWITCH")]
    # Custom properties for another provider: the hooks run and leave it alone.
    foreign = Nic("00:1a:4a:00:00:01", {"provider_type": "EXTERNAL"})
    # No custom properties: VDSM runs no device hook at all.
    plain = Nic("00:1a:4a:00:00:02", {})
    vm = Vm("ovs-virtualport", ours + [foreign, plain], properties={"sap_agent": "true"})

    vdsm.start(vm)

    for nic in ours:
        assert_agent_port(e2e_host, vm, nic)
    live = live_interfaces(vm)
    for nic in (foreign, plain):
        assert live[nic.mac]["bridge"] == DUMMY_BRIDGE
        assert e2e_host.links()[live[nic.mac]["tap"]]["master"] == DUMMY_BRIDGE
    assert {nic.mac for _, nic, _ in vdsm.runs} == {nic.mac for nic in ours + [foreign]}

"""OPEN_VSWITCH vNICs through a real libvirtd and QEMU: the port the OVS agent wires."""

import pytest

from tests.e2e.host import DUMMY_BRIDGE
from tests.e2e.vdsm_driver import Nic, Vm
from tests.e2e.vnics import SECURITY_GROUPS, hybrid_names, live_interfaces, quantum_nic, tap_of


def assert_agent_port(host, vm, nic, port=None, vm_key="vm-id"):
    """*port* (default: the tap) on br-int with the external_ids the OVS agent reads,
    and the VM's id under *vm_key*."""
    port = port or tap_of(nic)
    assert port in host.ovs_ports()
    external_ids = host.ovs_interfaces()[port]
    assert external_ids["iface-id"] == nic.properties["vnic_id"]
    assert external_ids["attached-mac"] == nic.mac
    assert external_ids[vm_key] == vm.uuid


# plug mode -> the interface type libvirt gets (who adds the port: libvirt, the hook)
PLUG_MODES = {"virtualport": "bridge", "hook": "ethernet"}


@pytest.mark.parametrize("plug", sorted(PLUG_MODES))
def test_plain_ports_on_br_int(e2e_host, vdsm, plug):
    vdsm.hook_config = e2e_host.hook_config(plug=plug)
    ours = [quantum_nic("OPEN_VSWITCH"), quantum_nic("OPEN_VSWITCH")]
    # Custom properties for another provider: the hooks run and leave it alone.
    foreign = Nic("00:1a:4a:00:00:01", {"provider_type": "EXTERNAL"})
    # No custom properties: VDSM runs no device hook at all.
    plain = Nic("00:1a:4a:00:00:02", {})
    vm = Vm("ovs-" + plug, ours + [foreign, plain], properties={"sap_agent": "true"})

    vdsm.start(vm)

    live = live_interfaces(vm)
    for nic in ours:
        assert live[nic.mac]["type"] == PLUG_MODES[plug]
        assert_agent_port(e2e_host, vm, nic)
    for nic in (foreign, plain):
        assert live[nic.mac]["bridge"] == DUMMY_BRIDGE
        assert e2e_host.links()[live[nic.mac]["tap"]]["master"] == DUMMY_BRIDGE
    assert {nic.mac for _, nic, _ in vdsm.runs} == {nic.mac for nic in ours + [foreign]}


def test_hybrid_with_security_groups(e2e_host, vdsm):
    nic = quantum_nic("OPEN_VSWITCH", security_groups=SECURITY_GROUPS, mtu="1450")
    vm = Vm("ovs-hybrid", [nic])

    vdsm.start(vm)

    qbr, qvb, qvo = hybrid_names(nic)
    links = e2e_host.links()
    assert live_interfaces(vm)[nic.mac]["bridge"] == qbr
    assert links[qbr]["kind"] == "bridge"
    assert links[tap_of(nic)]["master"] == qbr  # iptables sees the guest's traffic here
    assert links[qvb]["master"] == qbr
    assert links[qvo]["kind"] == "veth"
    assert tap_of(nic) not in e2e_host.ovs_ports()
    assert_agent_port(e2e_host, vm, nic, port=qvo, vm_key="vm-uuid")  # as Nova's hybrid plugging
    assert {links[name]["mtu"] for name in (tap_of(nic), qbr, qvb, qvo)} == {1450}

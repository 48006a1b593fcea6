"""A VM's life through the hooks and a real libvirtd: MTU, hot-plug, destroy, concurrency."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import NETWORK_ID
from tests.e2e.host import AGENT_BRIDGE
from tests.e2e.test_openvswitch import assert_agent_port
from tests.e2e.vdsm_driver import Vm
from tests.e2e.vnics import SECURITY_GROUPS, hybrid_names, live_interfaces, quantum_nic, tap_of


@pytest.mark.parametrize("plugin_type", ["OPEN_VSWITCH", "LINUX_BRIDGE"])
def test_device_mtu_reaches_the_tap(e2e_host, vdsm, plugin_type):
    nic = quantum_nic(plugin_type, mtu="1450")
    vdsm.start(Vm("mtu-" + plugin_type.lower().replace("_", "-"), [nic]))
    assert e2e_host.links()[tap_of(nic)]["mtu"] == 1450


def test_vm_mtu_overrides_the_devices(e2e_host, vdsm):
    # A VM custom property overrides the device's of the same name, as in VDSM.
    nics = [quantum_nic("OPEN_VSWITCH", mtu="9000"), quantum_nic("LINUX_BRIDGE", mtu="9000")]
    vdsm.start(Vm("mtu-vm", nics, properties={"mtu": "1400"}))
    links = e2e_host.links()
    assert [links[tap_of(nic)]["mtu"] for nic in nics] == [1400, 1400]


def test_hotplug_into_a_running_vm(e2e_host, vdsm):
    vm = Vm("hotplug", [quantum_nic("OPEN_VSWITCH")])
    vdsm.start(vm)
    ovs_nic = quantum_nic("OPEN_VSWITCH", mtu="1450")
    hybrid_nic = quantum_nic("OPEN_VSWITCH", security_groups=SECURITY_GROUPS)
    lb_nic = quantum_nic("LINUX_BRIDGE")

    for nic in (ovs_nic, hybrid_nic, lb_nic):
        vdsm.hotplug_nic(vm, nic)

    live = live_interfaces(vm)
    for nic in (ovs_nic, hybrid_nic, lb_nic):
        assert live[nic.mac]["tap"] == tap_of(nic)
    assert_agent_port(e2e_host, vm, ovs_nic)
    assert e2e_host.links()[tap_of(ovs_nic)]["mtu"] == 1450
    qbr, _, qvo = hybrid_names(hybrid_nic)
    assert e2e_host.links()[tap_of(hybrid_nic)]["master"] == qbr
    assert qvo in e2e_host.ovs_ports()
    assert [point for point, nic, _ in vdsm.runs if nic is lb_nic] == [
        "before_nic_hotplug", "after_nic_hotplug"]


def test_destroy_leaves_nothing_behind(e2e_host, vdsm):
    before = e2e_host.snapshot()
    nics = [quantum_nic("OPEN_VSWITCH"), quantum_nic("OPEN_VSWITCH", security_groups=SECURITY_GROUPS),
            quantum_nic("LINUX_BRIDGE")]
    vm = Vm("destroy", nics)
    vdsm.start(vm)
    made = {tap_of(nic) for nic in nics} | set(hybrid_names(nics[1]))
    assert made <= e2e_host.snapshot()["devices"]

    vdsm.destroy(vm)

    assert e2e_host.snapshot() == before
    assert [point for point, nic, _ in vdsm.runs if nic is nics[0]][-1] == "after_device_destroy"


def test_two_vms_start_at_once(e2e_host, vdsm):
    # Both VMs plug into br-int, make hybrid devices and join the same brq… at once.
    vms = [Vm("concurrent-%d" % index, [
        quantum_nic("OPEN_VSWITCH"),
        quantum_nic("OPEN_VSWITCH", security_groups=SECURITY_GROUPS),
        quantum_nic("LINUX_BRIDGE", network_id=NETWORK_ID),
    ]) for index in range(2)]

    with ThreadPoolExecutor(len(vms)) as pool:
        list(pool.map(vdsm.start, vms))  # list(): re-raise what a start raised

    links = e2e_host.links()
    for vm in vms:
        assert vm.domain.isActive()
        ovs_nic, hybrid_nic, lb_nic = vm.nics
        assert_agent_port(e2e_host, vm, ovs_nic)
        assert_agent_port(e2e_host, vm, hybrid_nic, port=hybrid_names(hybrid_nic)[2], vm_key="vm-uuid")
        assert links[tap_of(lb_nic)]["master"] == AGENT_BRIDGE

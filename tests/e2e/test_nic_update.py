"""NIC updates of a running VM (link down, link up) through the hooks and libvirt, as
VDSM's ``setLinkAndNetwork`` does them (:meth:`tests.e2e.vdsm_driver.Vdsm.update_nic`).

VDSM resets the NIC's ``<source bridge>`` to the engine's network name, which is no
bridge on a Quantum host; ``before_update_device`` must put the Quantum wiring back
(for libvirt's ``updateDeviceFlags``, any other bridge, type or virtualport is a change
it either refuses or makes by moving the tap), keeping the new link state.
"""

from tests import ovs_fixture
from tests.conftest import NETWORK_ID
from tests.e2e.host import AGENT_BRIDGE
from tests.e2e.test_openvswitch import PLUG_MODES, assert_agent_port
from tests.e2e.vdsm_driver import ENGINE_NETWORK, Vm
from tests.e2e.vnics import SECURITY_GROUPS, hybrid_names, live_interfaces, quantum_nic, tap_of

UPDATE_POINTS = ["before_update_device", "after_update_device"]


def assert_wired(host, vm, nic, kind):
    """The tap of *nic* (a *kind* vNIC) is where the agents expect it."""
    links = host.links()
    if kind == "linux_bridge":
        assert links[tap_of(nic)]["master"] == AGENT_BRIDGE
    elif kind == "hybrid":
        qbr, qvb, qvo = hybrid_names(nic)
        assert links[tap_of(nic)]["master"] == qbr
        assert links[qvb]["master"] == qbr
        assert_agent_port(host, vm, nic, port=qvo, vm_key="vm-uuid")
    else:
        assert_agent_port(host, vm, nic)


NICS = {
    "linux_bridge": lambda: quantum_nic("LINUX_BRIDGE", network_id=NETWORK_ID),
    "openvswitch": lambda: quantum_nic("OPEN_VSWITCH"),
    "hybrid": lambda: quantum_nic("OPEN_VSWITCH", security_groups=SECURITY_GROUPS, mtu="1450"),
}


def test_link_down_and_up_keeps_every_kind_wired(e2e_host, vdsm):
    nics = {kind: make() for kind, make in sorted(NICS.items())}
    vm = Vm("update", list(nics.values()))
    vdsm.start(vm)
    wiring = {mac: (found["type"], found["bridge"], found["tap"])
              for mac, found in live_interfaces(vm).items()}
    ovs_ports = {"openvswitch": tap_of(nics["openvswitch"]), "hybrid": hybrid_names(nics["hybrid"])[2]}
    rows = {kind: port_rows(e2e_host, port) for kind, port in ovs_ports.items()}

    for link in ("down", "up"):
        for nic in vm.nics:
            vdsm.update_nic(vm, nic, link)

        live = live_interfaces(vm)
        for kind, nic in nics.items():
            assert live[nic.mac]["link"] == link, kind
            # libvirt still has the device where the hooks put it at start ...
            assert (live[nic.mac]["type"], live[nic.mac]["bridge"], live[nic.mac]["tap"]) == wiring[nic.mac]
            assert ENGINE_NETWORK not in live[nic.mac]["xml"]
            # ... and on the host the tap is still where the agents expect it.
            assert_wired(e2e_host, vm, nic, kind)
        # The OVS ports were never re-added (the agent would rewire them).
        assert {kind: port_rows(e2e_host, port) for kind, port in ovs_ports.items()} == rows

    for nic in vm.nics:
        points = [point for point, each, _ in vdsm.runs if each is nic]
        assert points == ["before_device_create", "after_device_create"] + UPDATE_POINTS * 2
    assert vdsm.failures == []


def port_rows(host, port):
    """:func:`tests.ovs_fixture.port_rows` of *port* on *host*, once ovs-vswitchd opened it."""
    host.ovs.vsctl("wait-until", "Interface", port, "ofport>0")
    return ovs_fixture.port_rows(host.ovs, port)


def test_link_down_on_an_ovs_port_the_hook_plugs(e2e_host, vdsm):
    # plug mode hook: type='ethernet', the port is the hook's own; after_update_device
    # re-checks it (the MAC from the record before_update_device left) and leaves the
    # port as it is: re-adding it would make the OVS agent unwire and rewire it.
    vdsm.hook_config = e2e_host.hook_config(plug="hook")
    nic = quantum_nic("OPEN_VSWITCH")
    vm = Vm("update-hook-plug", [nic])
    vdsm.start(vm)
    rows = port_rows(e2e_host, tap_of(nic))

    for link in ("down", "up"):
        vdsm.update_nic(vm, nic, link)

        live = live_interfaces(vm)[nic.mac]
        assert (live["type"], live["link"]) == (PLUG_MODES["hook"], link)
        assert_agent_port(e2e_host, vm, nic)
        assert port_rows(e2e_host, tap_of(nic)) == rows
    run = [run for point, each, run in vdsm.runs if point == "after_update_device"][-1]
    assert "already in place: left alone" in run.stderr

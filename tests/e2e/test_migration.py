"""Live migration of a running guest between two hosts, through the hooks, as VDSM does it.

Two private hosts (``conftest.e2e_host`` and ``conftest.peer_host``): each its own network
namespace, private OVS (``br-int``, netdev datapath), ``;vdsmdummy;`` and ``brq…``
bridges, and private libvirtd, joined by a veth with addresses that exist only in the two
test namespaces. libvirt really migrates the guest: peer to peer and live, as VDSM asks
for it; the source's libvirtd reaches the destination's over its unix socket (a path on
the shared file system: unix sockets do not belong to a network namespace), QEMU sends
the guest's state over TCP on the veth.

Around it the hooks run in VDSM's order (see :meth:`tests.e2e.vdsm_driver.Vdsm.migrate`):
``before_device_migrate_destination`` on the destination with the source's live device
XML, the incoming domain, ``after_device_migrate_destination`` with the same XML, and
``after_device_destroy`` on the source with an empty file.
"""

from tests.conftest import NETWORK_ID
from tests.e2e.host import AGENT_BRIDGE, MIGRATION_ADDRESSES
from tests.e2e.test_openvswitch import assert_agent_port
from tests.e2e.vdsm_driver import Vm
from tests.e2e.vnics import SECURITY_GROUPS, hybrid_names, live_interfaces, quantum_nic, tap_of

MIGRATION_URI = "tcp://" + MIGRATION_ADDRESSES[1]


def test_live_migration_of_all_three_kinds(e2e_host, peer_host, vdsm, peer_vdsm):
    ovs_nic = quantum_nic("OPEN_VSWITCH")
    hybrid_nic = quantum_nic("OPEN_VSWITCH", security_groups=SECURITY_GROUPS, mtu="1450")
    lb_nic = quantum_nic("LINUX_BRIDGE", network_id=NETWORK_ID)
    nics = [ovs_nic, hybrid_nic, lb_nic]
    vm = Vm("migrating", nics)
    source_before = e2e_host.snapshot()
    vdsm.start(vm)

    vdsm.migrate(vm, peer_vdsm, peer_host.libvirtd.uri, MIGRATION_URI)

    # The guest runs on the destination only ...
    assert vm.domain.isActive()
    assert vm.domain.connect().getURI() == peer_host.libvirtd.uri
    assert vm.uuid not in {domain.UUIDString() for domain in vdsm.conn.listAllDomains()}
    # ... wired there the way the agents look for it ...
    links = peer_host.links()
    live = live_interfaces(vm)
    assert {live[nic.mac]["tap"] for nic in nics} == {tap_of(nic) for nic in nics}
    assert_agent_port(peer_host, vm, ovs_nic)
    qbr, qvb, qvo = hybrid_names(hybrid_nic)
    assert links[tap_of(hybrid_nic)]["master"] == qbr
    assert links[qvb]["master"] == qbr
    assert tap_of(hybrid_nic) not in peer_host.ovs_ports()
    assert_agent_port(peer_host, vm, hybrid_nic, port=qvo, vm_key="vm-uuid")
    assert {links[name]["mtu"] for name in (tap_of(hybrid_nic), qbr, qvb, qvo)} == {1450}
    assert links[tap_of(lb_nic)]["master"] == AGENT_BRIDGE
    # ... and nothing of it is left on the source.
    assert e2e_host.snapshot() == source_before

    for nic in nics:
        # The destination's hooks got the source's live device XML (now the device's
        # XML for the destination's VDSM) ...
        on_destination = [(point, run.before) for point, each, run in peer_vdsm.runs if each is nic]
        assert on_destination == [("before_device_migrate_destination", nic.device_xml),
                                  ("after_device_migrate_destination", nic.device_xml)]
        assert 'dev="%s"' % tap_of(nic) in nic.device_xml.replace("'", '"')
        # ... the source's after_device_destroy none (VDSM's runner: an empty file).
        point, _, run = [entry for entry in vdsm.runs if entry[1] is nic][-1]
        assert (point, run.before) == ("after_device_destroy", None)

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

A migration that fails after the destination prepared (its migration network broken:
libvirt cannot connect to the incoming QEMU) must leave the destination as it was,
through VDSM's undo there (it destroys the incoming VM: ``before_device_destroy`` and
``after_device_destroy`` with the source's device XML), and the source wired as before.
"""

import contextlib
import os
import subprocess

import pytest

from tests.conftest import NETWORK_ID
from tests.e2e.host import AGENT_BRIDGE, MIGRATION_ADDRESSES
from tests.e2e.test_nic_update import assert_wired
from tests.e2e.test_openvswitch import assert_agent_port
from tests.e2e.vdsm_driver import Vm
from tests.e2e.vnics import SECURITY_GROUPS, hybrid_names, live_interfaces, quantum_nic, tap_of

MIGRATION_URI = "tcp://" + MIGRATION_ADDRESSES[1]


def one_of_each_kind():
    """{kind: vNIC}: OVS virtualport, OVS hybrid with security groups, Linux Bridge."""
    return {"openvswitch": quantum_nic("OPEN_VSWITCH"),
            "hybrid": quantum_nic("OPEN_VSWITCH", security_groups=SECURITY_GROUPS, mtu="1450"),
            "linux_bridge": quantum_nic("LINUX_BRIDGE", network_id=NETWORK_ID)}


def test_live_migration_of_all_three_kinds(e2e_host, peer_host, vdsm, peer_vdsm):
    kinds = one_of_each_kind()
    ovs_nic, hybrid_nic, lb_nic = kinds["openvswitch"], kinds["hybrid"], kinds["linux_bridge"]
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


@contextlib.contextmanager
def migration_network_broken(host):
    """No route from *host* to the migration address (an ``unreachable`` route in its
    namespace) while the block runs. The two libvirtds still talk (over a unix socket),
    so the destination prepares the incoming VM and starts its QEMU; the source's
    libvirtd then fails at once to connect to that QEMU ("No route to host"), fails the
    migration and has the incoming QEMU killed: a broken migration network,
    deterministically."""
    def ip(action):
        subprocess.run(["ip", "-n", host.netns, "route", action, "unreachable", MIGRATION_ADDRESSES[1] + "/32"],
                       check=True, capture_output=True)

    ip("add")
    try:
        yield
    finally:
        ip("del")


def test_failed_migration_leaves_the_destination_clean(e2e_host, peer_host, vdsm, peer_vdsm):
    import libvirt

    kinds = one_of_each_kind()
    nics = list(kinds.values())
    vm = Vm("migration-fails", nics)
    vdsm.start(vm)
    source_wired, destination_before = e2e_host.snapshot(), peer_host.snapshot()
    source_xml = {mac: found["xml"] for mac, found in live_interfaces(vm).items()}

    with migration_network_broken(e2e_host), pytest.raises(libvirt.libvirtError) as failed:
        vdsm.migrate(vm, peer_vdsm, peer_host.libvirtd.uri, MIGRATION_URI)
    assert "No route to host" in str(failed.value)  # libvirt's connection to the incoming QEMU

    # The destination had created the incoming VM (its QEMU ran, with the vNICs' taps) ...
    qemu_log = os.path.join(peer_host.libvirtd.root, "log", "libvirt", "qemu", vm.name + ".log")
    with open(qemu_log, encoding="utf-8", errors="replace") as stream:
        assert "-incoming" in stream.read()
    # ... and VDSM's undo there (destroy: before_ and after_device_destroy with the source's
    # device XML, as dev._deviceXML) removed what before_device_migrate_destination made:
    # hybrid devices, the qvo port, the MAC records; libvirt took its taps and ports.
    assert vm.uuid not in {domain.UUIDString() for domain in peer_vdsm.conn.listAllDomains()}
    assert peer_host.snapshot() == destination_before
    for kind, nic in kinds.items():
        on_destination = [(point, run.before, run.returncode) for point, each, run in peer_vdsm.runs if each is nic]
        assert on_destination == [("before_device_migrate_destination", source_xml[nic.mac], 0),
                                  ("after_device_destroy", source_xml[nic.mac], 0)], kind
    hybrid_runs = [run for _, each, run in peer_vdsm.runs if each is kinds["hybrid"]]
    qbr, qvb, qvo = hybrid_names(kinds["hybrid"])
    assert "hybrid devices for port %s ready" % kinds["hybrid"].properties["vnic_id"] in hybrid_runs[0].stderr
    assert "OVS ports removed: %s" % qvo in hybrid_runs[1].stderr and qbr in hybrid_runs[1].stderr

    # The guest still runs on the source, wired as before; no hook ran there for it.
    assert vm.domain.isActive() and vm.domain.connect().getURI() == e2e_host.libvirtd.uri
    assert e2e_host.snapshot() == source_wired
    for kind, nic in kinds.items():
        assert_wired(e2e_host, vm, nic, kind)
    assert [point for point, _, _ in vdsm.runs] == ["before_device_create"] * 3 + ["after_device_create"] * 3

"""The OVS driver against a real Open vSwitch and real kernel objects, no mocks.

One private OVS per module (:mod:`tests.ovs_fixture`): ovsdb-server on a socket in a temp
dir, ovs-vswitchd on the netdev datapath inside a network namespace of the test's own.
The hook executables run inside that namespace, as VDSM would run them on the host, with
``[openvswitch] ovsdb`` pointing at the private socket. Each test uses its own port id,
so tests share the daemons but never each other's devices or rows. What the hook did is
checked independently: kernel state with ``ip -j``, OVSDB rows with ``ovs-vsctl``.
"""

import json
import os
import re
import subprocess
import threading
import time
import uuid

import pytest

from tests import ovs_fixture
from tests.ovs_fixture import port_rows
from tests.conftest import assert_one_line, host_skip_reason, quantum_properties, unplug_marked_only
from tests.vdsm import EXAMPLE_VM_ID, REPO, run_hook
from vnic_drivers import naming

with open(os.path.join(REPO, "examples", "ovs_vnic.xml"), "rb") as _stream:
    DEVICE = _stream.read()
MAC = "00:1a:4a:16:01:51"


@pytest.fixture(scope="module")
def ovs():
    reason = host_skip_reason() or ovs_fixture.skip_reason()
    if reason:
        pytest.skip(reason)
    from vnic_drivers.sandbox import Sandbox

    with Sandbox("qvnic-ovs") as box, ovs_fixture.private_ovs(box.directory, netns=box.name) as running:
        yield running


def config(ovs, **options):
    options.setdefault("ovsdb", ovs.remote)
    return "[openvswitch]\n" + "".join("%s = %s\n" % item for item in options.items())


def hook(ovs, hook_point, properties, xml=DEVICE, **options):
    return run_hook(hook_point, xml, properties, netns=ovs.netns, config=config(ovs, **options))


def new_port():
    return str(uuid.uuid4())


def hybrid_properties(port, **extra):
    return quantum_properties("OPEN_VSWITCH", port_id=port, security_groups="sg-web", **extra)


# --- independent observers ---

def link(ovs, name):
    """``ip -d -j link show`` of *name* in the test namespace, or None."""
    done = subprocess.run(["ip", "-n", ovs.netns, "-d", "-j", "link", "show", "dev", name],
                          capture_output=True, text=True, check=False)
    return json.loads(done.stdout)[0] if done.returncode == 0 else None


def kind(ovs, name):
    found = link(ovs, name)
    return None if found is None else found.get("linkinfo", {}).get("info_kind")


def ip(ovs, *args):
    subprocess.run(["ip", "-n", ovs.netns] + list(args), check=True)


def interface(ovs, name):
    """The Interface row *name* as {column: value} (maps as dicts), or None."""
    out = json.loads(ovs.vsctl("--format=json", "--columns=external_ids,mtu_request", "find",
                               "Interface", "name=%s" % name))
    if not out["data"]:
        return None
    row = dict(zip(out["headings"], out["data"][0]))
    row["external_ids"] = dict(row["external_ids"][1])
    return row


def ports(ovs, bridge="br-int"):
    return ovs.vsctl("list-ports", bridge).split()


def assert_quiet(run):
    assert run.returncode == 0, run
    assert "WARNING" not in run.stderr and "ERROR" not in run.stderr, run.stderr


def assert_nothing_left(ovs, port):
    for name in naming.hybrid_names(port):
        assert link(ovs, name) is None, name
    qvo = naming.hybrid_names(port)[2]
    assert interface(ovs, qvo) is None
    assert qvo not in ports(ovs)


def libvirt_tap(ovs, port):
    """The tap libvirt creates for the vNIC (type='ethernet': unattached, up)."""
    tap = naming.tap_name(port)
    ip(ovs, "tuntap", "add", "dev", tap, "mode", "tap")
    ip(ovs, "link", "set", tap, "up")
    return tap


# --- hybrid plugging ---

def test_hybrid_plug_then_unplug(ovs):
    port = new_port()
    qbr, qvb, qvo = naming.hybrid_names(port)
    properties = hybrid_properties(port, mtu="1450")

    created = hook(ovs, "before_device_create", properties)
    assert created.returncode == 0, created.stderr
    assert ('<source bridge="%s"/>' % qbr).encode() in created.after
    assert b"virtualport" not in created.after

    bridge = link(ovs, qbr)
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    assert bridge["linkinfo"]["info_data"]["stp_state"] == 0
    assert bridge["linkinfo"]["info_data"]["forward_delay"] == 0
    for name in (qbr, qvb, qvo):
        assert "UP" in link(ovs, name)["flags"], name
        assert link(ovs, name)["mtu"] == 1450, name
    assert kind(ovs, qvb) == kind(ovs, qvo) == "veth"
    assert link(ovs, qvb)["master"] == qbr

    row = interface(ovs, qvo)
    assert row["external_ids"] == {"iface-id": port, "iface-status": "active",
                                   "attached-mac": MAC, "vm-uuid": EXAMPLE_VM_ID}
    assert row["mtu_request"] == 1450
    assert qvo in ports(ovs)
    # The real ovs-vswitchd opened the veth end: it got an OpenFlow port number.
    ovs.vsctl("wait-until", "Interface", qvo, "ofport>0")

    assert_quiet(hook(ovs, "after_device_create", properties, created.after))

    for _ in range(2):  # idempotent: the second run finds nothing and succeeds
        assert_quiet(hook(ovs, "after_device_destroy", properties, created.after))
        assert_nothing_left(ovs, port)


def test_hybrid_plug_is_idempotent(ovs):
    port = new_port()
    properties = hybrid_properties(port)
    qbr, qvb, qvo = naming.hybrid_names(port)
    for hook_point in ("before_device_create", "before_device_create", "before_device_migrate_destination"):
        assert_quiet(hook(ovs, hook_point, properties))
    assert ports(ovs).count(qvo) == 1
    assert link(ovs, qvb)["master"] == qbr
    assert interface(ovs, qvo)["external_ids"]["iface-id"] == port
    assert_quiet(hook(ovs, "after_nic_hotunplug", properties))
    assert_nothing_left(ovs, port)


def test_migration_destination_makes_hybrid_devices(ovs):
    port = new_port()
    properties = hybrid_properties(port)
    run = hook(ovs, "before_device_migrate_destination", properties)
    assert_quiet(run)
    assert run.after == run.before  # VDSM discards this hook point's XML
    assert kind(ovs, naming.hybrid_names(port)[0]) == "bridge"
    assert_quiet(hook(ovs, "after_device_migrate_destination", properties))
    assert_quiet(hook(ovs, "after_device_destroy", properties))
    assert_nothing_left(ovs, port)


# --- rollback after a real fault half-way ---

def test_rollback_when_integration_bridge_missing(ovs):
    port = new_port()
    run = hook(ovs, "before_device_create", hybrid_properties(port), integration_bridge="br-missing")
    assert_one_line(run, 2, "br-missing", "does not exist")
    assert run.after == run.before
    assert_nothing_left(ovs, port)


def test_rollback_when_ovsdb_refuses_the_port(ovs):
    """A unique-index violation at commit: another port already has an interface named qvo…."""
    port = new_port()
    qvo = naming.hybrid_names(port)[2]
    decoy = "decoy" + port[:8]
    ovs.vsctl("--", "--id=@i", "create", "Interface", "name=" + qvo,
              "--", "--id=@p", "create", "Port", "name=" + decoy, "interfaces=@i",
              "--", "add", "Bridge", "br-int", "ports", "@p")
    try:
        run = hook(ovs, "before_device_create", hybrid_properties(port))
        assert_one_line(run, 2, "refused to add port %s" % qvo)
        for name in naming.hybrid_names(port):
            assert link(ovs, name) is None, name
        assert qvo not in ports(ovs) and decoy in ports(ovs)
    finally:
        ovs.vsctl("del-port", decoy)


def test_rollback_when_a_device_name_is_taken(ovs):
    port = new_port()
    qbr, qvb, qvo = naming.hybrid_names(port)
    ip(ovs, "tuntap", "add", "dev", qvb, "mode", "tap")  # someone else's device
    run = hook(ovs, "before_device_create", hybrid_properties(port))
    assert_one_line(run, 2, qvb, "not ours")
    assert link(ovs, qbr) is None and link(ovs, qvo) is None  # made by the call, undone
    assert kind(ovs, qvb) == "tun"  # not ours: kept
    assert interface(ovs, qvo) is None

    destroyed = hook(ovs, "after_device_destroy", hybrid_properties(port))
    assert destroyed.returncode == 0 and "left %s alone" % qvb in destroyed.stderr
    assert kind(ovs, qvb) == "tun"
    ip(ovs, "link", "del", qvb)


def test_ovs_down_fails_before_touching_the_kernel(ovs):
    port = new_port()
    run = hook(ovs, "before_device_create", hybrid_properties(port), ovsdb="unix:/nonexistent/db.sock")
    assert_one_line(run, 2, "unreachable", "/nonexistent/db.sock")
    assert_nothing_left(ovs, port)


def test_unplug_with_ovs_down_still_removes_devices(ovs):
    port = new_port()
    properties = hybrid_properties(port)
    assert_quiet(hook(ovs, "before_device_create", properties))
    run = hook(ovs, "after_device_destroy", properties, ovsdb="unix:/nonexistent/db.sock")
    assert_one_line(run, 1, "unreachable", "may remain")
    for name in naming.hybrid_names(port):
        assert link(ovs, name) is None, name
    assert_quiet(hook(ovs, "after_device_destroy", properties))  # OVS back: the port goes
    assert_nothing_left(ovs, port)


# --- the unplug's removal group: one kernel batch, and only devices it checked ---

def group(ovs, name):
    """The device's group as ``ip`` shows it: "default" (0) or the number."""
    return link(ovs, name)["group"]


def removal_group(port):
    from vnic_drivers.host import netlink

    return str(netlink.removal_group(naming.tap_name(port)))


def test_unplug_marks_the_devices_then_deletes_them_as_one_group(ovs):
    port = new_port()
    qbr, qvb, qvo = naming.hybrid_names(port)
    properties = hybrid_properties(port)
    assert_quiet(hook(ovs, "before_device_create", properties))
    assert {group(ovs, name) for name in (qbr, qvb, qvo)} == {"default"}
    unplug_marked_only(ovs.netns, ovs.remote, port)
    # Marked: the OVS port is gone, qvo is down (nothing passes to br-int), qvo and qbr
    # are in the port's removal group (qvb, qvo's peer, goes with qvo), the kernel
    # batch not sent yet.
    assert qvo not in ports(ovs) and interface(ovs, qvo) is None
    assert "UP" not in link(ovs, qvo)["flags"]
    assert [group(ovs, name) for name in (qbr, qvb, qvo)] == [removal_group(port), "default",
                                                               removal_group(port)]
    assert_quiet(hook(ovs, "after_device_destroy", properties))  # the next unplug finishes it
    assert_nothing_left(ovs, port)


def test_a_device_of_someone_else_in_the_removal_group_is_never_deleted(ovs):
    """A device already in the port's removal group (set by someone else) is not deleted
    with ours: the group is not empty, so the unplug deletes its devices one at a time."""
    port = new_port()
    stranger = "strg" + port[:8]
    properties = hybrid_properties(port)
    assert_quiet(hook(ovs, "before_device_create", properties))
    ip(ovs, "link", "add", stranger, "type", "bridge")
    ip(ovs, "link", "set", stranger, "group", removal_group(port))
    try:
        assert_quiet(hook(ovs, "after_device_destroy", properties))
        assert_nothing_left(ovs, port)
        assert kind(ovs, stranger) == "bridge" and group(ovs, stranger) == removal_group(port)
    finally:
        ip(ovs, "link", "del", stranger)


def test_two_ports_whose_removal_groups_collide_keep_each_other_s_devices(ovs):
    """Port B's unplug died after marking (its devices wait in the group); port A, whose
    port id starts with the same 6 hex digits, unplugs: B's devices stay for B's next
    unplug, which removes them."""
    port_b = new_port()
    port_a = port_b[:6] + ("0" if port_b[6] != "0" else "1") + port_b[7:]
    assert removal_group(port_a) == removal_group(port_b) and port_a[:11] != port_b[:11]
    for port in (port_a, port_b):
        assert_quiet(hook(ovs, "before_device_create", hybrid_properties(port)))
    unplug_marked_only(ovs.netns, ovs.remote, port_b)
    assert_quiet(hook(ovs, "after_device_destroy", hybrid_properties(port_a)))
    assert_nothing_left(ovs, port_a)
    for name in naming.hybrid_names(port_b):
        assert link(ovs, name) is not None, name
    assert group(ovs, naming.hybrid_names(port_b)[0]) == removal_group(port_b)
    assert_quiet(hook(ovs, "after_device_destroy", hybrid_properties(port_b)))
    assert_nothing_left(ovs, port_b)


def test_a_veth_paired_with_a_device_that_was_not_checked_is_kept(ovs):
    """qvo… a veth, but its peer is not qvb…: deleting it would delete that peer too."""
    port = new_port()
    qbr, qvb, qvo = naming.hybrid_names(port)
    peer = "peer" + port[:8]
    ip(ovs, "link", "add", qbr, "type", "bridge")
    ip(ovs, "link", "add", qvo, "type", "veth", "peer", "name", peer)
    try:
        run = hook(ovs, "after_device_destroy", hybrid_properties(port))
        assert run.returncode == 0 and "left %s alone" % qvo in run.stderr, run.stderr
        assert link(ovs, qbr) is None  # ours: deleted
        assert kind(ovs, qvo) == kind(ovs, peer) == "veth"
        assert group(ovs, qvo) == group(ovs, peer) == "default"
    finally:
        ip(ovs, "link", "del", qvo)


def test_a_veth_paired_with_a_device_of_another_kind_than_expected_is_kept(ovs):
    """qvo… and a qbr… that is a veth (not a bridge) paired with it: both kept."""
    port = new_port()
    qbr, _, qvo = naming.hybrid_names(port)
    ip(ovs, "link", "add", qvo, "type", "veth", "peer", "name", qbr)
    try:
        run = hook(ovs, "after_device_destroy", hybrid_properties(port))
        assert run.returncode == 0 and "left %s, %s alone" % (qvo, qbr) in run.stderr, run.stderr
        assert kind(ovs, qvo) == kind(ovs, qbr) == "veth"
    finally:
        ip(ovs, "link", "del", qvo)


# --- plain mode (libvirt adds the port): verification and the bounded wait ---

def libvirt_adds_port(ovs, port, iface_id=None):
    """What libvirt runs for <virtualport type='openvswitch'>: the tap on br-int."""
    tap = libvirt_tap(ovs, port)
    ovs.vsctl("add-port", "br-int", tap, "--", "set", "Interface", tap,
              "external_ids:iface-id=%s" % (iface_id or port), "external_ids:iface-status=active",
              "external_ids:attached-mac=%s" % MAC, "external_ids:vm-id=%s" % EXAMPLE_VM_ID)
    return tap


def remove_tap(ovs, tap):
    ovs.vsctl("--if-exists", "del-port", tap)
    ip(ovs, "link", "del", tap)


def test_plain_port_verified(ovs):
    port = new_port()
    tap = libvirt_adds_port(ovs, port)
    try:
        for hook_point in ("after_device_create", "after_nic_hotplug"):
            assert_quiet(hook(ovs, hook_point, quantum_properties("OPEN_VSWITCH", port_id=port)))
    finally:
        remove_tap(ovs, tap)


def test_plain_port_missing(ovs):
    port = new_port()
    run = hook(ovs, "after_device_create", quantum_properties("OPEN_VSWITCH", port_id=port))
    assert_one_line(run, 1, naming.tap_name(port), "br-int", "libvirt did not add it")


def test_plain_port_with_wrong_iface_id(ovs):
    port = new_port()
    tap = libvirt_adds_port(ovs, port, iface_id=new_port())
    try:
        run = hook(ovs, "after_device_create", quantum_properties("OPEN_VSWITCH", port_id=port))
        assert_one_line(run, 1, "iface-id", port)
    finally:
        remove_tap(ovs, tap)


def test_port_status_by_remembered_rows_sees_a_re_created_port(ovs):
    """One process (the resident helper) remembers a port's rows and reads them by uuid
    next time; a port deleted and re-created meanwhile (new rows, other ids) is read
    again by name, and a deleted one is reported missing."""
    from vnic_drivers.host import ovsdb

    port, other = new_port(), new_port()
    tap = libvirt_adds_port(ovs, port)
    try:
        with ovsdb.connect(ovs.remote) as db:
            first = ovsdb.port_status(db, "br-int", tap)
            assert first["iface_id"] == port and first["on_bridge"]
            assert (ovs.remote, tap) in ovsdb._ROWS
            assert ovsdb.port_status(db, "br-int", tap) == first  # by uuid, same answer
            ovs.vsctl("del-port", "br-int", tap)
            ovs.vsctl("add-port", "br-int", tap, "--", "set", "Interface", tap,
                      "external_ids:iface-id=%s" % other)
            again = ovsdb.port_status(db, "br-int", tap)
            assert again["iface_id"] == other and again["on_bridge"]
            ovs.vsctl("del-port", "br-int", tap)
            gone = ovsdb.port_status(db, "br-int", tap)
            assert not gone["exists"] and not gone["on_bridge"] and gone["iface_id"] is None
    finally:
        remove_tap(ovs, tap)


def test_wait_for_agent_times_out_with_a_warning(ovs):
    port = new_port()
    tap = libvirt_adds_port(ovs, port)
    ovs.vsctl("set", "Port", tap, "tag=4095")  # the agent saw it but has not wired it
    try:
        run = hook(ovs, "after_device_create", quantum_properties("OPEN_VSWITCH", port_id=port),
                   wait_timeout="0.5")
        line = assert_one_line(run, 0, "WARNING", "not wired", "4095")
        assert tap in line
    finally:
        remove_tap(ovs, tap)


def test_wait_for_agent_returns_once_wired(ovs):
    port = new_port()
    tap = libvirt_adds_port(ovs, port)

    def agent():  # as the OVS agent does: dead VLAN first, then the network's local VLAN
        time.sleep(0.3)
        ovs.vsctl("set", "Port", tap, "tag=4095")
        time.sleep(0.3)
        ovs.vsctl("set", "Port", tap, "tag=7")

    worker = threading.Thread(target=agent)
    worker.start()
    try:
        run = hook(ovs, "after_device_create", quantum_properties("OPEN_VSWITCH", port_id=port),
                   wait_timeout="60")
        assert_quiet(run)
    finally:
        worker.join()
        remove_tap(ovs, tap)


# --- plug mode "hook": the hook, not libvirt, puts the tap on br-int ---

def test_hook_plug_mode_with_a_real_tap(ovs):
    port = new_port()
    properties = quantum_properties("OPEN_VSWITCH", port_id=port, mtu="1400")
    created = hook(ovs, "before_device_create", properties, plug="hook")
    assert_quiet(created)
    assert b'<interface type="ethernet">' in created.after and b"<source" not in created.after

    tap = libvirt_tap(ovs, port)
    try:
        for _ in range(2):  # a repeated plug replaces the port, never duplicates it
            assert_quiet(hook(ovs, "after_device_create", properties, created.after, plug="hook"))
        assert ports(ovs).count(tap) == 1
        row = interface(ovs, tap)
        assert row["external_ids"] == {"iface-id": port, "iface-status": "active",
                                       "attached-mac": MAC, "vm-id": EXAMPLE_VM_ID}
        assert row["mtu_request"] == 1400
        ovs.vsctl("wait-until", "Interface", tap, "ofport>0")  # ovs-vswitchd took the tap

        for _ in range(2):
            assert_quiet(hook(ovs, "after_nic_hotunplug", properties, created.after, plug="hook"))
            assert tap not in ports(ovs) and interface(ovs, tap) is None
    finally:
        remove_tap(ovs, tap)


def test_hook_plug_mode_update_keeps_the_port(ovs):
    """after_update_device (a link down/up) must not bounce the port the hook added: a
    port as wanted is left alone, a wrong or missing id is corrected in the same rows."""
    port = new_port()
    properties = quantum_properties("OPEN_VSWITCH", port_id=port, mtu="1400")
    created = hook(ovs, "before_device_create", properties, plug="hook")
    assert_quiet(created)
    tap = libvirt_tap(ovs, port)
    wanted = {"iface-id": port, "iface-status": "active", "attached-mac": MAC, "vm-id": EXAMPLE_VM_ID}
    try:
        run = hook(ovs, "after_device_create", properties, created.after, plug="hook")
        assert_quiet(run)
        assert "(added)" in run.stderr
        ovs.vsctl("wait-until", "Interface", tap, "ofport>0")  # ovs-vswitchd took the tap
        rows = port_rows(ovs, tap)

        for link_state in ("down", "up"):
            update = re.sub(rb'<link state="up" ?/>', b'<link state="%s"/>' % link_state.encode(),
                            created.after)
            assert b'<link state="%s"/>' % link_state.encode() in update
            assert_quiet(hook(ovs, "before_update_device", properties, update, plug="hook"))
            run = hook(ovs, "after_update_device", properties, update, plug="hook")
            assert_quiet(run)
            assert "already in place: left alone" in run.stderr
            assert port_rows(ovs, tap) == rows
            assert interface(ovs, tap)["external_ids"] == wanted

        # Someone changed the ids and the MTU: corrected in place, other keys kept.
        ovs.vsctl("set", "Interface", tap, "external_ids:attached-mac=00:00:5e:00:53:01",
                  "external_ids:audit=kept", "mtu_request=1500", "--",
                  "remove", "Interface", tap, "external_ids", "vm-id")
        run = hook(ovs, "after_update_device", properties, created.after, plug="hook")
        assert_quiet(run)
        assert "corrected in place" in run.stderr
        assert port_rows(ovs, tap) == rows
        row = interface(ovs, tap)
        assert row["external_ids"] == dict(wanted, audit="kept") and row["mtu_request"] == 1400

        # On another bridge: only then is it re-added, on br-int.
        ovs.vsctl("add-br", "br-other", "--", "set", "Bridge", "br-other", "datapath_type=netdev")
        try:
            ovs.vsctl("del-port", tap, "--", "add-port", "br-other", tap)
            run = hook(ovs, "after_update_device", properties, created.after, plug="hook")
            assert_quiet(run)
            assert "(added)" in run.stderr
            assert tap in ports(ovs) and tap not in ports(ovs, "br-other")
            assert interface(ovs, tap)["external_ids"] == wanted
        finally:
            ovs.vsctl("del-br", "br-other")

        assert_quiet(hook(ovs, "after_device_destroy", properties, plug="hook"))
        assert tap not in ports(ovs) and interface(ovs, tap) is None
    finally:
        remove_tap(ovs, tap)


def test_hook_plug_mode_without_the_tap(ovs):
    port = new_port()
    properties = quantum_properties("OPEN_VSWITCH", port_id=port)
    assert_quiet(hook(ovs, "before_device_create", properties, plug="hook"))  # records the MAC
    run = hook(ovs, "after_device_create", properties, plug="hook")
    assert_one_line(run, 1, naming.tap_name(port), "does not exist")
    assert interface(ovs, naming.tap_name(port)) is None


# --- the privileged boundary refuses what the hook would never send ---

@pytest.mark.parametrize("bad,needle", [
    ({"port_id": "../../etc"}, "port_id="),
    ({"mac": "00:11"}, "mac="),
    ({"extra": 1}, "unknown argument extra"),
    # Not the caller's to choose, however well-formed: the privileged side's config says.
    ({"bridge": "br-ex"}, "unknown argument bridge"),
    ({"ovsdb_remote": "unix:/run/openvswitch/db.sock"}, "unknown argument ovsdb_remote"),
])
def test_privileged_side_revalidates(bad, needle):
    from vnic_drivers.errors import InputError
    from vnic_drivers.host import privileged

    args = {"port_id": new_port(), "mac": MAC, "vm_id": None, "mtu": None}
    privileged.validate("ovs_hybrid_plug", args)
    args.update(bad)
    with pytest.raises(InputError) as caught:
        privileged.validate("ovs_hybrid_plug", args)
    assert needle in str(caught.value)

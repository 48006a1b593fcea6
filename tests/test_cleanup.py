"""``quantum-vnic cleanup`` against real kernel objects, a real OVS and libvirt's test driver.

"In use" comes from libvirt: here its test driver (``test:///PATH``), whose node file
declares running domains with the interfaces a real VM would have (and defined ones that
do not run); a real libvirtd with QEMU would answer the same read-only calls (tests/e2e
covers that daemon). The devices live in the test's network namespace, the ports in a
private OVS (:mod:`tests.ovs_fixture`); cleanup runs as its own process in that
namespace, and reads the MAC records the hooks left (``[hook] state_dir``).
"""

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import ovs_in_netns, quantum_properties
from tests.vdsm import EXAMPLE_VM_ID, REPO, STATE_DIR, run_hook
from vnic_drivers import naming
from vnic_drivers.cleanup import RECORD_GRACE

MAC = "00:1a:4a:16:01:51"
with open(os.path.join(REPO, "examples", "ovs_vnic.xml"), "rb") as _stream:
    OVS_DEVICE = _stream.read()


@pytest.fixture(scope="module")
def ovs():
    with ovs_in_netns("qvnic-cln") as (_, directory, running):
        running.config = os.path.join(directory, "quantum_vnic.conf")
        with open(running.config, "w", encoding="utf-8") as stream:
            # The records the hooks of these tests leave (tests/vdsm.py), as on a host.
            stream.write("[openvswitch]\novsdb = %s\n[hook]\nstate_dir = %s\n" % (running.remote, STATE_DIR))
        running.tmp = directory
        yield running


def libvirt_uri(ovs, *interfaces, defined=()):
    """A test-driver URI whose one running domain has *interfaces* (XML snippets), and
    with a domain for each UUID of *defined* that libvirt knows but does not run."""
    path = os.path.join(ovs.tmp, "node-%s.xml" % uuid.uuid4().hex[:8])
    stopped = "".join("<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
                      "<name>vm-%s</name><uuid>%s</uuid><memory>65536</memory><os><type>hvm</type>"
                      "</os><test:runstate>5</test:runstate></domain>" % (vm[:8], vm) for vm in defined)
    with open(path, "w", encoding="utf-8") as stream:
        stream.write("<node><domain type='test'><name>vm-%s</name><memory>65536</memory>"
                     "<os><type>hvm</type></os><devices>%s</devices></domain>%s</node>"
                     % (uuid.uuid4().hex[:6], "".join(interfaces), stopped))
    return "test://" + path


def bridge_interface(port, source):
    return ("<interface type='bridge'><mac address='%s'/><source bridge='%s'/>"
            "<target dev='%s'/></interface>" % (MAC, source, naming.tap_name(port)))


def cleanup(ovs, uri, *args):
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("QUANTUM_VNIC_CONF", None)
    return subprocess.run(["ip", "netns", "exec", ovs.netns, sys.executable, "-m", "vnic_drivers.cli",
                           "cleanup", "--config", ovs.config, "--libvirt-uri", uri] + list(args),
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def ip(ovs, *args):
    subprocess.run(["ip", "-n", ovs.netns] + list(args), check=True, capture_output=True)


def link(ovs, name):
    done = subprocess.run(["ip", "-n", ovs.netns, "-d", "-j", "link", "show", "dev", name],
                          capture_output=True, text=True, check=False)
    return json.loads(done.stdout)[0] if done.returncode == 0 else None


def ports(ovs):
    return ovs.vsctl("list-ports", "br-int").split()


def hybrid_plug(ovs, port, vm_id=EXAMPLE_VM_ID):
    """before_device_create of a hybrid vNIC: its devices, its port and its MAC record."""
    properties = quantum_properties("OPEN_VSWITCH", port_id=port, security_groups="sg")
    run = run_hook("before_device_create", OVS_DEVICE, properties, netns=ovs.netns, vm_id=vm_id,
                   config="[openvswitch]\novsdb = %s\n" % ovs.remote)
    assert run.returncode == 0, run.stderr
    return naming.hybrid_names(port)


def age_record(port, seconds=RECORD_GRACE + 60):
    """Make the MAC record of *port* look written *seconds* ago (a VM that died long ago)."""
    then = time.time() - seconds
    os.utime(os.path.join(STATE_DIR, port + ".json"), (then, then))


def libvirt_port(ovs, port, name=None, iface_id=None):
    """What libvirt leaves for <virtualport type='openvswitch'>: a tap on br-int."""
    name = name or naming.tap_name(port)
    ip(ovs, "tuntap", "add", "dev", name, "mode", "tap")
    ovs.vsctl("add-port", "br-int", name, "--", "set", "Interface", name,
              "external_ids:iface-id=%s" % (iface_id or port), "external_ids:attached-mac=%s" % MAC)
    return name


def test_removes_leftovers_and_keeps_what_running_vms_use(ovs):
    used, gone, plain = (str(uuid.uuid4()) for _ in range(3))
    used_names = hybrid_plug(ovs, used)
    ip(ovs, "tuntap", "add", "dev", naming.tap_name(used), "mode", "tap")
    ip(ovs, "link", "set", naming.tap_name(used), "master", used_names[0])
    gone_names = hybrid_plug(ovs, gone)
    ip(ovs, "tuntap", "add", "dev", naming.tap_name(gone), "mode", "tap")  # QEMU died, tap stayed
    age_record(gone)  # ... long ago: no VM is being started with it
    plain_tap = libvirt_port(ovs, plain)
    uri = libvirt_uri(ovs, bridge_interface(used, used_names[0]))

    dry = cleanup(ovs, uri, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove" in dry.stdout and gone_names[0] in dry.stdout and plain_tap in dry.stdout
    assert used_names[0] not in dry.stdout
    assert link(ovs, gone_names[0]) and plain_tap in ports(ovs)  # dry run: nothing changed

    done = cleanup(ovs, uri, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["running_domains"] == 1 and report["in_use"] == [used[:11]]
    assert sorted(report["removed"]) == sorted(
        list(gone_names) + [naming.tap_name(gone), plain_tap, "OVS port " + gone_names[2],
                            "OVS port " + plain_tap])
    for name in gone_names + (naming.tap_name(gone), plain_tap):
        assert link(ovs, name) is None, name
    assert gone_names[2] not in ports(ovs) and plain_tap not in ports(ovs)
    for name in used_names + (naming.tap_name(used),):  # the running VM's: untouched
        assert link(ovs, name) is not None, name
    assert used_names[2] in ports(ovs)

    again = cleanup(ovs, uri)
    assert again.returncode == 0 and "nothing to clean up" in again.stdout, again

    # The VM stopped long ago: its vNIC is a leftover now.
    age_record(used)
    assert cleanup(ovs, libvirt_uri(ovs)).returncode == 0
    for name in used_names + (naming.tap_name(used),):
        assert link(ovs, name) is None, name
    assert used_names[2] not in ports(ovs)


def test_never_touches_names_it_did_not_derive(ovs):
    port, other = str(uuid.uuid4()), str(uuid.uuid4())
    foreign = ["brq" + port[:11], "qbr-" + port[:8], "tap" + port[:8], "vnet7"]
    ip(ovs, "link", "add", foreign[0], "type", "bridge")  # the agent's bridge
    ip(ovs, "link", "add", foreign[1], "type", "bridge")
    ip(ovs, "tuntap", "add", "dev", foreign[2], "mode", "tap")
    libvirt_port(ovs, None, name=foreign[3], iface_id=port)  # not a derived name
    wrong_kind = naming.hybrid_names(port)[1]
    ip(ovs, "tuntap", "add", "dev", wrong_kind, "mode", "tap")  # qvb… but a tap: not ours
    # A derived name whose iface-id is another port's: not what this project made.
    misnamed = libvirt_port(ovs, other, name=naming.hybrid_names(other)[2], iface_id=port)
    try:
        done = cleanup(ovs, libvirt_uri(ovs), "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["removed"] == [], report
        for name in foreign + [wrong_kind, misnamed]:
            assert link(ovs, name) is not None, name
        assert foreign[3] in ports(ovs) and misnamed in ports(ovs)  # iface-id of another port
    finally:
        for name in foreign + [wrong_kind, misnamed]:
            ovs.vsctl("--if-exists", "del-port", name)
            ip(ovs, "link", "del", name)


def test_refuses_when_libvirt_cannot_be_asked(ovs):
    gone = str(uuid.uuid4())
    names = hybrid_plug(ovs, gone)
    try:
        # A libvirtd that is not running: its socket does not exist.
        done = cleanup(ovs, "qemu+unix:///system?socket=%s/no-libvirt-sock" % ovs.tmp)
        assert done.returncode == 3 and done.stdout == "", done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot ask libvirt" in lines[0] and "nothing was touched" in lines[0]
        for name in names:
            assert link(ovs, name) is not None, name
        assert names[2] in ports(ovs)
    finally:
        assert cleanup(ovs, libvirt_uri(ovs), "--force").returncode == 0  # its record is fresh
    assert link(ovs, names[0]) is None


def test_bad_uri_is_a_usage_error(ovs):
    done = cleanup(ovs, "not a uri")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done


def test_port_recreated_after_the_scan_is_kept(ovs):
    """The removal is conditional on the row the scan saw (an OVSDB ``wait``)."""
    port = str(uuid.uuid4())
    tap = libvirt_port(ovs, port)
    seen = json.loads(ovs.vsctl("--format=json", "--columns=_uuid", "find", "Port", "name=%s" % tap))
    stale = seen["data"][0][0][1]
    ovs.vsctl("del-port", tap, "--", "add-port", "br-int", tap, "--", "set", "Interface", tap,
              "external_ids:iface-id=%s" % port)  # libvirt re-added it: a new row
    script = ("import json; from vnic_drivers import config; config.select(%r); "
              "from vnic_drivers.host import privileged; print(json.dumps(privileged.run("
              "'cleanup_remove', {'name': %r, 'tap_port': %r, 'qvo_port': None})))"
              % (ovs.config, tap, stale))
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run(["ip", "netns", "exec", ovs.netns, sys.executable, "-c", script], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ports_kept"] == [tap]
    assert tap in ports(ovs)
    assert cleanup(ovs, libvirt_uri(ovs)).returncode == 0
    assert tap not in ports(ovs) and link(ovs, tap) is None


@pytest.mark.parametrize("name", ["brq0a1b2c3d-4e", "qbr0a1b2c3d", "tap0A1B2C3D-4E", "eth0",
                                  "qvo0a1b2c3d-4e5", "tap0a1b2c3d_4e"])
def test_privileged_side_refuses_names_it_does_not_derive(name):
    from vnic_drivers.errors import InputError
    from vnic_drivers.host import privileged

    with pytest.raises(InputError):
        privileged.validate("cleanup_remove", {"name": name, "qvo_port": None, "tap_port": None})


def test_doctor_reports_leftovers_and_suggests_cleanup(ovs):
    gone = str(uuid.uuid4())
    names = hybrid_plug(ovs, gone)
    config = os.path.join(ovs.tmp, "doctor.conf")
    with open(config, "w", encoding="utf-8") as stream:
        stream.write("[openvswitch]\novsdb = %s\n[hook]\nlibvirt_uri = %s\n"
                     % (ovs.remote, libvirt_uri(ovs)))
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("QUANTUM_VNIC_CONF", None)

    def leftovers_check():
        done = subprocess.run(["ip", "netns", "exec", ovs.netns, sys.executable, "-m", "vnic_drivers.cli",
                               "doctor", "--json", "--plugin", "OPEN_VSWITCH", "--config", config],
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert "Traceback" not in done.stderr, done.stderr
        return {check["check"]: check for check in json.loads(done.stdout)["checks"]}["leftovers"]

    check = leftovers_check()
    assert check["status"] == "warn", check
    assert names[0] in check["message"] and "OVS port %s" % names[2] in check["message"]
    assert "quantum-vnic cleanup" in check["fix"]
    assert link(ovs, names[0]) is not None  # doctor only reads
    assert cleanup(ovs, libvirt_uri(ovs), "--force").returncode == 0  # its record is fresh
    assert leftovers_check()["status"] == "ok"


def test_a_vm_being_started_keeps_its_devices(ovs):
    """Between before_device_create and libvirt's start a VM is no running domain, but
    its hook left a MAC record: that vNIC is skipped, with the reason, while the record
    is younger than the grace period or names a VM libvirt knows; --force removes it."""
    starting, defined, fresh = (str(uuid.uuid4()) for _ in range(3))
    defined_vm = str(uuid.uuid4())  # VDSM defined its domain and has not started it
    names = {starting: hybrid_plug(ovs, starting), defined: hybrid_plug(ovs, defined, vm_id=defined_vm),
             fresh: hybrid_plug(ovs, fresh)}
    age_record(defined)  # old, but libvirt still knows its VM
    uri = libvirt_uri(ovs, defined=[defined_vm])

    def skipped(report):
        return {vnic["id"]: vnic["reason"] for vnic in report["skipped"]}

    done = cleanup(ovs, uri, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["removed"] == [] and sorted(skipped(report)) == sorted(port[:11] for port in names)
    assert "written" in skipped(report)[starting[:11]] and "--force" in skipped(report)[starting[:11]]
    assert "%s, which libvirt knows" % defined_vm in skipped(report)[defined[:11]]
    for devices in names.values():
        assert all(link(ovs, name) is not None for name in devices) and devices[2] in ports(ovs)

    dry = cleanup(ovs, uri, "--dry-run")  # the text report: a line per vNIC skipped and why
    lines = dry.stdout.splitlines()
    assert dry.returncode == 0 and "3 skipped: a VM may be starting" in lines[-1], dry
    assert len([line for line in lines if line.startswith("skipped: ") and names[fresh][0] in line]) == 1

    # Its record is older than the grace period now: the VM that wrote it never started.
    age_record(starting)
    report = json.loads(cleanup(ovs, uri, "--json").stdout)
    assert sorted(skipped(report)) == sorted([defined[:11], fresh[:11]])
    assert "OVS port %s" % names[starting][2] in report["removed"]
    assert all(link(ovs, name) is None for name in names[starting])

    done = cleanup(ovs, uri, "--force", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["skipped"] == []
    for port in (defined, fresh):
        assert all(link(ovs, name) is None for name in names[port]) and names[port][2] not in ports(ovs)

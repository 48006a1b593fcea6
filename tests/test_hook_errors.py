"""The hook's failure contract, checked on the real executables as VDSM runs them.

Every expected error: one line on stderr naming what is wrong and the fix, no traceback,
exit 2 at ``before_*`` points (VDSM aborts) and 1 at ``after_*`` points (logged), and the
device file left byte-for-byte as it was.
"""

import os
import stat

import pytest

from tests.conftest import quantum_properties
from tests.vdsm import REPO, run_hook

with open(os.path.join(REPO, "examples", "ovs_vnic.xml"), "rb") as _stream:
    DEVICE = _stream.read()


def assert_one_line_error(run, expected_code, *needles):
    assert run.returncode == expected_code, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "ERROR" in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert run.after == run.before  # byte-for-byte untouched


def without(key, **extra):
    props = quantum_properties("OPEN_VSWITCH", **extra)
    del props[key]
    return props


BAD_PROPERTIES = {
    "missing vnic_id": (without("vnic_id"), ("vnic_id", "missing")),
    "vnic_id not uuid": (quantum_properties("OPEN_VSWITCH", port_id="0a1b2c3d;rm -rf /"), ("vnic_id", "not a UUID")),
    "missing plugin_type": (without("plugin_type"), ("plugin_type", "LINUX_BRIDGE or OPEN_VSWITCH")),
    "unknown plugin_type": (quantum_properties("MIDONET"), ("plugin_type", "MIDONET", "not supported")),
    "bad mtu": (quantum_properties("OPEN_VSWITCH", mtu="9k"), ("mtu", "68 to 65535")),
    "mtu too small": (quantum_properties("OPEN_VSWITCH", mtu="67"), ("mtu",)),
    "bad network_id": (quantum_properties("LINUX_BRIDGE", network_id="net-1"), ("network_id", "not a UUID")),
    "bad security_groups": (quantum_properties("OPEN_VSWITCH", security_groups="sg1;reboot"), ("security_groups",)),
    "bad vmId": (quantum_properties("OPEN_VSWITCH"), ("vmId",)),
}


@pytest.mark.parametrize("case", sorted(BAD_PROPERTIES))
@pytest.mark.parametrize("hook_point,code", [("before_device_create", 2), ("before_nic_hotplug", 2),
                                             ("after_device_create", 1)])
def test_bad_property(case, hook_point, code):
    properties, needles = BAD_PROPERTIES[case]
    vm_id = "not-a-uuid" if case == "bad vmId" else "d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de"
    run = run_hook(hook_point, DEVICE, properties, vm_id=vm_id)
    assert_one_line_error(run, code, *needles)


BAD_XML = {
    "not xml": (b"this is not xml", ("not well-formed",)),
    "truncated": (DEVICE[:60], ("not well-formed",)),
    "empty": (b"", ("not well-formed",)),
    "a disk": (b"<disk type='file'><source file='/x'/></disk>", ("<disk>", "expected <interface>")),
    "bad mac": (DEVICE.replace(b"00:1a:4a:16:01:51", b"00:1a:4a:16:01"), ("mac address", "MAC")),
    "entity expansion": (b"<!DOCTYPE i [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><interface type='bridge'><mac address='&x;'/></interface>",
                         ("external entity",)),
}


@pytest.mark.parametrize("case", sorted(BAD_XML))
def test_bad_device_xml(case):
    xml, needles = BAD_XML[case]
    run = run_hook("before_device_create", xml, quantum_properties("OPEN_VSWITCH"))
    assert_one_line_error(run, 2, *needles)


BAD_CONFIG = {
    "bad value": ("[openvswitch]\nplug = magic\n", ("plug", "virtualport, hook")),
    "unknown option": ("[openvswitch]\nbridge = br-int\n", ("unknown option 'bridge'",)),
    "unknown section": ("[ovs]\nplug = hook\n", ("unknown section [ovs]",)),
    "not ini": ("plug = hook\n", ("not a valid ini file",)),
    "bad bridge name": ("[openvswitch]\nintegration_bridge = br int; x\n", ("integration_bridge",)),
    "bad mtu": ("[hook]\nmtu = 12\n", ("mtu",)),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIG))
def test_bad_config(case):
    config, needles = BAD_CONFIG[case]
    run = run_hook("before_device_create", DEVICE, quantum_properties("OPEN_VSWITCH"), config=config)
    assert_one_line_error(run, 2, "config", *needles)


def test_named_config_file_missing():
    run = run_hook("before_device_create", DEVICE, quantum_properties("OPEN_VSWITCH"),
                   hook_args=["--config", "/nonexistent/quantum_vnic.conf"])
    assert_one_line_error(run, 2, "/nonexistent/quantum_vnic.conf", "does not exist")


def test_missing_hook_file_variable():
    # The file goes to another variable: $_hook_domxml is not set at all.
    run = run_hook("before_device_create", DEVICE, quantum_properties("OPEN_VSWITCH"),
                   variable="_hook_elsewhere")
    assert_one_line_error(run, 2, "_hook_domxml")


def test_destroy_tolerates_damaged_file():
    """Tear-down still runs on the port id when VDSM hands over a damaged file."""
    # Dry run: unplug reaches the host (OVSDB, devices), and this is the machine's own.
    run = run_hook("after_device_destroy", b"<interface", quantum_properties("OPEN_VSWITCH"),
                   device_xml_known=True, dry_run=True)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "would run ovs_unplug" in run.stderr


def test_rewrite_replaces_file_atomically_and_keeps_mode(tmp_path):
    from vnic_drivers import hooking

    target = tmp_path / "domxml"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    inode = target.stat().st_ino
    hooking.write_bytes_atomically(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != inode  # renamed over, never truncated in place
    assert os.listdir(tmp_path) == ["domxml"]  # no temp file left behind

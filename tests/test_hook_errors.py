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


def with_doctype(prolog):
    """The example device with *prolog* between its XML declaration and its element."""
    declaration, rest = DEVICE.split(b"\n", 1)
    assert declaration.startswith(b"<?xml ") and rest.startswith(b"<interface")
    return declaration + b"\n" + prolog + b"\n" + rest


BAD_XML = {
    "not xml": (b"this is not xml", ("not well-formed",)),
    "truncated": (DEVICE[:60], ("not well-formed",)),
    "empty": (b"", ("not well-formed",)),
    "a disk": (b"<disk type='file'><source file='/x'/></disk>", ("<disk>", "expected <interface>")),
    "bad mac": (DEVICE.replace(b"00:1a:4a:16:01:51", b"00:1a:4a:16:01"), ("mac address", "MAC")),
    "entity expansion": (b"<!DOCTYPE i [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><interface type='bridge'><mac address='&x;'/></interface>",
                         ("has a DOCTYPE",)),
    # Written back unexpanded, '&m;' would leave a file that is not well-formed.
    "internal entity": (with_doctype(b"<!DOCTYPE interface [<!ENTITY m '00:1a:4a:16:01:51'>]>")
                        .replace(b'address="00:1a:4a:16:01:51"', b'address="&m;"'), ("has a DOCTYPE",)),
    "billion laughs": (b"<!DOCTYPE i [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>"
                       b"<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'><!ENTITY d '&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;'>]>"
                       b"<interface type='bridge'><alias name='&d;'/></interface>", ("has a DOCTYPE",)),
    "external DTD": (with_doctype(b"<!DOCTYPE interface SYSTEM 'http://192.0.2.1/interface.dtd'>"),
                     ("has a DOCTYPE",)),
    "bare DOCTYPE": (with_doctype(b"<!DOCTYPE interface>"), ("has a DOCTYPE",)),
    "DOCTYPE after a comment": (with_doctype(b"<!-- VDSM -->\n<!DOCTYPE interface []>"), ("has a DOCTYPE",)),
    "nested too deep": (b"<interface>" + b"<a>" * 300 + b"</a>" * 300 + b"</interface>", ("not well-formed",)),
}


@pytest.mark.parametrize("case", sorted(BAD_XML))
@pytest.mark.parametrize("hook_point", ["before_device_create", "before_nic_hotplug"])
def test_bad_device_xml(case, hook_point):
    xml, needles = BAD_XML[case]
    run = run_hook(hook_point, xml, quantum_properties("OPEN_VSWITCH"))
    assert_one_line_error(run, 2, *needles)


def test_internal_entity_case_is_otherwise_a_good_device():
    """The DOCTYPE alone is why it is refused: without it the same device is rewritten."""
    assert b"&m;" in BAD_XML["internal entity"][0]
    run = run_hook("before_device_create", DEVICE, quantum_properties("OPEN_VSWITCH"))
    assert run.returncode == 0 and run.changed, run


def special_file(kind, directory):
    """A path VDSM never hands over: a character device, a FIFO, a directory."""
    if kind == "/dev/zero":
        return "/dev/zero"
    path = os.path.join(str(directory), kind)
    if kind == "fifo":
        os.mkfifo(path)  # nobody writes: a blocking open would hang the hook forever
    else:
        os.mkdir(path)
    return path


SPECIAL = {"/dev/zero": "a character device", "fifo": "a FIFO", "directory": "a directory"}


@pytest.mark.parametrize("kind", sorted(SPECIAL))
@pytest.mark.parametrize("hook_point,variable,code", [
    ("before_device_create", "_hook_domxml", 2),
    ("before_nic_hotplug", "_hook_domxml", 2),
    ("after_get_caps", "_hook_json", 1),
])
def test_hook_file_that_is_not_a_regular_file(kind, hook_point, variable, code, tmp_path):
    import subprocess
    import sys

    from tests.vdsm import EXAMPLE_VM_ID, HOOKS_DIR, hook_argv, test_config, vdsm_environment

    path = special_file(kind, tmp_path)
    config = tmp_path / "quantum_vnic.conf"
    config.write_text(test_config())
    env = vdsm_environment(quantum_properties("OPEN_VSWITCH"), None, EXAMPLE_VM_ID, path, variable,
                           dict(os.environ, PYTHONPATH=REPO))
    done = subprocess.run([sys.executable, os.path.join(HOOKS_DIR, hook_point)] + hook_argv(str(config)),
                          env=env, capture_output=True, text=True, timeout=30, check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, done
    assert len(lines) == 1 and "Traceback" not in done.stderr and "ERROR" in lines[0], done.stderr
    for needle in (path, SPECIAL[kind], "not a regular file"):
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("hook_point,variable,code,data", [
    ("before_device_create", "_hook_domxml", 2,
     DEVICE.replace(b"</interface>", b"<!--" + b"x" * (2 << 20) + b"--></interface>")),
    ("after_get_caps", "_hook_json", 1, b'{"padding": "' + b"x" * (2 << 20) + b'"}'),
], ids=["domxml", "caps"])  # not the data: pytest puts the id in every child's environment
def test_hook_file_larger_than_a_mebibyte(hook_point, variable, code, data):
    run = run_hook(hook_point, data, quantum_properties("OPEN_VSWITCH"), variable=variable)
    assert_one_line_error(run, code, "larger than 1048576 bytes")


@pytest.mark.parametrize("case,data,needle", [
    ("arrays", b"[" * 5000 + b"]" * 5000, "nest deeper than 64 levels"),
    ("objects", b'{"a":' * 5000 + b"1" + b"}" * 5000, "nest deeper than 64 levels"),
    ("inside caps", b'{"openstack_binding_host_ids": ' + b"[" * 100000 + b"]" * 100000 + b"}",
     "nest deeper than 64 levels"),
    ("not utf-8", b'{"a": "\xff"}', "not JSON"),
], ids=lambda value: value if isinstance(value, str) and len(value) < 40 else "")
def test_capabilities_nested_too_deep(case, data, needle):
    run = run_hook("after_get_caps", data, {}, variable="_hook_json",
                   config="[openvswitch]\novsdb = unix:/nonexistent/db.sock\n")
    assert_one_line_error(run, 1, "capabilities in", needle)


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

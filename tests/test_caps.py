"""``after_get_caps`` on a real ovsdb-server: the host's OVS identity, and OVS down.

The hook runs as VDSM runs it: the capabilities JSON in the file named by
``$_hook_json``, read back afterwards.
"""

import json
import shutil
import tempfile

import pytest

from tests import ovs_fixture
from tests.vdsm import run_hook

CAPS = {"kvmEnabled": "true", "cpuCores": "2", "openstack_binding_host_ids": {"LINUX_BRIDGE": "host-7"}}
SYSTEM_ID = "5a2c0e3e-8c3d-4f5e-9a1b-2c3d4e5f6a7b"


@pytest.fixture(scope="module")
def ovs():
    reason = ovs_fixture.skip_reason(vswitchd=False)
    if reason:
        pytest.skip(reason)
    directory = tempfile.mkdtemp(prefix="qvnic-caps-", dir="/tmp")
    try:
        with ovs_fixture.private_ovs(directory, vswitchd=False) as running:
            yield running
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def get_caps(remote, caps=None):
    text = json.dumps(CAPS if caps is None else caps)
    run = run_hook("after_get_caps", text, {}, config="[openvswitch]\novsdb = %s\n" % remote,
                   variable="_hook_json")
    return run, json.loads(run.after)


def set_ids(ovs, **ids):
    ovs.vsctl("clear", "Open_vSwitch", ".", "external_ids")
    for key, value in ids.items():
        ovs.vsctl("set", "Open_vSwitch", ".", "external_ids:%s=%s" % (key.replace("_", "-"), value))


def test_system_id_reported(ovs):
    set_ids(ovs, system_id=SYSTEM_ID, hostname="host7.example.com")
    run, caps = get_caps(ovs.remote)
    assert (run.returncode, run.stderr) == (0, "")
    assert caps["openstack_binding_host_ids"] == {"LINUX_BRIDGE": "host-7", "OPEN_VSWITCH": SYSTEM_ID}
    assert {key: caps[key] for key in ("kvmEnabled", "cpuCores")} == {"kvmEnabled": "true", "cpuCores": "2"}


def test_hostname_when_no_system_id(ovs):
    set_ids(ovs, hostname="host7.example.com")
    run, caps = get_caps(ovs.remote, {"kvmEnabled": "true"})
    assert (run.returncode, run.stderr) == (0, "")
    assert caps == {"kvmEnabled": "true", "openstack_binding_host_ids": {"OPEN_VSWITCH": "host7.example.com"}}


def test_neither_id_set(ovs):
    set_ids(ovs)
    run, _ = get_caps(ovs.remote)
    assert run.returncode == 0 and not run.changed
    assert len(run.stderr.splitlines()) == 1 and "WARNING" in run.stderr and "system-id" in run.stderr


def test_already_reported_leaves_the_file_alone(ovs):
    set_ids(ovs, system_id=SYSTEM_ID)
    run, _ = get_caps(ovs.remote, {"openstack_binding_host_ids": {"OPEN_VSWITCH": SYSTEM_ID}})
    assert (run.returncode, run.stderr, run.changed) == (0, "", False)


def test_ovs_down_one_line_and_exit_0():
    if ovs_fixture.skip_reason(vswitchd=False):
        pytest.skip(ovs_fixture.skip_reason(vswitchd=False))
    directory = tempfile.mkdtemp(prefix="qvnic-caps-", dir="/tmp")
    try:
        with ovs_fixture.private_ovs(directory, vswitchd=False) as stopping:
            remote = stopping.remote
            stopping.stop("ovsdb-server")  # was up, now down: the socket file may linger
            run, _ = get_caps(remote)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert run.returncode == 0 and not run.changed
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert "WARNING" in lines[0] and "unreachable" in lines[0] and "openstack_binding_host_ids" in lines[0]


def test_malformed_caps_one_line(ovs):
    run = run_hook("after_get_caps", "not json", {}, config="[openvswitch]\novsdb = %s\n" % ovs.remote,
                   variable="_hook_json")
    assert run.returncode == 1 and not run.changed
    assert len(run.stderr.splitlines()) == 1 and "not JSON" in run.stderr


def privileged(remote, directory):
    """The sudo-side entry point as a process: JSON arguments in, JSON result out.

    The remote is not an argument: the entry point reads it from its own config (here
    named by $QUANTUM_VNIC_CONF, which sudo would drop for /etc/vdsm/quantum_vnic.conf).
    """
    import os
    import subprocess
    import sys

    from tests.vdsm import REPO

    config = os.path.join(directory, "quantum_vnic.conf")
    with open(config, "w", encoding="utf-8") as stream:
        stream.write("[openvswitch]\novsdb = %s\n" % remote)
    env = dict(os.environ, PYTHONPATH=REPO, QUANTUM_VNIC_CONF=config)
    return subprocess.run([sys.executable, "-m", "vnic_drivers.host.privileged", "ovs_host_identity"],
                          input="{}", env=env, capture_output=True, text=True, cwd=REPO, check=False)


def test_privileged_entry_point_answers_json(ovs, tmp_path):
    set_ids(ovs, system_id=SYSTEM_ID)
    done = privileged(ovs.remote, str(tmp_path))
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {"system-id": SYSTEM_ID}
    down = privileged("unix:/nonexistent/db.sock", str(tmp_path))
    assert down.returncode == 1 and len(down.stderr.splitlines()) == 1 and "unreachable" in down.stderr

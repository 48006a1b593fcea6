"""``quantum-vnic demo`` end to end: it runs the real hooks and leaves nothing behind.

The demo runs as its own process, as an admin would run it; afterwards (also after
Ctrl-C or SIGTERM in the middle) its network namespace, its OVS daemons, its directory
and its devices must all be gone. Without root it must fall back to the dry-run path.
"""

import os
import re
import signal
import subprocess
import sys

import pytest

from tests import as_vdsm
from tests.vdsm import REPO
from vnic_drivers import sandbox

DEMO = [sys.executable, "-m", "vnic_drivers.cli", "demo"]
TAPS = ("tap0a1b2c3d-4e", "tap5e6f7a8b-9c")


@pytest.fixture
def root_host():
    reason = sandbox.missing_requirements()
    if reason:
        pytest.skip(reason)


def env():
    return dict(os.environ, PYTHONPATH=REPO)


def sandbox_of(output):
    """(namespace, directory) the demo announced."""
    name = re.search(r"^network namespace (\S+)", output, re.M).group(1)
    directory = re.search(r"^directory (\S+)", output, re.M).group(1)
    return name, directory


def assert_nothing_left(name, directory):
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert name not in namespaces.split()
    assert not os.path.exists("/run/netns/" + name)
    assert not os.path.exists(directory)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as stream:
                cmdline = stream.read().decode("utf-8", "replace")
        except OSError:
            continue
        assert directory not in cmdline and name not in cmdline, (pid, cmdline)
    from pyroute2 import IPRoute

    with IPRoute() as ipr:  # read-only look at this host's own devices
        assert not [tap for tap in TAPS if ipr.link_lookup(ifname=tap)]


def test_demo_runs_end_to_end(root_host):
    done = subprocess.run(DEMO, env=env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    out = done.stdout
    for title in ("1. a throwaway host", "2. VDSM starts VM", "3. libvirt creates the devices",
                  "4. hot-unplug", "5. the VM is destroyed", "done: every hook exited 0", "clean-up"):
        assert "== " + title in out
    for hook in ("before_device_create", "after_device_create", "after_nic_hotunplug", "after_device_destroy"):
        assert "-- %s, vNIC" % hook in out
    assert out.count("exit 0 (success)") == 6
    assert '<target dev="tap0a1b2c3d-4e"/>' in out and '<source bridge="br-int"/>' in out
    assert '<virtualport type="openvswitch"><parameters interfaceid="5e6f7a8b-' in out
    assert 'iface-id="5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"' in out  # libvirt's OVS port
    # after_device_create took the Linux Bridge tap off ;vdsmdummy; onto the agent's bridge.
    after_create = out.split("== 3.")[1].split("== 4.")[0].split("-- devices in")[1]
    assert re.search(r"^ +%s +tun +up .* on brq7c9d1e2f-3a$" % TAPS[0], after_create, re.M), after_create
    # After the hot-unplug only the OVS tap remains; after destroy, neither.
    after_unplug = out.split("== 4.")[1].split("== 5.")[0]
    assert TAPS[1] in after_unplug.split("-- devices in")[1] and TAPS[0] not in after_unplug.split("-- devices in")[1]
    assert not any(tap in out.split("== 5.")[1].split("-- devices in")[1] for tap in TAPS)
    assert_nothing_left(*sandbox_of(out))


@pytest.mark.parametrize("signum,code,group", [
    (signal.SIGINT, 130, True),  # Ctrl-C in a terminal: the whole process group
    (signal.SIGINT, 130, False),
    (signal.SIGTERM, 143, False),
], ids=["ctrl-c", "sigint", "sigterm"])
def test_interrupted_demo_cleans_up(root_host, signum, code, group):
    process = subprocess.Popen(DEMO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if line.startswith("== 3."):  # the sandbox, OVS and the first hooks exist now
                if group:
                    os.killpg(process.pid, signum)
                else:
                    process.send_signal(signum)
                break
        rest, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    out = "".join(seen) + rest
    assert process.returncode == code, out + errors
    assert "interrupted" in out and "removed network namespace" in out
    assert "Traceback" not in errors
    assert_nothing_left(*sandbox_of(out))


def test_without_root_shows_the_dry_run_instead():
    reason = as_vdsm.required_tools()
    if reason:
        pytest.skip(reason)
    with as_vdsm.workdir() as workdir:
        done = as_vdsm.run_as_vdsm(workdir, DEMO, env=env())
    if done.returncode == as_vdsm.CANNOT:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("quantum-vnic demo: needs root") and "simulate --dry-run" in first
    assert '<target dev="tap0a1b2c3d-4e"/>' in done.stdout and "virtualport" in done.stdout
    assert done.stderr.count("exit 0 (success)") == 2


def test_private_ovs_that_cannot_start_says_why(root_host, tmp_path):
    (tmp_path / "conf.db").write_text("not an OVSDB database\n")  # ovsdb-server exits at once
    ovs = sandbox.PrivateOvs(str(tmp_path))
    try:
        with pytest.raises(RuntimeError) as caught:
            ovs.start_ovsdb_server()
    finally:
        ovs.stop()
    message = str(caught.value)
    assert message.startswith("ovsdb-server on %s exited with status" % ovs.socket), message
    assert "it said: ovsdb-server: " in message and "\n" not in message

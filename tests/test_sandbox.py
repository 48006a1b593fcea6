"""The throwaway host itself: it works inside its namespace on every pyroute2 the package
supports (EL9's 0.7 has no ``IPRoute(netns=...)``) and leaves nothing behind, even when
it fails half-way through its creation."""

import json
import os
import signal
import subprocess
import sys
import tempfile

import pytest

from tests.child_process import wait_until_ended
from tests.conftest import requires_host
from tests.vdsm import REPO
from vnic_drivers import sandbox

pytestmark = requires_host


def _namespaces():
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Where the sandbox's temp directory goes, to see whether it is left behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_devices_are_made_and_seen_inside_the_namespace_only():
    with sandbox.Sandbox("qvnic-sbx") as box:
        box.add_bridge("brq-sbx")
        box.add_tap("tap-sbx", master="brq-sbx", mtu=1400)
        links = box.links()
        assert links["lo"]["up"]
        assert links["tap-sbx"] == {"kind": "tun", "master": "brq-sbx", "up": True, "mtu": 1400}
        from pyroute2 import IPRoute

        with IPRoute() as ipr:  # the test's own namespace: untouched
            assert not ipr.link_lookup(ifname="tap-sbx")
        box.delete_link("tap-sbx")
        assert "tap-sbx" not in box.links()
    assert box.name not in _namespaces()


def test_failed_creation_of_the_namespace_leaves_no_directory(private_tmp):
    box = sandbox.Sandbox("qvnic-sbx" + "x" * 300)  # too long for a file name in /run/netns
    with pytest.raises(OSError):
        with box:
            pass
    assert list(private_tmp.iterdir()) == []


class _BrokenNetlink(sandbox.Sandbox):
    """A sandbox whose first netlink call fails (as ``IPRoute(netns=...)`` did on
    pyroute2 0.7): the real failure cannot be produced on this machine's pyroute2."""

    def ipr(self):
        assert self.name in _namespaces()  # the failure comes after the namespace exists
        raise TypeError("__init__() got an unexpected keyword argument 'netns'")


def test_failure_after_the_namespace_exists_removes_it_and_the_directory(private_tmp):
    box = _BrokenNetlink("qvnic-sbx")
    with pytest.raises(TypeError):
        with box:
            pass
    assert box.name not in _namespaces()
    assert list(private_tmp.iterdir()) == []
    box.delete()  # still safe afterwards


def test_create_without_with_cleans_up_too(private_tmp):
    box = _BrokenNetlink("qvnic-sbx")
    with pytest.raises(TypeError):
        box.create()
    assert box.name not in _namespaces()
    assert list(private_tmp.iterdir()) == []


# A run that makes a sandbox with a private OVS, says what it made, and waits to be killed.
KILLED_RUN = """
import json, sys, time
from vnic_drivers import sandbox
box = sandbox.Sandbox("qvnic-sbx").create()
box.start_ovs()
print(json.dumps({"name": box.name, "directory": box.directory, "pids": list(box.ovs.pids.values())}))
sys.stdout.flush()
time.sleep(600)
"""


def test_a_killed_run_leaves_no_ovs_and_the_next_run_removes_its_namespace():
    from tests import ovs_fixture

    reason = ovs_fixture.skip_reason()
    if reason:
        pytest.skip(reason)
    run = subprocess.Popen([sys.executable, "-c", KILLED_RUN], stdout=subprocess.PIPE, cwd=REPO,
                           env=dict(os.environ, PYTHONPATH=REPO))
    try:
        made = json.loads(run.stdout.readline())
    finally:
        run.send_signal(signal.SIGKILL)  # no clean-up of its own
        run.wait()
        run.stdout.close()
    assert len(made["pids"]) == 2  # ovsdb-server and ovs-vswitchd
    # The daemons die with the run (parent-death signal), within a few seconds ...
    left = wait_until_ended(made["pids"], 5)
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # this test's daemons: never left running, even when it fails
    assert left == []
    # ... the namespace and the directory stay, with the dead owner's pid in their names ...
    assert made["name"] in _namespaces() and os.path.isdir(made["directory"])
    assert os.path.basename(made["directory"]) == made["name"]

    # ... until the next run removes them, and nothing of a live owner (this process).
    with sandbox.Sandbox("qvnic-sbx") as live:
        assert made["name"] not in _namespaces() and not os.path.exists(made["directory"])
        assert sandbox.remove_stale() == []
        assert live.name in _namespaces() and os.path.isdir(live.directory)


def test_names_that_are_not_owned_are_never_removed(private_tmp):
    foreign = ["qvnic-sbx-1a2b3c4d", "qvnic-sbx-99999999-zzzzzzzz", "other-%d-1a2b3c4d" % 2 ** 22,
               "qvnic-sbx-%d-1a2b3c4d" % os.getpid()]
    dead = "qvnic-sbx-%d-1a2b3c4d" % 2 ** 22  # PID_MAX_LIMIT: no process has this pid
    for name in foreign + [dead]:
        (private_tmp / name).mkdir()
    assert sandbox.remove_stale() == [str(private_tmp / dead)]
    assert sorted(path.name for path in private_tmp.iterdir()) == sorted(foreign)

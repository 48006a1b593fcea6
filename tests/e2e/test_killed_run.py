"""A test run killed outright (SIGKILL: no fixture teardown) leaves no process behind,
and the next run removes what it does leave (its namespace and OVS directory).

The e2e host is started in a child process, as a test run would start it, with a
running guest; the child is killed; every daemon it started (ovsdb-server,
ovs-vswitchd, libvirtd's launcher, libvirtd, the guest's QEMU) must end within seconds:
OVS gets SIGKILL and the launcher SIGTERM when their parent dies (Linux's parent-death
signal), and the launcher stops libvirtd and kills the guests it leaves.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.child_process import wait_until_ended
from tests.e2e import host as host_module
from tests.e2e import procs
from tests.vdsm import REPO

# A run that starts the e2e host and a guest, says which processes it has, and waits.
RUN = """
import json, os, sys, time
from tests.e2e import host as host_module
from tests.e2e.libvirtd import QEMU
from tests.e2e.vdsm_driver import Vm

with host_module.running(sys.argv[1]) as host:
    host.libvirtd.connect().createXML(Vm("killed-run", []).domain_xml(QEMU), 0)
    root = host.libvirtd.root
    pids = dict(host.ovs.pids, launcher=host.libvirtd.launcher.pid)
    for name, path in (("libvirtd", "libvirtd.pid"), ("qemu", "run/libvirt/qemu/killed-run.pid")):
        with open(os.path.join(root, path)) as stream:
            pids[name] = int(stream.read())
    print(json.dumps({"netns": host.netns, "ovs": host.ovs.directory, "pids": pids}))
    sys.stdout.flush()
    time.sleep(600)
"""


def test_a_killed_run_leaves_no_process_and_the_next_removes_its_namespace(tmp_path):
    try:
        host_module.check()
    except procs.Unavailable as err:
        pytest.skip(str(err))
    except procs.NotInstalled as err:
        pytest.fail(str(err), pytrace=False)
    run = subprocess.Popen([sys.executable, "-c", RUN, str(tmp_path)], stdout=subprocess.PIPE,
                           cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))
    try:
        line = run.stdout.readline()
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
        run.stdout.close()
    assert line, "the run did not start its host"
    made = json.loads(line)
    assert sorted(made["pids"]) == ["launcher", "libvirtd", "ovs-vswitchd", "ovsdb-server", "qemu"]

    left = wait_until_ended(list(made["pids"].values()), 20)
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # this test's processes: never left running, even when it fails
    assert left == [], {name: pid for name, pid in made["pids"].items() if pid in left}

    from vnic_drivers import sandbox

    # Nobody tore them down; the next Sandbox does. That may be another one than ours:
    # CI runs its EL9 pass beside the first, and any Sandbox created on the machine
    # meanwhile removes what a dead owner left (the point of remove_stale).
    removed = sandbox.remove_stale()
    assert made["netns"] not in os.listdir(sandbox.NETNS_DIR) and not os.path.exists(made["ovs"])
    assert all(os.path.basename(path).startswith("qvnic-") for path in removed), removed

"""Faults on real parts: hooks killed half-way, OVSDB stopped, restarted or hung, devices
vanishing under a hook, a full ``/run``, a device file the hook cannot write.

Everything runs in a test network namespace with a private Open vSwitch
(:mod:`tests.ovs_fixture`: real ``ovsdb-server``/``ovs-vswitchd``), hooks as processes
(:func:`tests.vdsm.run_hook`; through the real sudo path as ``vdsm`` where it matters,
:mod:`tests.as_vdsm`), and ``quantum-vnic cleanup`` asking libvirt's test driver (no VM
runs, so every vNIC is a leftover once its VM is gone). The invariant after every fault:
one line and a defined exit code from the hook, and the next hook run for that vNIC or
``cleanup`` leaves the host fully plugged or fully clean, never half.

``SIGKILL_ITERATIONS`` (default 200) sets the kill loop's length; each iteration's
random kill delay lies within the measured duration of the operation, so the loop's
time follows the hook's (about a minute here).
"""

import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest

from tests import as_vdsm, ovs_fixture
from tests.conftest import NETWORK_ID, assert_one_line, ovs_in_netns, quantum_properties, unplug_marked_only
from tests.vdsm import REPO, run_hook
from vnic_drivers import naming

pytestmark = pytest.mark.faults

ITERATIONS = int(os.environ.get("SIGKILL_ITERATIONS", "200"))
MAC = "00:1a:4a:16:01:51"
with open(os.path.join(REPO, "examples", "ovs_vnic.xml"), "rb") as _stream:
    OVS_DEVICE = _stream.read()
with open(os.path.join(REPO, "examples", "linux_bridge_vnic.xml"), "rb") as _stream:
    LB_DEVICE = _stream.read()
DUMMY = naming.VDSM_DUMMY_BRIDGE
BRQ = naming.linux_bridge_name(NETWORK_ID)


class Host:
    """The test's host: a namespace, a private OVS, the bridges VDSM and the agent make."""

    def __init__(self, netns, ovs, directory):
        from pyroute2 import NetNS

        self.netns = netns
        self.ovs = ovs
        self.directory = directory
        self.ns = NetNS(netns)
        # No resident helper listens there: hooks as vdsm take the sudo path; their MAC
        # records go to a directory of the test's own.
        state = os.path.join(directory, "state")
        os.mkdir(state)
        os.chmod(state, 0o1777)
        self.config = "[openvswitch]\novsdb = %s\n[helper]\nsocket = %s\n[hook]\nstate_dir = %s\n" % (
            ovs.remote, os.path.join(directory, "no-helper.sock"), state)
        self.config_path = os.path.join(directory, "quantum_vnic.conf")
        with open(self.config_path, "w", encoding="utf-8") as stream:
            stream.write(self.config)
        os.chmod(self.config_path, 0o644)
        node = os.path.join(directory, "node.xml")  # libvirt's test driver: no VM runs
        with open(node, "w", encoding="utf-8") as stream:
            stream.write("<node/>")
        self.libvirt_uri = "test://" + node
        for bridge in (DUMMY, BRQ):
            self.add_bridge(bridge)

    def close(self):
        self.ns.close()

    def hook(self, hook_point, properties, xml=OVS_DEVICE, timeout=120):
        return run_hook(hook_point, xml, properties, netns=self.netns, config=self.config,
                        timeout=timeout)

    def running_vms(self, ports):
        """A libvirt test-driver URI whose running domain uses the vNICs of *ports*."""
        node = os.path.join(self.directory, "node-%s.xml" % uuid.uuid4().hex[:8])
        with open(node, "w", encoding="utf-8") as stream:
            stream.write("<node><domain type='test'><name>vm</name><memory>65536</memory>"
                         "<os><type>hvm</type></os><devices>%s</devices></domain></node>" % "".join(
                             "<interface type='bridge'><source bridge='%s'/><target dev='%s'/>"
                             "</interface>" % (naming.hybrid_names(port)[0], naming.tap_name(port))
                             for port in ports))
        return "test://" + node

    def cleanup(self, libvirt_uri=None, *args):
        env = dict(os.environ, PYTHONPATH=REPO)
        env.pop("QUANTUM_VNIC_CONF", None)
        return subprocess.run(["ip", "netns", "exec", self.netns, sys.executable, "-m",
                               "vnic_drivers.cli", "cleanup", "--config", self.config_path,
                               "--libvirt-uri", libvirt_uri or self.libvirt_uri] + list(args),
                              env=env, capture_output=True, text=True, timeout=120, check=False)

    # --- kernel objects ---

    def add_bridge(self, name):
        self.ns.link("add", ifname=name, kind="bridge")
        self.ns.link("set", index=self.lookup(name), state="up")

    def add_tap(self, name, master=None):
        """A tap as libvirt makes it (persistent here: no QEMU holds it), up, on *master*."""
        self.ns.link("add", ifname=name, kind="tuntap", mode="tap")
        settings = {"state": "up"}
        if master:
            settings["master"] = self.lookup(master)
        self.ns.link("set", index=self.lookup(name), **settings)

    def lookup(self, name, ns=None):
        found = (ns or self.ns).link_lookup(ifname=name)
        return found[0] if found else None

    def delete(self, name):
        index = self.lookup(name)
        if index is not None:
            self.ns.link("del", index=index)

    def link(self, name, ns=None):
        """{"kind", "master", "up", "group"} of *name*, or None (*ns*: a thread's own NetNS)."""
        ns = ns or self.ns
        index = self.lookup(name, ns)
        links = ns.get_links(index) if index is not None else []
        if not links:
            return None
        info = links[0].get_attr("IFLA_LINKINFO")
        master = links[0].get_attr("IFLA_MASTER")
        masters = ns.get_links(master) if master else []
        return {"kind": info.get_attr("IFLA_INFO_KIND") if info else None,
                "master": masters[0].get_attr("IFLA_IFNAME") if masters else None,
                "up": bool(links[0]["flags"] & 1), "group": links[0].get_attr("IFLA_GROUP")}

    # --- OVSDB ---

    def port(self, name):
        """The port's status on br-int (exists, on_bridge, iface_id) from the real OVSDB."""
        from vnic_drivers.host import ovsdb

        with ovsdb.connect(self.ovs.remote) as db:
            status = ovsdb.port_status(db, ovs_fixture.BRIDGE, name)
            status["interface"] = bool(db.transact(
                {"op": "select", "table": "Interface", "where": [["name", "==", name]],
                 "columns": ["name"]})[0]["rows"])
        return status

    def hybrid_state(self, port, ns=None):
        """"plugged" (every object, wired right, in device group 0), "marked" (what an
        unplug leaves between marking its devices for removal and deleting them: OVS rows
        gone, qvo down, qvo and qbr in the port's removal group), "clean" (none) or what
        is half there."""
        qbr, qvb, qvo = naming.hybrid_names(port)
        links = {name: self.link(name, ns) for name in (qbr, qvb, qvo)}
        row = self.port(qvo)
        if not any(links.values()) and not row["exists"] and not row["interface"]:
            return "clean"
        plugged = (links[qbr] and links[qbr]["kind"] == "bridge" and links[qbr]["up"]
                   and links[qvb] and links[qvb]["kind"] == "veth" and links[qvb]["master"] == qbr
                   and links[qvb]["up"] and links[qvo] and links[qvo]["kind"] == "veth"
                   and links[qvo]["up"] and row["on_bridge"] and row["iface_id"] == port
                   and all(link["group"] == 0 for link in links.values()))
        if plugged:
            return "plugged"
        from vnic_drivers.host import netlink

        if (all(links.values()) and not row["exists"] and not row["interface"]
                and not links[qvo]["up"]
                and links[qvo]["group"] == links[qbr]["group"] == netlink.removal_group(qvo)):
            return "marked"
        return "half: %s; port %s" % (links, row)


@pytest.fixture(scope="module")
def host():
    with ovs_in_netns("qvnic-flt", mode=0o755) as (name, directory, ovs):
        running = Host(name, ovs, directory)
        try:
            yield running
        finally:
            running.close()


def hybrid(port):
    return quantum_properties("OPEN_VSWITCH", port_id=port, security_groups="sg-web")


def assert_replugs(host, port):
    """Nothing of *port* is left, and the next run plugs and unplugs it completely."""
    assert host.hybrid_state(port) == "clean"
    assert host.hook("before_device_create", hybrid(port)).returncode == 0
    assert host.hybrid_state(port) == "plugged"
    assert host.hook("after_device_destroy", hybrid(port)).returncode == 0
    assert host.hybrid_state(port) == "clean"


def timed(action):
    import time

    start = time.monotonic()
    result = action()
    return result, time.monotonic() - start


# --- SIGKILL at random points of a hybrid plug and unplug ------------------------------


# Each worker drives its own vNIC; they run side by side, as VDSM runs hooks for several
# VMs at once, and so the loop takes a fraction of the time on a machine with cores to spare.
WORKERS = 4


def test_sigkill_at_random_points_of_hybrid_plug_and_unplug(host):
    """Kill the hook (SIGKILL, as the OOM killer or a VDSM timeout would) at a random
    moment of its run; the next run of that hook point, or cleanup, must then leave the
    vNIC fully plugged or fully clean."""
    seed = int(os.environ.get("SIGKILL_SEED", "13"))
    # The duration of each operation, measured here, bounds the kill delays.
    port = str(uuid.uuid4())
    plug, plug_time = timed(lambda: host.hook("before_device_create", hybrid(port)))
    assert plug.returncode == 0, plug.stderr
    unplug, unplug_time = timed(lambda: host.hook("after_device_destroy", hybrid(port)))
    assert unplug.returncode == 0, unplug.stderr
    assert host.hybrid_state(port) == "clean"

    seen = collections.Counter()
    failures = []
    lock = threading.Lock()

    ports = [str(uuid.uuid4()) for _ in range(WORKERS)]

    def worker(number):
        from pyroute2 import NetNS

        rng = random.Random(seed + number)
        port = ports[number]
        properties = hybrid(port)
        # For this worker's cleanup, the other workers' vNICs belong to running VMs (they
        # are mid-start or running); its own vNIC belongs to none: a leftover.
        others = host.running_vms([other for other in ports if other != port])
        ns = NetNS(host.netns)  # pyroute2 sockets are not shared between threads
        try:
            state = "clean"
            for iteration in range(number, ITERATIONS, WORKERS):
                hook_point, duration, goal = (
                    ("before_device_create", plug_time, "plugged") if state == "clean"
                    else ("after_device_destroy", unplug_time, "clean"))
                # Most of a run is Python starting; the host work is at its end: weigh there.
                delay = duration * rng.uniform(0.5, 1.1)
                try:
                    run = host.hook(hook_point, properties, timeout=delay)
                    killed = False
                    assert run.returncode == 0, (iteration, run)
                except subprocess.TimeoutExpired:  # run_hook killed it (SIGKILL) at *delay*
                    killed = True
                after_kill = host.hybrid_state(port, ns)
                with lock:
                    seen[(hook_point, "killed" if killed else "finished",
                          after_kill if after_kill in ("plugged", "clean") else "half")] += 1
                if rng.random() < 0.15:
                    # --force: a plug killed after it recorded the MAC left a fresh record,
                    # which makes cleanup wait out its grace period (a VM may be starting).
                    recovery = host.cleanup(others, "--force")
                    assert recovery.returncode == 0, (iteration, recovery)
                    goal = "clean"
                else:
                    recovery = host.hook(hook_point, properties)
                    assert recovery.returncode == 0 and "Traceback" not in recovery.stderr, \
                        (iteration, recovery)
                state = host.hybrid_state(port, ns)
                assert state == goal, (iteration, hook_point, delay, after_kill, state)
            if state != "clean":
                assert host.hook("after_device_destroy", properties).returncode == 0
            assert host.hybrid_state(port, ns) == "clean"
        except BaseException as err:  # reported by the test's thread
            failures.append(err)
        finally:
            ns.close()

    workers = [threading.Thread(target=worker, args=(number,)) for number in range(WORKERS)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if failures:
        raise failures[0]
    print("\nSIGKILL iterations: %d (%d workers; plug %.3fs, unplug %.3fs); outcomes: %s" % (
        sum(seen.values()), WORKERS, plug_time, unplug_time, json.dumps(
            {" / ".join(key): count for key, count in sorted(seen.items())})))
    assert sum(seen.values()) == ITERATIONS >= 200 or "SIGKILL_ITERATIONS" in os.environ
    # The kills did land inside the host work, not only before or after it (a short
    # loop, SIGKILL_ITERATIONS, may miss it).
    assert any(key[2] == "half" for key in seen) or ITERATIONS < 200, seen


# --- an unplug that died between marking its devices and deleting them ---------------
# ovs_unplug marks the hybrid devices (qvo down, all in the port's removal group:
# host/netlink.py) and deletes them after; the resident helper answers in between.


@pytest.mark.parametrize("repair", ["unplug", "plug", "cleanup"])
def test_unplug_died_after_marking_the_devices(host, repair):
    """The exact state a process killed between the two halves leaves; the next unplug,
    the next plug (a VM restarted) or cleanup each end it fully clean or fully plugged."""
    port = str(uuid.uuid4())
    assert host.hook("before_device_create", hybrid(port)).returncode == 0
    unplug_marked_only(host.netns, host.ovs.remote, port)
    assert host.hybrid_state(port) == "marked"
    if repair == "unplug":
        assert host.hook("after_device_destroy", hybrid(port)).returncode == 0
    elif repair == "plug":
        run = host.hook("before_device_create", hybrid(port))
        assert run.returncode == 0, run.stderr
        assert host.hybrid_state(port) == "plugged"  # reused, up, back in group 0
        assert host.hook("after_device_destroy", hybrid(port)).returncode == 0
    else:
        # The unplug hook had removed the MAC record before it unplugged (hook_main.finish):
        # cleanup sees no VM starting with this vNIC.
        os.unlink(os.path.join(host.directory, "state", port + ".json"))
        assert host.cleanup().returncode == 0
    assert_replugs(host, port)


HELPER_KILLS = int(os.environ.get("HELPER_KILL_ITERATIONS", "16"))


def test_helper_killed_during_an_unplug(host, vdsm_workdir):
    """SIGKILL the resident helper at a random moment of ovs_unplug: before its answer
    (the hook would fall back to sudo), or after it, while its deletion may be under way;
    each time the next request for the port through the restarted helper (unplug, or a
    plug: the VM restarted) or cleanup leaves it fully clean or fully plugged."""
    import time

    from tests.test_helper import Helper, settled, write_config
    from vnic_drivers.helper import client

    rng = random.Random(int(os.environ.get("SIGKILL_SEED", "13")))
    config = os.path.join(vdsm_workdir, "shared", "faults-helper.conf")
    helper = Helper(vdsm_workdir, host.netns, config, name="faults")
    write_config(config, helper.socket, host.ovs.remote)
    helper.start()
    port = str(uuid.uuid4())
    plug_args = {"port_id": port, "mac": MAC, "vm_id": None, "mtu": None}
    outcomes = collections.Counter()
    try:
        # The request and the deletion after its answer, as long as they take here,
        # bound the kill delays.
        client.call(helper.socket, "ovs_hybrid_plug", plug_args, 30)
        client.call(helper.socket, "ovs_unplug", {"port_id": port}, 30)
        settled(helper.socket, port)
        times = re.findall(r'ovs_unplug port_id="%s": (?:after the answer: )?done \(([0-9.]+) ms\)'
                           % port, helper.log())
        duration = sum(float(ms) for ms in times[-2:]) / 1000
        for iteration in range(HELPER_KILLS):
            client.call(helper.socket, "ovs_hybrid_plug", plug_args, 30)
            assert host.hybrid_state(port) == "plugged", iteration
            victim = helper.pid()
            answered = []
            request = threading.Thread(target=lambda: answered.append(
                _unplug_or_unavailable(client, helper.socket, port)))
            request.start()
            time.sleep(rng.uniform(0, duration * 1.2))
            os.kill(victim, signal.SIGKILL)
            request.join()
            helper.stop()
            after_kill = host.hybrid_state(port)
            outcomes[(answered[0], after_kill if after_kill in ("plugged", "marked", "clean")
                      else "half")] += 1
            helper.start()
            repair = rng.choice(["unplug", "plug", "cleanup"])
            if repair == "cleanup":
                assert host.cleanup().returncode == 0, iteration
            else:
                if repair == "plug":
                    client.call(helper.socket, "ovs_hybrid_plug", plug_args, 30)
                    assert host.hybrid_state(port) == "plugged", (iteration, after_kill)
                client.call(helper.socket, "ovs_unplug", {"port_id": port}, 30)
                settled(helper.socket, port)
            assert host.hybrid_state(port) == "clean", (iteration, after_kill, repair)
    finally:
        helper.stop()
    print("\nhelper killed during ovs_unplug: %d times (request + deletion %.1f ms); "
          "(answer, state at the kill): %s" % (HELPER_KILLS, duration * 1000, json.dumps(
              {" / ".join(key): count for key, count in sorted(outcomes.items())})))


def _unplug_or_unavailable(client, path, port):
    try:
        client.call(path, "ovs_unplug", {"port_id": port}, 30)
    except client.Unavailable:
        return "no answer"
    return "answered"


# --- ovsdb-server stopped, restarted, hung ----------------------------------------------


def _server(host):
    return host.ovs.processes["ovsdb-server"]


def _restart_server(host):
    """ovsdb-server killed (SIGKILL: as a crash) and started again on the same database."""
    process = host.ovs.processes.pop("ovsdb-server")
    process.send_signal(signal.SIGKILL)
    process.wait()
    host.ovs.start_ovsdb_server()


def test_ovsdb_server_stopped(host):
    port = str(uuid.uuid4())
    _server(host).send_signal(signal.SIGSTOP)  # frozen first, so the kill is a crash
    process = host.ovs.processes.pop("ovsdb-server")
    process.send_signal(signal.SIGKILL)
    process.wait()
    try:
        run = host.hook("before_device_create", hybrid(port), timeout=60)
        assert_one_line(run, 2, "OVSDB", "is Open vSwitch running")
        assert run.after == run.before  # and, with OVS down, no device was even made:
        assert all(host.link(name) is None for name in naming.hybrid_names(port))
        assert_one_line(host.hook("after_device_destroy", hybrid(port), timeout=60), 1, "may remain")
    finally:
        host.ovs.start_ovsdb_server()
    assert_replugs(host, port)


def test_ovsdb_server_hung_during_plug_and_unplug(host):
    """SIGSTOP: the socket still accepts, nothing answers. Each request has a deadline."""
    port = str(uuid.uuid4())
    server = _server(host)
    server.send_signal(signal.SIGSTOP)
    try:
        run = host.hook("before_device_create", hybrid(port), timeout=60)
        assert_one_line(run, 2, "did not answer within")
        assert run.after == run.before
    finally:
        server.send_signal(signal.SIGCONT)
    assert host.hybrid_state(port) == "clean"  # what the hook made before the hang is undone

    assert host.hook("before_device_create", hybrid(port)).returncode == 0
    server.send_signal(signal.SIGSTOP)
    try:
        run = host.hook("after_device_destroy", hybrid(port), timeout=60)
        assert_one_line(run, 1, "did not answer within", "may remain")
    finally:
        server.send_signal(signal.SIGCONT)
    # The devices went; the port row is the next run's (or cleanup's) to remove.
    assert all(host.link(name) is None for name in naming.hybrid_names(port))
    assert host.cleanup().returncode == 0
    assert host.hybrid_state(port) == "clean"


def test_ovsdb_server_restarted_mid_plug(host):
    """The server dies while the hook waits on it, and comes back: the hook fails in one
    line, undoes its devices; the next run plugs completely against the new server."""
    port = str(uuid.uuid4())
    qbr = naming.hybrid_names(port)[0]
    _server(host).send_signal(signal.SIGSTOP)
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        run=host.hook("before_device_create", hybrid(port), timeout=60)))
    worker.start()
    try:
        # Until the hook made its devices and waits for OVSDB (however slow the machine).
        while host.link(qbr) is None and worker.is_alive():
            threading.Event().wait(0.05)
    finally:
        _restart_server(host)
        worker.join()
    assert_one_line(result["run"], 2, "OVSDB")
    assert_replugs(host, port)


# --- devices vanishing under the hook ------------------------------------------------------


def test_tap_vanishes_between_before_and_after(host):
    lb_port, ovs_port = str(uuid.uuid4()), str(uuid.uuid4())
    lb = quantum_properties("LINUX_BRIDGE", port_id=lb_port, network_id=NETWORK_ID)
    assert host.hook("before_device_create", lb, LB_DEVICE).returncode == 0
    host.add_tap(naming.tap_name(lb_port), DUMMY)
    host.delete(naming.tap_name(lb_port))  # QEMU died right after start
    assert_one_line(host.hook("after_device_create", lb, LB_DEVICE), 1, naming.tap_name(lb_port), "does not exist")
    assert host.hook("after_device_destroy", lb, LB_DEVICE).returncode == 0

    hooked = "[openvswitch]\novsdb = %s\nplug = hook\n" % host.ovs.remote
    properties = quantum_properties("OPEN_VSWITCH", port_id=ovs_port)
    tap = naming.tap_name(ovs_port)
    assert run_hook("before_device_create", OVS_DEVICE, properties, netns=host.netns,
                    config=hooked).returncode == 0
    host.add_tap(tap)
    host.delete(tap)
    run = run_hook("after_device_create", OVS_DEVICE, properties, netns=host.netns, config=hooked)
    assert_one_line(run, 1, tap, "does not exist")
    assert not host.port(tap)["exists"]  # no port for a device that is gone
    assert run_hook("after_device_destroy", OVS_DEVICE, properties, netns=host.netns,
                    config=hooked).returncode == 0
    assert host.cleanup().returncode == 0


def test_agent_deletes_its_bridge_mid_plug(host):
    """The Linux Bridge agent removes brq… (its network's last port went) while the hook
    moves the tap there: the hook ends in one line or succeeds, never leaves the tap on
    ;vdsmdummy; and never fails with a traceback; with the bridge back, the next run wires it."""
    rng = random.Random(7)
    port = str(uuid.uuid4())
    tap = naming.tap_name(port)
    properties = quantum_properties("LINUX_BRIDGE", port_id=port, network_id=NETWORK_ID)
    host.add_tap(tap, DUMMY)
    _, duration = timed(lambda: host.hook("after_device_create", properties, LB_DEVICE))
    outcomes = collections.Counter()
    try:
        for _ in range(20):
            if host.lookup(BRQ) is None:
                host.add_bridge(BRQ)
            host.ns.link("set", index=host.lookup(tap), master=host.lookup(DUMMY))
            agent = threading.Timer(duration * rng.uniform(0.3, 1.0), lambda: host.delete(BRQ))
            agent.start()
            run = host.hook("after_device_create", properties, LB_DEVICE)
            agent.join()
            assert "Traceback" not in run.stderr, run.stderr
            if run.returncode != 0:
                assert_one_line(run, 1)
            state = host.link(tap)
            assert state is not None and state["master"] != DUMMY or run.returncode != 0, (run, state)
            outcomes[(run.returncode, state["master"])] += 1
            host.add_bridge(BRQ)
            assert host.hook("after_device_create", properties, LB_DEVICE).returncode == 0
            assert host.link(tap)["master"] == BRQ
            host.delete(BRQ)
    finally:
        host.delete(tap)
        if host.lookup(BRQ) is None:
            host.add_bridge(BRQ)
    print("\nbrq deleted mid-plug: %s" % dict(outcomes))


# --- a full /run and a device file the hook cannot write (the real sudo path) ------------

# Runs as root inside as_vdsm's namespace (already in the test's netns): mounts a small
# tmpfs on /run (this mount namespace only), fills it, then becomes vdsm and runs the hooks.
_FULL_RUN = r"""
import json, os, subprocess, sys
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=755", "tmpfs", "/run"], check=True)
try:
    with open("/run/filler", "wb") as stream:
        while True:
            stream.write(b"x" * 4096)
            stream.flush()
except OSError as err:
    assert err.errno == 28, err  # ENOSPC: /run is full
uid = int(sys.argv[1])
os.execvp("setpriv", ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--init-groups", "--"]
          + sys.argv[2:])
"""

_HOOKS = r"""
import json, os, subprocess, sys
from vnic_drivers.simulate import hook_environment
results = []
for hook, path, properties, vm_id in json.loads(sys.argv[1]):
    env = hook_environment(path, properties, {}, vm_id)
    env.pop("QUANTUM_VNIC_CONF", None)  # VDSM sets none: /etc/vdsm/quantum_vnic.conf
    done = subprocess.run([sys.executable, hook], env=env, capture_output=True, text=True)
    results.append([done.returncode, done.stderr])
print(json.dumps({"uid": os.getuid(), "results": results}))
"""


def hooks_as_vdsm(host, workdir, calls, full_run=False):
    """Run [(hook point, domxml path, properties)] as vdsm through sudo; [(code, stderr)]."""
    shared = os.path.join(workdir, "shared")
    script = os.path.join(shared, "hooks.py")
    with open(script, "w", encoding="utf-8") as stream:
        stream.write(_HOOKS)
    os.chmod(script, 0o644)
    argv = [sys.executable, script, json.dumps(
        [[os.path.join(REPO, "hooks", point), path, properties, str(uuid.uuid4())]
         for point, path, properties in calls])]
    if full_run:
        helper = os.path.join(shared, "full_run.py")
        with open(helper, "w", encoding="utf-8") as stream:
            stream.write(_FULL_RUN)
        argv = [sys.executable, helper, str(as_vdsm.vdsm_uid())] + argv
    done = as_vdsm.run_as_vdsm(workdir, argv, env=dict(os.environ, PYTHONPATH=REPO),
                               netns=host.netns, config=host.config_path, as_root=full_run)
    if done.returncode == as_vdsm.CANNOT:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    output = json.loads(done.stdout)
    assert output["uid"] != 0
    return output["results"]


def _domxml(workdir, name, owner=True):
    path = os.path.join(workdir, "shared", name)
    with open(path, "wb") as stream:
        stream.write(OVS_DEVICE)
    if owner:
        os.chown(path, as_vdsm.vdsm_uid(), as_vdsm.vdsm_uid())  # VDSM's own temp file
    return path


def test_full_run_does_not_stop_the_hooks(host, vdsm_workdir):
    """/run full (a 64 KiB tmpfs, filled, in a private mount namespace: never the
    machine's /run): sudo and the hooks must still plug and unplug, or fail in one line."""
    port = str(uuid.uuid4())
    path = _domxml(vdsm_workdir, "domxml-full-run")
    results = hooks_as_vdsm(host, vdsm_workdir, [("before_device_create", path, hybrid(port))],
                            full_run=True)
    (code, stderr), = results
    assert code == 0 and "Traceback" not in stderr, stderr
    assert host.hybrid_state(port) == "plugged"
    (code, stderr), = hooks_as_vdsm(host, vdsm_workdir, [("after_device_destroy", path, hybrid(port))],
                                    full_run=True)
    assert code == 0, stderr
    assert host.hybrid_state(port) == "clean"


def test_device_file_not_writable(host, vdsm_workdir):
    """The hook cannot replace the device XML (root's file in root's directory): one line,
    exit 2, the file untouched, and the host objects it had made removed again."""
    port = str(uuid.uuid4())
    locked = os.path.join(vdsm_workdir, "shared", "locked")
    os.mkdir(locked)
    os.chmod(locked, 0o755)  # vdsm can read, not create the temp file for the atomic write
    path = os.path.join(locked, "domxml")
    with open(path, "wb") as stream:
        stream.write(OVS_DEVICE)
    (code, stderr), = hooks_as_vdsm(host, vdsm_workdir, [("before_device_create", path, hybrid(port))])
    errors = [line for line in stderr.splitlines() if ": ERROR: " in line]
    assert code == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr
    assert "cannot write %s" % path in errors[0] and stderr.strip().endswith(errors[0])
    assert "unplugged" in stderr  # what it had made before the write failed is undone
    with open(path, "rb") as stream:
        assert stream.read() == OVS_DEVICE
    assert host.hybrid_state(port) == "clean"

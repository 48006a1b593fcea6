"""Hybrid plug cost with 0 and with 5,000 ports on br-int, beside ovs-vsctl, in one run.

    sudo python3 bench/ovs_plug.py [--runs N] [--ports N] [--vswitchd]

Private OVS (tests/ovs_fixture.py), each in a temp dir and a network namespace of its own;
the machine's OVS and namespace are never touched. Each sample is one whole process, as
VDSM starts a hook: ``before_device_create`` for a vNIC with security groups (Python
start-up, imports, XML, qbr/qvb/qvo in the kernel, the OVSDB transaction, the atomic
write), against ``ovs-vsctl --may-exist add-port br-int PORT``; both run through ``ip
netns exec`` and are interleaved so machine noise hits both alike. Plug mode ``hook``
(``after_device_create``, the hook's own OVSDB transaction) is set beside the command
libvirt runs for a virtualport, and each unplug beside ``ovs-vsctl del-port``. Two
private OVS run side by side, br-int empty in one and with N ports (added in one
transaction) in the other, and their rounds alternate too.

The N ports are system ports whose devices do not exist: what they cost is what this
bench measures, the OVSDB side (rows the client must download or the server must scan).
By default only ovsdb-server runs, and ovs-vsctl gets ``--no-wait`` (nothing would
apply the change). With ``--vswitchd``, ovs-vswitchd runs too (netdev datapath) and
ovs-vsctl waits for it, as libvirt's calls do; the hook never waits for ovs-vswitchd.
"""

import argparse
import contextlib
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests import ovs_fixture  # noqa: E402
from tests.conftest import PORT_ID, quantum_properties  # noqa: E402
from vnic_drivers import naming  # noqa: E402

with open(os.path.join(REPO, "examples", "ovs_vnic.xml"), "rb") as _stream:
    DEVICE = _stream.read()
BASELINE_PORT = "qvobench"
BASELINE_TAP = "tapbench"
VM_ID = "d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de"
# The plug mode "hook" vNIC: another port than the hybrid one (unplug removes both kinds).
HOOK_PORT_ID = "5f3e2d1c-0b9a-4887-9665-544332211000"
HYBRID_PLUG = "hook: hybrid plug (before_device_create)"
VSCTL_ADD = "ovs-vsctl --may-exist add-port"
HOOK_PLUG = "hook: plug mode hook (after_device_create)"
LIBVIRT_ADD = "ovs-vsctl as libvirt adds a virtualport"
HYBRID_UNPLUG = "hook: hybrid unplug (after_device_destroy)"
VSCTL_DEL = "ovs-vsctl --if-exists del-port"
HOOK_UNPLUG = "hook: plug mode hook unplug (hotunplug)"
OVSDB_STEPS = ("connect", "add_port (one transaction)", "port_status (two)", "delete_ports (two)")
# (hook subject, its ovs-vsctl counterpart) for the ratios.
PAIRS = ((HYBRID_PLUG, VSCTL_ADD), (HOOK_PLUG, LIBVIRT_ADD), (HYBRID_UNPLUG, VSCTL_DEL), (HOOK_UNPLUG, VSCTL_DEL))


def fill_bridge(remote, count, bridge="br-int"):
    """*count* more ports on *bridge*, in one OVSDB transaction (ovs-vsctl is quadratic here)."""
    from vnic_drivers.host import ovsdb

    operations, names = [], []
    for number in range(count):
        interface, port = "i%d" % number, "p%d" % number
        name = "filler%d" % number
        operations.append({"op": "insert", "table": "Interface", "uuid-name": interface,
                           "row": {"name": name, "external_ids": ["map", [["iface-id", str(uuid.uuid4())]]]}})
        operations.append({"op": "insert", "table": "Port", "uuid-name": port,
                           "row": {"name": name, "interfaces": ["named-uuid", interface]}})
        names.append(["named-uuid", port])
    operations.append({"op": "mutate", "table": "Bridge", "where": [["name", "==", bridge]],
                       "mutations": [["ports", "insert", ["set", names]]]})
    with ovsdb.connect(remote, timeout=120) as db:
        db.transact(*operations)


class Runner:
    """Runs the subjects in the bench's namespace; hook runs use the private OVS's socket."""

    def __init__(self, ovs):
        self.ovs = ovs
        self.workdir = workdir = ovs.directory
        self.configs = {}
        for mode in ("virtualport", "hook"):
            path = self.configs[mode] = os.path.join(workdir, "%s.conf" % mode)
            with open(path, "w", encoding="utf-8") as stream:
                stream.write("[openvswitch]\novsdb = %s\nplug = %s\n[hook]\nlog_level = WARNING\n"
                             "state_dir = %s\n" % (ovs.remote, mode, os.path.join(workdir, "state")))
        # The tap libvirt would have made for plug mode "hook", and devices for the
        # baseline's ports (ovs-vsctl fails when ovs-vswitchd cannot open them).
        for tap in (naming.tap_name(HOOK_PORT_ID), BASELINE_TAP):
            self._ip("tuntap", "add", "dev", tap, "mode", "tap")
        self._ip("link", "add", BASELINE_PORT, "type", "veth", "peer", "name", "qvbbench")

    def _ip(self, *args):
        subprocess.run(["ip", "-n", self.ovs.netns] + list(args), check=True)

    def _timed(self, argv, env=None):
        argv = ["ip", "netns", "exec", self.ovs.netns] + argv
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit("%s failed: %s" % (" ".join(argv), done.stderr.decode().strip()))
        return elapsed

    def hook(self, hook_point, plug="virtualport", **properties):
        path = os.path.join(self.workdir, "domxml")
        with open(path, "wb") as stream:
            stream.write(DEVICE)
        env = dict(os.environ, _hook_domxml=path, vmId=VM_ID, PYTHONPATH=REPO,
                   **quantum_properties("OPEN_VSWITCH", **properties))
        # The config as the hook's argument: VDSM gives none, the hook then reads /etc/vdsm.
        return self._timed([sys.executable, os.path.join(REPO, "hooks", hook_point),
                            "--config", self.configs[plug]], env)

    def record_mac(self, port_id):
        """What before_device_create leaves for after_device_create (the MAC), untimed."""
        from lxml import etree

        from vnic_drivers import config, records
        from vnic_drivers.vnic import Vnic

        mac = etree.fromstring(DEVICE).find("mac").get("address")
        records.save(config.load(self.configs["hook"]), Vnic(port_id, "OPEN_VSWITCH", mac=mac, vm_id=VM_ID),
                     logging.getLogger("bench"))

    def vsctl(self, *args):
        wait = [] if self.ovs.vswitchd else ["--no-wait"]
        return self._timed(["ovs-vsctl", "--db=" + self.ovs.remote] + wait + list(args), self.ovs.env)

    def sample(self):
        """One interleaved round: {subject: seconds}."""
        hybrid = {"security_groups": "sg-web", "mtu": "1450"}
        return {
            HYBRID_PLUG: self.hook("before_device_create", **hybrid),
            VSCTL_ADD: self.vsctl("--may-exist", "add-port", "br-int", BASELINE_PORT),
            HOOK_PLUG: self.record_mac(HOOK_PORT_ID) or self.hook("after_device_create", plug="hook",
                                                                    port_id=HOOK_PORT_ID),
            # What libvirt runs for an openvswitch virtualport, the hook mode's counterpart.
            LIBVIRT_ADD: self.vsctl("--", "--if-exists", "del-port", BASELINE_TAP, "--", "add-port", "br-int",
                                    BASELINE_TAP, "--", "set", "Interface", BASELINE_TAP,
                                    "external_ids:attached-mac=00:1a:4a:16:01:51",
                                    "external_ids:iface-id=%s" % PORT_ID, "external_ids:vm-id=%s" % VM_ID,
                                    "external_ids:iface-status=active"),
            HYBRID_UNPLUG: self.hook("after_device_destroy", **hybrid),
            VSCTL_DEL: self.vsctl("--if-exists", "del-port", BASELINE_PORT),
            HOOK_UNPLUG: self.hook("after_nic_hotunplug", plug="hook", port_id=HOOK_PORT_ID),
            "(untimed cleanup)": self.vsctl("--if-exists", "del-port", BASELINE_TAP),
        }


def measure(runners, runs):
    """{state: {subject: median seconds}}, the states' rounds interleaved too."""
    samples = {state: {} for state in runners}
    for state, runner in runners.items():
        runner.sample()  # warm the page cache; not counted
    for _ in range(runs):
        for state, runner in runners.items():
            for subject, seconds in runner.sample().items():
                samples[state].setdefault(subject, []).append(seconds)
    return {state: {subject: statistics.median(values) for subject, values in cells.items()
                    if not subject.startswith("(")} for state, cells in samples.items()}


def ovsdb_part(remote, runs):
    """{step: median seconds} of the hook's OVSDB steps alone, in this process."""
    from vnic_drivers.host import ovsdb

    steps = {}
    name = "tapovsdbbench"
    for _ in range(runs):
        times = [time.perf_counter()]
        with ovsdb.connect(remote) as db:
            times.append(time.perf_counter())
            ovsdb.add_port(db, "br-int", name, {"iface-id": PORT_ID, "attached-mac": "00:1a:4a:16:01:51"})
            times.append(time.perf_counter())
            ovsdb.port_status(db, "br-int", name)
            times.append(time.perf_counter())
            ovsdb.delete_ports(db, [name])
            times.append(time.perf_counter())
        for step, start, end in zip(OVSDB_STEPS, times, times[1:]):
            steps.setdefault(step, []).append(end - start)
    return {step: statistics.median(values) for step, values in steps.items()}


@contextlib.contextmanager
def bench_ovs(vswitchd):
    """A private OVS in a temp dir, ovs-vswitchd (if asked) in a namespace of its own."""
    from pyroute2 import netns

    name = "qvnic-bench-%s" % uuid.uuid4().hex[:6]
    directory = tempfile.mkdtemp(prefix="qvnic-bench-", dir="/tmp")
    netns.create(name)
    try:
        with ovs_fixture.private_ovs(directory, netns=name, vswitchd=vswitchd) as ovs:
            yield ovs
    finally:
        netns.remove(name)
        shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--ports", type=int, default=5000)
    parser.add_argument("--vswitchd", action="store_true", help="run ovs-vswitchd too (netdev datapath)")
    args = parser.parse_args()
    reason = ovs_fixture.skip_reason(vswitchd=True)
    if reason:
        raise SystemExit("bench/ovs_plug.py: " + reason)

    # Two OVS side by side, an empty br-int and a full one, sampled in turn: a change in
    # the machine's load during the run hits both states alike.
    with contextlib.ExitStack() as stack:
        empty, full = (stack.enter_context(bench_ovs(args.vswitchd)) for _ in range(2))
        start = time.perf_counter()
        fill_bridge(full.remote, args.ports)
        filled = time.perf_counter() - start
        medians = measure({0: Runner(empty), args.ports: Runner(full)}, args.runs)
        in_process = {0: ovsdb_part(empty.remote, args.runs), args.ports: ovsdb_part(full.remote, args.runs)}
    report(medians, args, filled)
    print("\nthe OVSDB steps alone, in-process    at %5d ports  at %5d ports" % tuple(in_process))
    for step in OVSDB_STEPS:
        print("%-34s %11.2f ms %11.2f ms" % (step, *(in_process[ports][step] * 1000 for ports in in_process)))


def report(medians, args, filled):
    empty, full = sorted(medians)
    print("%d interleaved runs per cell, medians; Python %s; ovsdb-server%s; %d ports added in one "
          "transaction in %.1f s" % (args.runs, sys.version.split()[0],
                                     " + ovs-vswitchd (netdev)" if args.vswitchd else " only", full, filled))
    print("%-44s %11s %11s %8s" % ("whole process", "%d ports" % empty, "%d ports" % full, "growth"))
    for subject in medians[empty]:
        low, high = medians[empty][subject], medians[full][subject]
        print("%-44s %8.1f ms %8.1f ms %7.2fx" % (subject, low * 1000, high * 1000, high / low))
    print("\nratio hook / ovs-vsctl            at %5d ports  at %5d ports" % (empty, full))
    for hook, baseline in PAIRS:
        print("%-34s %14.2f %14.2f" % (hook.split(" (")[0][6:] + " / " + baseline.split(" ")[1],
                                        medians[empty][hook] / medians[empty][baseline],
                                        medians[full][hook] / medians[full][baseline]))


if __name__ == "__main__":
    main()

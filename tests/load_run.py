"""Many VMs starting at once on one host: the scenario ``tests/test_load.py`` checks and
``bench/load.py`` times (tests and bench only; needs root).

50 VMs x 2 vNICs (Linux Bridge, OVS virtualport and OVS hybrid, mixed) on a throwaway
host (:class:`vnic_drivers.sandbox.Sandbox`: a network namespace, ``;vdsmdummy;``, the
agent's ``brq…``, a private OVS with ``ovs-vswitchd``), optionally with thousands of
unrelated ports already on ``br-int``. Every hook runs as the user ``vdsm`` through the
real sudo path (:mod:`tests.as_vdsm`), all of one hook point at once (100 processes in
parallel); between ``before_device_create`` and ``after_device_create`` this process
plays libvirt's part from the rewritten XML (taps, libvirt's OVS port), and before
``after_device_destroy`` it removes what libvirt removes when a VM stops.

:func:`run` returns what happened: per hook its exit code, stderr and wall time, the
wall time of each parallel phase, and the same hooks run one at a time (single-hook
figures measured in the same run, for comparison).
"""

import json
import os
import statistics
import sys
import uuid

from tests import as_vdsm
from tests.vdsm import REPO

VMS = 50
NICS_PER_VM = 2
KINDS = ("LINUX_BRIDGE", "OPEN_VSWITCH", "HYBRID")
NETWORK_ID = "7c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
DEVICE_XML = """<interface type="bridge">
    <mac address="{mac}" />
    <model type="virtio" />
    <source bridge=";vdsmdummy;" />
    <link state="up" />
    <alias name="ua-{port}" />
</interface>
"""

# Runs as vdsm: starts every hook of the list at once (or one after another), waits for
# all; prints per hook [exit code, stderr, seconds] and the phase's wall time.
_DRIVER = r"""
import json, os, subprocess, sys, threading, time
from vnic_drivers.simulate import hook_environment
calls, parallel = json.loads(sys.stdin.read())
results = [None] * len(calls)
def start(call):
    hook, path, properties, vm_id = call
    env = hook_environment(path, properties, {}, vm_id)
    env.pop("QUANTUM_VNIC_CONF", None)  # VDSM sets none: /etc/vdsm/quantum_vnic.conf
    return time.monotonic(), subprocess.Popen([sys.executable, hook], env=env,
                                              stderr=subprocess.PIPE, text=True)
def finish(slot, started, process):
    stderr = process.communicate()[1]
    results[slot] = [process.returncode, stderr, time.monotonic() - started]
begin = time.monotonic()
if parallel:
    running = [start(call) for call in calls]  # all at once, then one waiter each
    waiters = [threading.Thread(target=finish, args=(slot,) + each) for slot, each in enumerate(running)]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
else:
    for slot, call in enumerate(calls):
        finish(slot, *start(call))
print(json.dumps({"uid": os.getuid(), "wall": time.monotonic() - begin, "results": results}))
"""


class Vnic:
    def __init__(self, vm_id, number, kind):
        self.vm_id = vm_id
        self.kind = kind
        self.port = str(uuid.uuid4())
        self.mac = "00:1a:4a:%02x:%02x:%02x" % (number // 65536, number // 256 % 256, number % 256)
        plugin = "LINUX_BRIDGE" if kind == "LINUX_BRIDGE" else "OPEN_VSWITCH"
        self.properties = {"provider_type": "OPENSTACK_NETWORK", "plugin_type": plugin,
                           "vnic_id": self.port}
        if kind == "LINUX_BRIDGE":
            self.properties["network_id"] = NETWORK_ID
        if kind == "HYBRID":
            self.properties["security_groups"] = "sg-web"
        self.xml = DEVICE_XML.format(mac=self.mac, port=self.port).encode()
        self.path = None

    @property
    def tap(self):
        from vnic_drivers.naming import tap_name

        return tap_name(self.port)


def vnics(vms=VMS, per_vm=NICS_PER_VM):
    found = []
    for vm in range(vms):
        vm_id = str(uuid.uuid4())
        for nic in range(per_vm):
            number = vm * per_vm + nic
            found.append(Vnic(vm_id, number, KINDS[number % len(KINDS)]))
    return found


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summary(seconds):
    return {"n": len(seconds), "median": statistics.median(seconds),
            "p95": percentile(seconds, 0.95), "max": max(seconds)}


class Load:
    """The host and the vNICs of one load run; :meth:`phase` runs one hook point for all."""

    def __init__(self, box, workdir, config):
        self.box = box
        self.workdir = workdir
        self.config = config
        self.shared = os.path.join(workdir, "shared")
        self.driver = os.path.join(self.shared, "load_driver.py")
        with open(self.driver, "w", encoding="utf-8") as stream:
            stream.write(_DRIVER)
        os.chmod(self.driver, 0o644)

    def hooks(self, hook_point, nics, parallel=True):
        """Run *hook_point* for *nics* as vdsm: {"wall", "results": [[code, stderr, seconds]]}."""
        calls = []
        for nic in nics:
            if nic.path is None:
                nic.path = os.path.join(self.shared, "domxml-%s" % nic.port)
                with open(nic.path, "wb") as stream:
                    stream.write(nic.xml)
                os.chown(nic.path, as_vdsm.vdsm_uid(), as_vdsm.vdsm_uid())  # VDSM's temp file
            calls.append([os.path.join(REPO, "hooks", hook_point), nic.path, nic.properties, nic.vm_id])
        done = as_vdsm.run_as_vdsm(self.workdir, [sys.executable, self.driver],
                                   env=dict(os.environ, PYTHONPATH=REPO), netns=self.box.name,
                                   input=json.dumps([calls, parallel]), timeout=900,
                                   config=self.config)
        if done.returncode == as_vdsm.CANNOT:
            raise RuntimeError("cannot run as vdsm: " + done.stderr.strip())
        if done.returncode != 0:
            raise RuntimeError("load driver failed: " + done.stderr.strip()[-2000:])
        output = json.loads(done.stdout)
        assert output["uid"] != 0
        for nic in nics:  # VDSM reads the device back
            with open(nic.path, "rb") as stream:
                nic.xml = stream.read()
        return output

    def libvirt_starts(self, nics):
        """libvirt's part of every VM start: the taps, then every OVS port libvirt adds in
        one ovs-vsctl transaction (one at a time, each ovs-vsctl re-reading thousands of
        filler ports, took half a minute: the scenario's time, not the hooks')."""
        from vnic_drivers import demo

        commands = []
        for nic in nics:
            demo.libvirt_create(self.box, nic, commands)
        if commands:
            self.box.ovs.vsctl(*commands)

    def libvirt_stops(self, nics):
        """What libvirt does when a VM stops: its OVS port goes (all in one ovs-vsctl
        transaction, as above), QEMU's tap vanishes."""
        commands = []
        for nic in nics:
            if b"virtualport" in nic.xml:
                commands += ["--", "--if-exists", "del-port", nic.tap]
        if commands:
            self.box.ovs.vsctl(*commands)
        for nic in nics:
            self.box.delete_link(nic.tap)



def fill_bridge(remote, count):
    """*count* unrelated ports (iface-ids of other hosts' VMs) on br-int, in one transaction."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_ovs_plug", os.path.join(REPO, "bench", "ovs_plug.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.fill_bridge(remote, count)


def ovs_rows(remote):
    """{"ports": names on br-int, "interfaces": all Interface names} (one transaction)."""
    from vnic_drivers.host import ovsdb

    with ovsdb.connect(remote, timeout=60) as db:
        bridges, ports, interfaces = (result["rows"] for result in db.transact(
            {"op": "select", "table": "Bridge", "where": [["name", "==", "br-int"]], "columns": ["ports"]},
            {"op": "select", "table": "Port", "where": [], "columns": ["_uuid", "name"]},
            {"op": "select", "table": "Interface", "where": [], "columns": ["name", "external_ids"]}))
    members = bridges[0]["ports"]
    members = {ref[1] for ref in (members[1] if members[0] == "set" else [members])}
    return {"ports": {row["name"] for row in ports if row["_uuid"][1] in members},
            "interfaces": {row["name"]: dict(row["external_ids"][1]) for row in interfaces}}


def wiring_problems(box, nics, fillers):
    """What is not as it must be once every VM runs (empty when all is right)."""
    from vnic_drivers.naming import hybrid_names, linux_bridge_name

    links = box.links()
    rows = ovs_rows(box.ovs.remote)
    problems = []
    expected_ports = set(fillers) | {"br-int"}
    for nic in nics:
        tap = links.get(nic.tap)
        if tap is None or tap["kind"] != "tun" or not tap["up"]:
            problems.append("%s: tap %s missing or down: %s" % (nic.kind, nic.tap, tap))
            continue
        if nic.kind == "LINUX_BRIDGE":
            if tap["master"] != linux_bridge_name(NETWORK_ID):
                problems.append("%s on %s, not on the agent's bridge" % (nic.tap, tap["master"]))
            continue
        if nic.kind == "HYBRID":
            qbr, qvb, qvo = hybrid_names(nic.port)
            if tap["master"] != qbr or links.get(qvb, {}).get("master") != qbr \
                    or links.get(qvo, {}).get("kind") != "veth":
                problems.append("hybrid %s: %s %s %s" % (nic.port, tap, links.get(qvb), links.get(qvo)))
            name = qvo
        else:
            name = nic.tap
        expected_ports.add(name)
        if rows["interfaces"].get(name, {}).get("iface-id") != nic.port:
            problems.append("OVS port %s: external_ids %s" % (name, rows["interfaces"].get(name)))
    if rows["ports"] != expected_ports:
        problems.append("br-int ports: %d missing (%s), %d unexpected (%s)" % (
            len(expected_ports - rows["ports"]), sorted(expected_ports - rows["ports"])[:5],
            len(rows["ports"] - expected_ports), sorted(rows["ports"] - expected_ports)[:5]))
    return problems


def leftovers(box, fillers):
    """Everything a hook made that is still there after every VM was destroyed."""
    from vnic_drivers.host.leftovers import split

    rows = ovs_rows(box.ovs.remote)
    found = sorted(name for name in box.links() if split(name))
    found += ["OVS port %s" % name for name in sorted(rows["ports"] - set(fillers) - {"br-int"})]
    found += ["Interface row %s" % name for name in sorted(set(rows["interfaces"]) - set(fillers) - {"br-int"})]
    return found


def run(fillers=0, vms=VMS, single=2):
    """The whole scenario on a fresh host; a report (see the module docstring).

    *single*: VMs whose hooks also run one at a time first, for the single-hook figures.
    """
    from vnic_drivers import sandbox

    filler_names = ["filler%d" % number for number in range(fillers)]
    report = {"vms": vms, "vnics": vms * NICS_PER_VM, "fillers": fillers, "phases": {},
              "single": [], "errors": [], "problems": [], "leftovers": []}
    with as_vdsm.workdir() as workdir, sandbox.Sandbox("qvnic-load") as box:
        box.start_ovs()
        box.add_bridge(";vdsmdummy;")
        from vnic_drivers.naming import linux_bridge_name

        box.add_bridge(linux_bridge_name(NETWORK_ID))
        if fillers:
            fill_bridge(box.ovs.remote, fillers)
        config = os.path.join(workdir, "shared", "quantum_vnic.conf")
        with open(config, "w", encoding="utf-8") as stream:
            # No resident helper listens there: every hook takes the sudo path. The
            # hooks (vdsm) keep their MAC records in a directory of the run's own.
            state = os.path.join(workdir, "shared", "state")
            os.mkdir(state)
            os.chmod(state, 0o1777)
            stream.write("[openvswitch]\novsdb = %s\n[helper]\nsocket = %s\n[hook]\nstate_dir = %s\n"
                         % (box.ovs.remote, os.path.join(workdir, "no-helper.sock"), state))
        os.chmod(config, 0o644)
        load = Load(box, workdir, config)

        def phase(name, hook_point, nics, parallel):
            output = load.hooks(hook_point, nics, parallel)
            for nic, (code, stderr, _) in zip(nics, output["results"]):
                # The one expected warning: no helper, so sudo (what this scenario measures).
                warnings = [line for line in stderr.splitlines()
                            if ": WARNING: " in line and "quantum-vnic-helper at" not in line]
                if code != 0 or "Traceback" in stderr or ": ERROR: " in stderr or warnings:
                    report["errors"].append("%s %s %s: exit %d: %s" % (name, hook_point, nic.kind, code,
                                                                     stderr.strip()[-300:]))
            seconds = [result[2] for result in output["results"]]
            if parallel:
                report["phases"][name] = {"wall": output["wall"], "hooks": summary(seconds)}
            else:
                report["single"] += seconds
            return output

        def life(nics, parallel, label):
            phase(label + " start", "before_device_create", nics, parallel)
            load.libvirt_starts(nics)
            phase(label + " started", "after_device_create", nics, parallel)
            report["problems"] += wiring_problems(box, nics, filler_names)
            load.libvirt_stops(nics)
            phase(label + " destroyed", "after_device_destroy", nics, parallel)
            report["leftovers"] += leftovers(box, filler_names)

        if single:
            life(vnics(single, len(KINDS)), False, "single")
        life(vnics(vms), True, "load")
    report["single"] = summary(report["single"]) if report["single"] else None
    return report

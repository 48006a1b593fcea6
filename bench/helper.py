#!/usr/bin/env python3
"""Hook processes as ``vdsm`` with the resident helper, beside their baselines, in one run.

    sudo python3 bench/helper.py [--rounds N] [--ports N] [--output FILE]

Builds a throwaway host (a network namespace with ``;vdsmdummy;``, an agent-style
``brq…`` bridge and two private ovsdb-servers: ``br-int`` empty in one, with N ports,
default 5,000, in the other), starts one ``quantum-vnic-helper`` per database through
``systemd-socket-activate`` as systemd would (``tests/test_helper.py``'s way), and runs
every sample as a whole process of the user ``vdsm`` (``setpriv``, in a
``tests/as_vdsm.py`` mount namespace: the packaged sudoers drop-in, vdsm's config at
``/etc/vdsm/quantum_vnic.conf``). Baselines get the same ``setpriv`` wrapper. Rounds are
interleaved (every subject once per round) so machine noise hits all alike; medians.

Subjects: ``python3 -I -c pass`` and ``python3 -I -c "import lxml.etree"`` (baselines);
XML-only ``before_device_create`` (plain OVS, Linux Bridge); hybrid plug
(``before_device_create`` with security groups), its ``after_device_create`` check and
``after_device_destroy``; Linux Bridge ``after_device_create`` (tap from ``;vdsmdummy;``
to ``brq…``); the same host-touching hooks through sudo (helper socket absent: today's
path plus one warning line); and ``bench/oldstyle_hook.py``, a replica of a hook that runs
``ip``/``ovs-vsctl`` through ``sudo`` per step. Prints the table bench/RESULTS.md keeps.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

PORT = "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"
NETWORK = "7c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
VM = "d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de"
MAC = "00:1a:4a:16:01:51"
DEVICE = ("<interface type='bridge'><mac address='%s'/><source bridge='br-int'/>"
          "<model type='virtio'/></interface>" % MAC)
HOOK = ("import sys; sys.path.insert(0, %r); from vnic_drivers.hook_main import main; "
        "sys.exit(main(%%r))" % REPO)
ROOT_CONFIG = "/etc/vdsm/quantum_vnic.conf"


# --- outside: the host, the helpers, then the driver in vdsm's view of the host ---------

def write(path, text, mode=0o644):
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.chmod(path, mode)
    return path


def add_ports(ovs, count):
    """*count* system ports on br-int whose devices do not exist (OVSDB-side cost only)."""
    for start in range(0, count, 500):
        args = []
        for index in range(start, min(count, start + 500)):
            args += ["--", "add-port", "br-int", "p%05d" % index]
        ovs.vsctl(*args, wait=False)


def outside(args):
    from tests import as_vdsm
    from tests.test_helper import Helper
    from vnic_drivers import naming, sandbox

    reason = as_vdsm.required_tools() or sandbox.missing_requirements()
    if reason:
        raise SystemExit("bench: cannot run here: %s" % reason)
    with as_vdsm.workdir() as workdir, sandbox.Sandbox("qvnic-bench") as box:
        box.add_bridge(naming.VDSM_DUMMY_BRIDGE)
        box.add_bridge(naming.linux_bridge_name(NETWORK))
        shared = os.path.join(workdir, "shared")
        dbs, helpers, configs, sockets = {}, [], {}, {}
        try:
            for ports in (0, args.ports):
                directory = tempfile.mkdtemp(prefix="db%d-" % ports, dir=box.directory)
                dbs[ports] = sandbox.PrivateOvs(directory, box.name).start(vswitchd=False)
                add_ports(dbs[ports], ports)
                config = os.path.join(shared, "ports%d.conf" % ports)
                helper = Helper(workdir, box.name, config, name="helper%d" % ports)
                text = ("[openvswitch]\novsdb = %s\n[helper]\nsocket = %s\nidle_timeout = 0\n"
                        % (dbs[ports].remote, helper.socket))
                write(config, text)
                configs[ports] = config
                configs["%d-sudo" % ports] = write(
                    os.path.join(shared, "ports%d-sudo.conf" % ports),
                    text.replace(helper.socket, helper.socket + ".absent"))
                helpers.append(helper.start())
                helper.ping()
                sockets[str(ports)] = helper.socket
            done = subprocess.run(
                as_vdsm.command(workdir, [sys.executable, os.path.abspath(__file__), "--driver",
                                          json.dumps({"configs": configs, "rounds": args.rounds,
                                                      "ports": args.ports, "uid": as_vdsm.vdsm_uid(),
                                                      "remotes": {str(k): v.remote for k, v in dbs.items()},
                                                      "sockets": sockets,
                                                      "workdir": shared})],
                                netns=box.name, as_root=True, config=configs[0]),
                capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit("bench: driver failed: %s" % done.stderr.strip()[-3000:])
            samples = json.loads(done.stdout)
        finally:
            for helper in helpers:
                helper.stop()
            for ovs in dbs.values():
                ovs.stop()
    table = report(samples, args)
    print(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as stream:
            stream.write(table + "\n")


# --- inside: root in vdsm's view of the host, timing processes of vdsm ---------------------

class Driver:
    def __init__(self, spec):
        self.spec = spec
        self.uid = spec["uid"]
        # vdsm's own directory: the hook replaces the file VDSM gave it (atomic rename).
        self.workdir = os.path.join(spec["workdir"], "vdsm")
        os.makedirs(self.workdir, exist_ok=True)
        os.chown(self.workdir, self.uid, self.uid)
        self.bound = None
        from pyroute2 import IPRoute

        self.ipr = IPRoute()
        # Old-style hooks ran ip/brctl/ovs-vsctl through sudo: allow them, in this mount
        # namespace's private /etc/sudoers.d only.
        write("/etc/sudoers.d/99_bench_oldstyle",
              "vdsm ALL = (root) NOPASSWD: /usr/sbin/ip, /usr/bin/ovs-vsctl\n", 0o440)

    def use(self, key):
        """Bind config *key* at ROOT_CONFIG: what the hooks and sudo's root process read."""
        if self.bound != key:
            subprocess.run(["mount", "--bind", self.spec["configs"][str(key)], ROOT_CONFIG], check=True)
            self.bound = key

    def as_vdsm(self, argv):
        return ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.uid, "--init-groups", "--"] + argv

    def timed(self, argv, env=None, expect=0):
        start = time.perf_counter()
        done = subprocess.run(self.as_vdsm(argv), env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != expect:
            raise SystemExit("bench: %s exited %d: %s" % (argv[-1][-80:], done.returncode, done.stderr.strip()))
        return elapsed

    def hook(self, hook_point, plugin, **extra):
        path = os.path.join(self.workdir, "domxml")
        write(path, DEVICE, 0o644)
        os.chown(path, self.uid, self.uid)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "_hook_domxml": path, "vmId": VM,
               "provider_type": "OPENSTACK_NETWORK", "vnic_id": PORT, "plugin_type": plugin}
        env.update(extra)
        return self.timed([sys.executable, "-I", "-c", HOOK % hook_point], env)

    def oldstyle(self, remote):
        path = os.path.join(self.workdir, "domxml")
        write(path, DEVICE, 0o644)
        os.chown(path, self.uid, self.uid)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "_hook_domxml": path, "vmId": VM,
               "provider_type": "OPENSTACK_NETWORK", "vnic_id": PORT, "plugin_type": "OPEN_VSWITCH",
               "security_groups": "default"}
        return self.timed([sys.executable, "-I", os.path.join(REPO, "bench", "oldstyle_hook.py"), remote], env)

    def clean(self):
        """Remove the port's devices and OVS port as root (not timed)."""
        from vnic_drivers.host import privileged

        privileged.configuration.cache_clear()
        privileged.run("ovs_unplug", {"port_id": PORT})

    def settle(self, key):
        """Wait (not timed) until the helper for config *key* has deleted what the last
        unplug left for after its answer: a request for the port waits on its lock."""
        from vnic_drivers.helper import client

        if str(key) in self.spec["sockets"]:
            client.call(self.spec["sockets"][str(key)], "ovs_port_status",
                        {"port_id": PORT, "hybrid": True, "wait": 0}, 30)

    def tap_on_dummy(self):
        from vnic_drivers import naming

        tap = naming.tap_name(PORT)
        found = self.ipr.link_lookup(ifname=tap)
        if not found:
            self.ipr.link("add", ifname=tap, kind="tuntap", mode="tap")
            found = self.ipr.link_lookup(ifname=tap)
        dummy = self.ipr.link_lookup(ifname=naming.VDSM_DUMMY_BRIDGE)[0]
        self.ipr.link("set", index=found[0], master=dummy, state="up")

    def round(self, samples):
        def add(name, value):
            samples.setdefault(name, []).append(value)

        ports = self.spec["ports"]
        self.use(0)
        add("pass", self.timed([sys.executable, "-I", "-c", "pass"]))
        add("lxml", self.timed([sys.executable, "-I", "-c", "import lxml.etree"]))
        add("xml-ovs", self.hook("before_device_create", "OPEN_VSWITCH"))
        add("xml-lb", self.hook("before_device_create", "LINUX_BRIDGE"))
        for key, label in ((0, "helper"), ("0-sudo", "sudo"), (ports, "helper-%d" % ports)):
            self.use(key)
            add("hybrid-%s" % label, self.hook("before_device_create", "OPEN_VSWITCH", security_groups="default"))
            add("check-%s" % label, self.hook("after_device_create", "OPEN_VSWITCH", security_groups="default"))
            add("destroy-%s" % label, self.hook("after_device_destroy", "OPEN_VSWITCH", security_groups="default"))
            self.settle(key)
            if key != ports:
                self.tap_on_dummy()
                add("lb-%s" % label, self.hook("after_device_create", "LINUX_BRIDGE", network_id=NETWORK))
        for key in (0, ports):
            self.use(key)
            add("oldstyle-%d" % key, self.oldstyle(self.spec["remotes"][str(key)]))
            self.clean()
        self.use(0)

    def run(self):
        samples = {}
        self.round({})  # warm-up: caches, the helpers' first start
        for _ in range(self.spec["rounds"]):
            self.round(samples)
        return samples


# --- the table ------------------------------------------------------------------------------

def report(samples, args):
    med = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    n = args.ports
    rows = [
        # subject, key, baseline key, target ratio (None: reference only)
        ("`python3 -I -c pass`", "pass", None, None),
        ('`python3 -I -c "import lxml.etree"`', "lxml", None, None),
        ("before_device_create, plain OVS (XML only)", "xml-ovs", "lxml", 1.2),
        ("before_device_create, Linux Bridge (XML only)", "xml-lb", "lxml", 1.2),
        ("hybrid plug (before_device_create), helper", "hybrid-helper", "lxml", 1.3),
        ("hybrid plug, sudo fallback (today's path)", "hybrid-sudo", "lxml", None),
        ("Linux Bridge plug (after_device_create), helper", "lb-helper", "lxml", 1.3),
        ("Linux Bridge plug (after_device_create), helper", "lb-helper", "pass", 1.5),
        ("Linux Bridge plug, sudo fallback", "lb-sudo", "pass", None),
        ("OVS after_device_create (port check), helper", "check-helper", "pass", 1.5),
        ("OVS after_device_destroy (unplug), helper", "destroy-helper", "pass", 1.5),
        ("OVS after_device_destroy, sudo fallback", "destroy-sudo", "pass", None),
        ("hybrid plug, helper, %d ports vs 0" % n, "hybrid-helper-%d" % n, "hybrid-helper", 1.1),
        ("after_device_destroy, helper, %d ports vs 0" % n, "destroy-helper-%d" % n, "destroy-helper", 1.1),
        ("old-style sudo-per-step hook, 0 ports", "oldstyle-0", None, None),
        ("old-style sudo-per-step hook, %d ports" % n, "oldstyle-%d" % n, "oldstyle-0", None),
        ("hybrid plug, helper, vs old-style at 0 ports", "hybrid-helper", "oldstyle-0", 0.4),
        ("hybrid plug, helper, vs old-style at %d ports" % n, "hybrid-helper-%d" % n, "oldstyle-%d" % n, None),
    ]
    lines = ["%s; %s; Python %s; %d cores; %d interleaved rounds, medians, every sample a whole "
             "process of vdsm (setpriv)" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                             platform.platform(), platform.python_version(),
                                             os.cpu_count(), args.rounds),
             "",
             "| subject | median ms | vs | ratio | target | met |",
             "| --- | ---: | --- | ---: | ---: | --- |"]
    for subject, key, base, target in rows:
        ratio = med[key] / med[base] if base else None
        lines.append("| %s | %.1f | %s | %s | %s | %s |" % (
            subject, med[key], base or "", "%.2f" % ratio if ratio else "",
            "≤ %.1f×" % target if target else "", ("yes" if ratio <= target else "**no**") if target else ""))
    lines.append("")
    lines.append("Keys: pass / lxml = the two baselines; hybrid-helper-N = at N ports; oldstyle-N = "
                 "bench/oldstyle_hook.py at N ports.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--ports", type=int, default=5000)
    parser.add_argument("--output", help="also write the table to this file")
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        json.dump(Driver(json.loads(args.driver)).run(), sys.stdout)
        return
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (it builds a throwaway host and runs hooks as vdsm)")
    outside(args)


if __name__ == "__main__":
    main()

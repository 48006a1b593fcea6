#!/usr/bin/env python3
"""Hook processes as ``vdsm`` with the resident helper, beside their baselines, in one run.

    sudo python3 bench/helper.py [--rounds N] [--ports N] [--output FILE]

The interpreter is a host's, not this machine's python3 (:mod:`clean_python`): a cached
venv of the same Python with the runtime libraries only, into which every run installs
this checkout as the RPM does (``vnic_drivers/`` byte-compiled in site-packages, each
hook at ``<point>/50_quantum_vnic`` with ``#!<venv python> -I``, the privileged entry
point likewise). Hooks run as installed: the hook file itself, as VDSM executes it.
Baselines (``python -I -c pass``, ``python -I -c "import lxml.etree"``) and the
old-style replica use that same interpreter.

Builds a throwaway host (a network namespace with ``;vdsmdummy;``, an agent-style
``brq…`` bridge and two private ovsdb-servers: ``br-int`` empty in one, with N ports,
default 5,000, in the other), and runs every sample as a whole process of the user
``vdsm`` (``setpriv``, in a ``tests/as_vdsm.py`` mount namespace: the packaged sudoers
drop-in, vdsm's config at ``/etc/vdsm/quantum_vnic.conf``). In that namespace ``/run``
is a fresh tmpfs (checked), so nothing reaches the machine's ``/run``: it holds vdsm's
``/run/vdsm`` (the MAC records) and the helper socket's fixed path. There the driver
starts the venv's ``quantum-vnic-helper`` once per database through
``systemd-socket-activate`` as systemd would (root, its own config bound at the config
path; it shares the private ``/run``, where it removes the records at
``after_device_destroy``), and binds the helper of the subject at the fixed path (0 ports
or N ports), or leaves it empty (the sudo-fallback subjects), as it switches the config.
Rounds are interleaved (every subject once per round, the groups of subjects shuffled
per round with a fixed seed, a 50 ms rest before each sample) so machine noise and the
echo of the step before hit all alike; medians. After a hybrid ``after_device_destroy``
through the helper, which answers before the kernel deletes the devices, an untimed
request for the port waits on its lock until that is done. Every sample is checked:
exit code, nothing unexpected on stderr (a WARNING, an ERROR, a traceback), and the host
or file in the state the hook should have left; the first failure stops the bench with
one line, so a misconfigured run prints no table.

Subjects: the baselines; a non-Quantum device (no ``provider_type``: the hook must leave
at once); XML-only ``before_device_create`` (plain OVS, Linux Bridge); hybrid plug
(``before_device_create`` with security groups), its ``after_device_create`` check and
``after_device_destroy``; ``after_device_destroy`` of a plain (virtualport) OVS vNIC and
of a Linux Bridge one; Linux Bridge ``after_device_create`` (tap from ``;vdsmdummy;`` to
``brq…``); the hybrid and Linux Bridge host-touching hooks through sudo (no helper
socket: today's path plus one warning line); and ``bench/oldstyle_hook.py``, a replica
of a hook that runs ``ip``/``ovs-vsctl`` through ``sudo`` per step. Prints the table
bench/RESULTS.md keeps.
"""

import argparse
import json
import os
import platform
import random
import shutil
import signal
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
ROOT_CONFIG = "/etc/vdsm/quantum_vnic.conf"
# Where hooks look for the helper first (the systemd socket unit's path); the package's
# own constant once it has one.
HELPER_SOCKET = "/run/quantum-vnic/helper.sock"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SETTLE = 0.05  # seconds of rest before every timed sample


def helper_socket():
    from vnic_drivers import helper

    return getattr(helper, "DEFAULT_SOCKET", HELPER_SOCKET)


# --- outside: the interpreter, the host, the helpers, then the driver in vdsm's view ------

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
    import clean_python
    from tests import as_vdsm
    from vnic_drivers import naming, sandbox

    reason = as_vdsm.required_tools() or sandbox.missing_requirements()
    if reason:
        raise SystemExit("bench: cannot run here: %s" % reason)
    if shutil.which("systemd-socket-activate") is None:
        raise SystemExit("bench: cannot run here: needs systemd-socket-activate (apt-get install systemd)")
    with as_vdsm.workdir() as workdir, sandbox.Sandbox("qvnic-bench") as box:
        installed = clean_python.install(os.path.join(workdir, "venv"))
        box.add_bridge(naming.VDSM_DUMMY_BRIDGE)
        box.add_bridge(naming.linux_bridge_name(NETWORK))
        shared = os.path.join(workdir, "shared")
        dbs, configs = {}, {}
        try:
            for ports in (0, args.ports):
                directory = tempfile.mkdtemp(prefix="db%d-" % ports, dir=box.directory)
                dbs[ports] = sandbox.PrivateOvs(directory, box.name).start(vswitchd=False)
                add_ports(dbs[ports], ports)
                # No [helper] socket: the default, the fixed path where the driver binds this
                # database's helper (or nothing, for the sudo subjects).
                configs[ports] = write(os.path.join(shared, "ports%d.conf" % ports),
                                       "[openvswitch]\novsdb = %s\n[helper]\nidle_timeout = 0\n"
                                       % dbs[ports].remote)
            spec = {"configs": configs, "rounds": args.rounds, "ports": args.ports,
                    "uid": as_vdsm.vdsm_uid(), "remotes": {k: v.remote for k, v in dbs.items()},
                    "workdir": shared, "installed": installed,
                    "host_mntns": os.readlink("/proc/self/ns/mnt"), "host_run_dev": os.stat("/run").st_dev}
            done = subprocess.run(
                as_vdsm.command(workdir, [sys.executable, os.path.abspath(__file__), "--driver",
                                          json.dumps(spec)],
                                netns=box.name, as_root=True, config=configs[0]),
                capture_output=True, text=True, check=False)
            if done.returncode != 0:
                lines = done.stderr.strip().splitlines() or ["exit code %d" % done.returncode]
                ours = [line for line in lines if line.startswith("bench: ")]
                raise SystemExit(ours[-1] if ours else "bench: driver failed: %s" % "\n".join(lines[-30:]))
            result = json.loads(done.stdout)
        finally:
            for ovs in dbs.values():
                ovs.stop()
    table = report(result, installed["versions"], args)
    print(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as stream:
            stream.write(table + "\n")


# --- inside: root in vdsm's view of the host, timing processes of vdsm ---------------------

class ResidentHelper:
    """The venv's ``quantum-vnic-helper`` under ``systemd-socket-activate``, as systemd
    starts it from the socket unit: root, in the driver's network namespace and private
    /run (the MAC records it removes for ``after_device_destroy`` are the hooks'), in a
    mount namespace of its own where *config* is ``/etc/vdsm/quantum_vnic.conf``."""

    BIND_AND_EXEC = ("import os, subprocess, sys; subprocess.run(['mount', '--bind', sys.argv[1], "
                     "sys.argv[2]], check=True); os.execvp(sys.argv[3], sys.argv[3:])")

    def __init__(self, program, config, socket, log_path, gid):
        self.program, self.config, self.socket, self.log_path, self.gid = program, config, socket, log_path, gid
        self.process = None

    def start(self):
        from vnic_drivers.helper import client

        os.makedirs(os.path.dirname(self.socket), mode=0o755, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-I", "-c",
                 self.BIND_AND_EXEC, self.config, ROOT_CONFIG,
                 "systemd-socket-activate", "-l", self.socket, self.program],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:  # the file appears at bind(), before listen(); a connection starts it
            try:
                client.call(self.socket, "ping", {}, 20)
                break
            except client.Unavailable:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    with open(self.log_path, encoding="utf-8", errors="replace") as stream:
                        said = " | ".join(stream.read().strip().splitlines()[-5:])
                    raise SystemExit("bench: quantum-vnic-helper did not start: %s" % said)
                time.sleep(0.05)
        # What quantum-vnic-helper.socket's SocketMode=0660 and SocketGroup= give it.
        os.chown(self.socket, 0, self.gid)
        os.chmod(self.socket, 0o660)
        return self

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class Driver:
    def __init__(self, spec):
        self.spec = spec
        self.uid = spec["uid"]
        self.ports = spec["ports"]
        installed = spec["installed"]
        self.python = installed["python"]
        self.hooks = installed["hooks"]
        # vdsm's own directory: the hook replaces the file VDSM gave it (atomic rename).
        self.workdir = os.path.join(spec["workdir"], "vdsm")
        os.makedirs(self.workdir, exist_ok=True)
        os.chown(self.workdir, self.uid, self.uid)
        self.domxml = os.path.join(self.workdir, "domxml")
        self.samples = {}
        self.bound_config = self.bound_socket = None
        from vnic_drivers import config, naming

        self.state_dir = config.SCHEMA["hook"]["state_dir"][1]
        self.record = os.path.join(self.state_dir, PORT + ".json")
        self.tap = naming.tap_name(PORT)
        self.qbr, self.qvb, self.qvo = naming.hybrid_names(PORT)
        self.brq = naming.linux_bridge_name(NETWORK)
        self.socket = helper_socket()
        self.private_run()
        self.install_privileged(installed["privileged"])
        # One helper per database, on sockets of their own in the private /run; use()
        # binds one of them at the fixed path.
        self.helpers, self.sockets = [], {}
        from pyroute2 import IPRoute

        self.ipr = IPRoute()
        # Old-style hooks ran ip/brctl/ovs-vsctl through sudo: allow them, in this mount
        # namespace's private /etc/sudoers.d only.
        write("/etc/sudoers.d/99_bench_oldstyle",
              "vdsm ALL = (root) NOPASSWD: /usr/sbin/ip, /usr/bin/ovs-vsctl\n", 0o440)

    # -- the host as vdsm sees it ---------------------------------------------------------

    def private_run(self):
        """A fresh tmpfs on /run in this (private) mount namespace, checked; /run/vdsm as
        on an oVirt host, the helper socket's directory as the socket unit makes it."""
        if os.readlink("/proc/self/ns/mnt") == self.spec["host_mntns"]:
            raise SystemExit("bench: the driver is in the machine's mount namespace; refusing to mount on /run")
        if not self.socket.startswith("/run/"):
            raise SystemExit("bench: the helper's fixed socket %s is not under /run" % self.socket)
        mount("-t", "tmpfs", "-o", "mode=0755,nosuid,nodev,size=64m", "qvnic-bench-run", "/run")
        if os.path.realpath("/var/run") != "/run":
            mount("--bind", "/run", "/var/run")
        with open("/proc/self/mountinfo", encoding="utf-8") as stream:
            last = [line.split() for line in stream if line.split()[4] == "/run"][-1]
        fstype = last[last.index("-") + 1]
        if fstype != "tmpfs" or os.stat("/run").st_dev == self.spec["host_run_dev"]:
            raise SystemExit("bench: /run in the driver's namespace is not a private tmpfs (%s)" % fstype)
        os.makedirs("/run/vdsm", mode=0o755)
        os.chown("/run/vdsm", self.uid, self.uid)
        os.makedirs(os.path.dirname(self.socket), mode=0o755, exist_ok=True)

    def install_privileged(self, path):
        """sudo's root process: the venv's entry point at the path the sudoers drop-in allows."""
        from tests import as_vdsm

        mount("--bind", path, as_vdsm.PRIVILEGED)

    def use(self, ports, helper):
        """Config of the *ports* database at ROOT_CONFIG (the hooks' and sudo's root
        process's); its helper at the fixed socket path, or nothing there (not *helper*)."""
        config = self.spec["configs"][str(ports)]
        if config != self.bound_config:
            if self.bound_config is not None:
                umount(ROOT_CONFIG)
            mount("--bind", config, ROOT_CONFIG)
            self.bound_config = config
        socket = self.sockets[str(ports)] if helper else None
        if socket != self.bound_socket:
            if self.bound_socket is not None:
                umount(self.socket)
            if socket is None:
                if os.path.lexists(self.socket):
                    os.unlink(self.socket)
            else:
                open(self.socket, "a").close()
                mount("--bind", socket, self.socket)
            self.bound_socket = socket

    def exists(self, name):
        return bool(self.ipr.link_lookup(ifname=name))

    def master(self, name):
        found = self.ipr.link_lookup(ifname=name)
        return found and self.ipr.get_links(found[0])[0].get_attr("IFLA_MASTER")

    def index(self, name):
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def on_br_int(self, ports, name):
        done = subprocess.run(["ovs-vsctl", "--db=" + self.spec["remotes"][str(ports)], "--timeout=20",
                               "port-to-br", name], capture_output=True, text=True, check=False)
        return done.returncode == 0 and done.stdout.strip() == "br-int"

    def settle(self, ports, helper):
        """Wait (not timed) until the helper has deleted what an unplug left for after its
        answer: a request for the same port waits on the port's lock. Then the devices
        can be checked, and the next sample does not share the machine with that work."""
        from vnic_drivers.helper import client

        if helper:
            client.call(self.sockets[str(ports)], "ovs_port_status",
                        {"port_id": PORT, "hybrid": True, "wait": 0}, 30)

    def tap_on_dummy(self):
        """What libvirt does for a Linux Bridge vNIC: its tap on ``;vdsmdummy;``."""
        from vnic_drivers import naming

        if not self.exists(self.tap):
            self.ipr.link("add", ifname=self.tap, kind="tuntap", mode="tap")
        self.ipr.link("set", index=self.index(self.tap), master=self.index(naming.VDSM_DUMMY_BRIDGE), state="up")

    def delete_tap(self):
        """What libvirt does when the VM goes, before ``after_device_destroy``."""
        if self.exists(self.tap):
            self.ipr.link("del", index=self.index(self.tap))

    def clean(self):
        """Remove the port's devices and OVS port as root (not timed)."""
        from vnic_drivers.host import privileged

        privileged.configuration.cache_clear()
        privileged.run("ovs_unplug", {"port_id": PORT})

    # -- samples --------------------------------------------------------------------------

    def sample(self, name, argv, env=None, quiet=False, fallback=False, check=None):
        """Time *argv* as vdsm; stop the bench with one line unless it did its job cleanly.

        *quiet*: nothing at all on stderr; else no WARNING/ERROR/traceback, except, with
        *fallback*, the warning that the helper is absent and sudo is used instead.
        *check()* returns what is wrong with the host or the file afterwards, or None.
        """
        argv = ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.uid, "--init-groups", "--"] + argv
        time.sleep(SETTLE)  # let the untimed step before (a check, a clean-up) finish its echoes
        start = time.perf_counter()
        done = subprocess.run(argv, env=env or {"PATH": PATH}, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        problem = None
        if done.returncode != 0:
            problem = "exited %d" % done.returncode
        for line in done.stderr.splitlines():
            if problem:
                break
            if quiet:
                problem = "wrote to stderr"
            elif "Traceback" in line or ": ERROR:" in line or ": CRITICAL:" in line:
                problem = "an error on stderr"
            elif ": WARNING:" in line and not (fallback and "sudo" in line):
                problem = "a warning on stderr"
        if problem is None and check is not None:
            problem = check()
        if problem:
            said = " | ".join(line.strip() for line in done.stderr.splitlines() if line.strip())
            raise SystemExit("bench: subject %s: %s%s" % (name, problem, ": " + said[-600:] if said else ""))
        self.samples.setdefault(name, []).append(elapsed)

    def hook(self, name, hook_point, plugin, check, fallback=False, **extra):
        """Run the installed hook file of *hook_point* as VDSM does, for a Quantum vNIC."""
        # VDSM hands the device XML to before_* points, an empty file to these after_* ones.
        write(self.domxml, "" if hook_point.startswith("after_") else DEVICE, 0o644)
        os.chown(self.domxml, self.uid, self.uid)
        env = {"PATH": PATH, "_hook_domxml": self.domxml, "vmId": VM}
        if plugin is not None:
            env.update(provider_type="OPENSTACK_NETWORK", vnic_id=PORT, plugin_type=plugin)
        env.update(extra)
        self.sample(name, [os.path.join(self.hooks, hook_point, "50_quantum_vnic")], env,
                    quiet=plugin is None, fallback=fallback, check=check)

    def domxml_has(self, *parts):
        with open(self.domxml, encoding="utf-8") as stream:
            text = stream.read()
        missing = [part for part in parts if part not in text]
        return "the device XML lacks %s: %s" % (", ".join(missing), text[:300]) if missing else None

    def domxml_unchanged(self):
        with open(self.domxml, encoding="utf-8") as stream:
            return None if stream.read() == DEVICE else "the device XML changed"

    def expect(self, **facts):
        """A check: every named fact (a bool) holds."""
        def check():
            wrong = [name for name, (test, wanted) in sorted(facts.items()) if bool(test()) != wanted]
            return "wrong after the hook: %s" % ", ".join(
                "%s (wanted %s)" % (name.replace("_", " "), "yes" if facts[name][1] else "no")
                for name in wrong) if wrong else None
        return check

    def hybrid_trio(self, ports, label, fallback=False):
        sg = {"security_groups": "default"}
        plugged = dict(
            qbr=(lambda: self.exists(self.qbr), True), qvo=(lambda: self.exists(self.qvo), True),
            qvb_in_qbr=(lambda: self.master(self.qvb) == self.index(self.qbr), True),
            qvo_on_br_int=(lambda: self.on_br_int(ports, self.qvo), True),
            record=(lambda: os.path.exists(self.record), True))
        gone = dict(
            qbr=(lambda: self.exists(self.qbr), False), qvb=(lambda: self.exists(self.qvb), False),
            qvo=(lambda: self.exists(self.qvo), False),
            qvo_on_br_int=(lambda: self.on_br_int(ports, self.qvo), False),
            record=(lambda: os.path.exists(self.record), False))
        expect_plugged = self.expect(**plugged)
        self.hook("hybrid-%s" % label, "before_device_create", "OPEN_VSWITCH", fallback=fallback,
                  check=lambda: self.domxml_has(self.qbr, self.tap) or expect_plugged(), **sg)
        self.hook("check-%s" % label, "after_device_create", "OPEN_VSWITCH", fallback=fallback,
                  check=expect_plugged, **sg)
        expect_gone = self.expect(**gone)
        self.hook("destroy-%s" % label, "after_device_destroy", "OPEN_VSWITCH", fallback=fallback,
                  check=lambda: self.settle(ports, helper=not fallback) or expect_gone(), **sg)

    def lb_plug(self, label, fallback=False):
        self.tap_on_dummy()
        self.hook(label, "after_device_create", "LINUX_BRIDGE", network_id=NETWORK, fallback=fallback,
                  check=self.expect(tap_in_brq=(lambda: self.master(self.tap) == self.index(self.brq), True)))
        self.delete_tap()

    def oldstyle(self, ports):
        self.use(ports, helper=False)  # its config: what clean() reads
        write(self.domxml, DEVICE, 0o644)
        os.chown(self.domxml, self.uid, self.uid)
        env = {"PATH": PATH, "_hook_domxml": self.domxml, "vmId": VM, "provider_type": "OPENSTACK_NETWORK",
               "vnic_id": PORT, "plugin_type": "OPEN_VSWITCH", "security_groups": "default"}
        self.sample("oldstyle-%d" % ports,
                    [self.python, "-I", os.path.join(REPO, "bench", "oldstyle_hook.py"),
                     self.spec["remotes"][str(ports)]], env, quiet=True,
                    check=self.expect(qbr=(lambda: self.exists(self.qbr), True),
                                      qvb_in_qbr=(lambda: self.master(self.qvb) == self.index(self.qbr), True),
                                      qvo_on_br_int=(lambda: self.on_br_int(ports, self.qvo), True)))
        self.clean()

    def groups(self):
        """The subjects in groups that each start and leave the host clean, so a round can
        run them in any order; the order within a group is a VM's lifecycle."""
        n = self.ports
        no_record = self.expect(record=(lambda: os.path.exists(self.record), False))

        def baselines():
            self.sample("pass", [self.python, "-I", "-c", "pass"], quiet=True)
            self.sample("lxml", [self.python, "-I", "-c", "import lxml.etree"], quiet=True)
            self.sample("machine-pass", [sys.executable, "-I", "-c", "pass"], quiet=True)

        def plain():
            self.use(0, helper=True)
            self.hook("nonquantum", "before_device_create", None, check=self.domxml_unchanged)
            self.hook("xml-ovs", "before_device_create", "OPEN_VSWITCH",
                      check=lambda: self.domxml_has("virtualport", PORT, self.tap) or
                      self.expect(record=(lambda: os.path.exists(self.record), True))())
            self.hook("destroy-ovs", "after_device_destroy", "OPEN_VSWITCH", check=no_record)

        def linux_bridge():
            self.use(0, helper=True)
            self.hook("xml-lb", "before_device_create", "LINUX_BRIDGE",
                      check=lambda: self.domxml_has("vdsmdummy", self.tap))
            self.lb_plug("lb-helper")
            self.hook("destroy-lb", "after_device_destroy", "LINUX_BRIDGE", check=no_record)

        def hybrid():
            self.use(0, helper=True)
            self.hybrid_trio(0, "helper")

        def sudo():
            self.use(0, helper=False)
            self.hybrid_trio(0, "sudo", fallback=True)
            self.lb_plug("lb-sudo", fallback=True)

        def hybrid_ports():
            self.use(n, helper=True)
            self.hybrid_trio(n, "helper-%d" % n)

        return [baselines, plain, linux_bridge, hybrid, sudo, hybrid_ports,
                lambda: self.oldstyle(0), lambda: self.oldstyle(n)]

    def round(self, number):
        """Every group once, in an order of its own (seeded by *number*): what runs just
        before a subject (an OVSDB transaction, netdev deletions) is not always the same."""
        groups = self.groups()
        random.Random(number).shuffle(groups)
        for group in groups:
            group()

    def run(self):
        try:
            for key, config in self.spec["configs"].items():
                self.sockets[key] = os.path.join("/run/qvnic-bench", "helper%s.sock" % key)
                self.helpers.append(ResidentHelper(
                    self.spec["installed"]["helper"], config, self.sockets[key],
                    os.path.join(self.spec["workdir"], "helper%s.log" % key), self.uid))
                self.helpers[-1].start()
            self.round(0)  # warm-up (caches, the helpers' first requests); checked, not kept
            self.samples = {}
            load = [os.getloadavg()]
            for number in range(1, self.spec["rounds"] + 1):
                self.round(number)
            load.append(os.getloadavg())
        finally:
            for helper in self.helpers:
                helper.stop()
        return {"samples": self.samples, "load": load}


def mount(*args, command="mount"):
    done = subprocess.run([command, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit("bench: %s failed: %s" % (" ".join(done.args), done.stderr.strip()))


def umount(path):
    mount(path, command="umount")


# --- the table ------------------------------------------------------------------------------

def report(result, python, args):
    samples = result["samples"]
    med = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    quart = {name: statistics.quantiles([v * 1000 for v in values], n=4) if len(values) > 1
             else [values[0] * 1000] * 3 for name, values in samples.items()}
    n = args.ports
    rows = [
        # subject, key, baseline key, target ratio (None: reference only)
        ("`python -I -c pass`", "pass", None, None),
        ('`python -I -c "import lxml.etree"`', "lxml", None, None),
        ("the machine's python3 `-I -c pass` (its .pth files; not a baseline)", "machine-pass", "pass", None),
        ("non-Quantum device (no provider_type), before_device_create", "nonquantum", "pass", 1.1),
        ("before_device_create, plain OVS (XML only)", "xml-ovs", "lxml", 1.2),
        ("before_device_create, Linux Bridge (XML only)", "xml-lb", "lxml", 1.2),
        ("hybrid plug (before_device_create), helper", "hybrid-helper", "lxml", 1.3),
        ("hybrid plug, sudo fallback (today's path)", "hybrid-sudo", "lxml", None),
        ("Linux Bridge plug (after_device_create), helper", "lb-helper", "lxml", 1.3),
        ("Linux Bridge plug (after_device_create), helper", "lb-helper", "pass", 1.5),
        ("Linux Bridge plug, sudo fallback", "lb-sudo", "pass", None),
        ("OVS after_device_create (hybrid port check), helper", "check-helper", "pass", 1.5),
        ("OVS after_device_destroy, hybrid (unplug), helper", "destroy-helper", "pass", 1.5),
        ("OVS after_device_destroy, plain (virtualport), helper", "destroy-ovs", "pass", 1.5),
        ("Linux Bridge after_device_destroy, helper", "destroy-lb", "pass", 1.5),
        ("OVS after_device_destroy, hybrid, sudo fallback", "destroy-sudo", "pass", None),
        ("hybrid plug, helper, %d ports vs 0" % n, "hybrid-helper-%d" % n, "hybrid-helper", 1.1),
        ("OVS after_device_create (hybrid), helper, %d ports vs 0" % n, "check-helper-%d" % n,
         "check-helper", 1.1),
        ("after_device_destroy (hybrid), helper, %d ports vs 0" % n, "destroy-helper-%d" % n,
         "destroy-helper", 1.1),
        ("old-style sudo-per-step hook, 0 ports", "oldstyle-0", None, None),
        ("old-style sudo-per-step hook, %d ports" % n, "oldstyle-%d" % n, "oldstyle-0", None),
        ("hybrid plug, helper, vs old-style at 0 ports", "hybrid-helper", "oldstyle-0", 0.4),
        ("hybrid plug, helper, vs old-style at %d ports" % n, "hybrid-helper-%d" % n, "oldstyle-%d" % n, None),
    ]
    libraries = ", ".join("%s %s" % item for item in python["libraries"].items())
    (start, end) = result["load"]
    lines = ["%s; %s; %d cores; load average (1/5/15 min) %.2f/%.2f/%.2f at the start, "
             "%.2f/%.2f/%.2f at the end" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                            platform.platform(), os.cpu_count(), *start, *end),
             "",
             "Interpreter: a clean venv of %s %s (%s; no system site-packages, no .pth file) with "
             "%s; vnic_drivers/ copied and byte-compiled as the RPM does; hooks run as installed "
             "(`<point>/50_quantum_vnic`, `#!<venv>/bin/python -I`). %d interleaved rounds (groups shuffled "
             "per round, 50 ms rest before each sample), medians, every sample a whole process of "
             "vdsm (setpriv), checked (exit code, "
             "stderr, host state)." % (python["implementation"], python["python"], python["base"],
                                       libraries, args.rounds),
             "",
             "| subject | median ms | p25–p75 ms | vs | ratio | target | met |",
             "| --- | ---: | ---: | --- | ---: | ---: | --- |"]
    for subject, key, base, target in rows:
        ratio = med[key] / med[base] if base else None
        lines.append("| %s | %.1f | %.1f–%.1f | %s | %s | %s | %s |" % (
            subject, med[key], quart[key][0], quart[key][2], base or "", "%.2f" % ratio if ratio else "",
            "≤ %.1f×" % target if target else "", ("yes" if ratio <= target else "**no**") if target else ""))
    lines.append("")
    lines.append("Keys: pass / lxml = the two baselines (the venv's python); hybrid-helper-N = at N "
                 "ports; oldstyle-N = bench/oldstyle_hook.py at N ports.")
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

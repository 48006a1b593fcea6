#!/usr/bin/env python3
"""OVS hybrid unplug through the resident helper: this tree against a baseline tree, one run.

    sudo python3 bench/unplug.py [--baseline REF] [--rounds N] [--output FILE]

Builds a throwaway host (a network namespace with a private ovsdb-server and ``br-int``,
as ``bench/helper.py`` does) and starts two ``quantum-vnic-helper`` processes in it through
``systemd-socket-activate``: one running this tree, one running *REF* (default ``main``,
unpacked with ``git archive`` into a temp dir: the baseline). Every round, interleaved:

- ``python3 -I -c pass`` as vdsm (the baseline of the issue's ``after_*`` target);
- the hybrid vNIC plugged (as root, not timed), then ``after_device_destroy`` as a whole
  process of vdsm through each helper (the hook process is this tree's in both: only
  the helper differs), two ways: the helper's socket at the default path, where an
  ``after_*`` hook asks it to run the whole hook point (``run_hook``), as on a host; and
  only in the config (the hook runs, and asks for ``ovs_unplug``). After each, a
  request for the same port (``ovs_port_status``, not timed) waits on the port's lock
  until the helper's deletion is done, so no sample overlaps the previous one's kernel
  work;
- from one running client (root, no process start): ``ovs_unplug`` alone, and
  ``ovs_unplug`` followed at once by ``ovs_hybrid_plug`` of the same port (a VM restarted
  right away: the plug waits on the port's lock for the deletion);
- the kernel part alone, in-process: the hybrid devices deleted one request per device
  (the baseline's way) and with ``netlink.hybrid_prepare_removal(...).finish()`` (one batch).

The helpers' own timings come from their logs (``ovs_unplug ...: done (X ms)``, and this
tree's ``after the answer: done (Y ms)``). Medians; ratios against the baseline of the
same run.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

PORT = "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"
MAC = "00:1a:4a:16:01:51"
HELPERS = ("new", "old")


def unpack(ref, into):
    """*ref* of this repository as files under *into* (read-only use of the repository)."""
    archive = subprocess.run(["git", "-C", REPO, "archive", ref], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    return into


def outside(args):
    from tests import as_vdsm
    from tests.test_helper import Helper
    from vnic_drivers import sandbox

    reason = as_vdsm.required_tools() or sandbox.missing_requirements()
    if reason:
        raise SystemExit("bench: cannot run here: %s" % reason)
    baseline = tempfile.mkdtemp(prefix="qvnic-baseline-")
    os.chmod(baseline, 0o755)
    unpack(args.baseline, baseline)
    with as_vdsm.workdir() as workdir, sandbox.Sandbox("qvnic-unplug") as box:
        shared = os.path.join(workdir, "shared")
        ovs = sandbox.PrivateOvs(tempfile.mkdtemp(prefix="db-", dir=box.directory), box.name)
        ovs.start(vswitchd=False)
        helpers, configs = {}, {}
        try:
            for label, repo in (("new", REPO), ("old", baseline)):
                config = os.path.join(shared, "%s.conf" % label)
                helper = Helper(workdir, box.name, config, name="helper-%s" % label, repo=repo)
                with open(config, "w", encoding="utf-8") as stream:
                    stream.write("[openvswitch]\novsdb = %s\n[helper]\nsocket = %s\nidle_timeout = 0\n"
                                 % (ovs.remote, helper.socket))
                os.chmod(config, 0o644)
                configs[label] = config
                helpers[label] = helper.start()
                helper.ping()
            nothing = os.path.join(shared, "no-helper")  # bound at the default path: no run_hook
            open(nothing, "w").close()
            spec = {"configs": configs, "rounds": args.rounds, "uid": as_vdsm.vdsm_uid(),
                    "nothing": nothing,
                    "workdir": shared, "ports": 0,
                    "sockets": {label: helper.socket for label, helper in helpers.items()}}
            done = subprocess.run(
                as_vdsm.command(workdir, [sys.executable, os.path.abspath(__file__), "--driver",
                                          json.dumps(spec)],
                                netns=box.name, as_root=True, config=configs["new"],
                                helper_socket=helpers["new"].socket),
                capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit("bench: driver failed: %s" % done.stderr.strip()[-3000:])
            samples = json.loads(done.stdout)
            for label, helper in helpers.items():
                samples.update(helper_times(label, helper.log()))
        finally:
            for helper in helpers.values():
                helper.stop()
            ovs.stop()
            shutil.rmtree(baseline, ignore_errors=True)
    table = report(samples, args)
    print(table)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as stream:
            stream.write(table + "\n")


def helper_times(label, log):
    """What the helper logged for ovs_unplug of the bench's port (the warm-up included)."""
    answered = [float(ms) for ms in re.findall(
        r'ovs_unplug port_id="%s": done \(([0-9.]+) ms\)' % PORT, log)]
    after = [float(ms) / 1000 for ms in re.findall(
        r'ovs_unplug port_id="%s": after the answer: done \(([0-9.]+) ms\)' % PORT, log)]
    hook = [float(ms) / 1000 for ms in re.findall(
        r'run_hook [^\n]*port_id="%s"[^\n]*: exit 0 \(([0-9.]+) ms\)' % PORT, log)]
    times = {"in-helper-answer-%s" % label: [ms / 1000 for ms in answered],
             "in-helper-run-hook-%s" % label: hook}
    if after:
        times["in-helper-after-%s" % label] = after
    return times


# --- inside: root in vdsm's view of the host (as bench/helper.py's driver) -----------------

def make_driver(spec):
    from helper import Driver  # bench/helper.py

    class UnplugDriver(Driver):
        def use(self, key, run_hook=True):
            """Config *key*; the helper's socket at the default path too (run_hook), or not."""
            from tests.as_vdsm import HELPER_SOCKET

            super().use(key)
            shown = self.spec["sockets"][key] if run_hook else self.spec["nothing"]
            if getattr(self, "shown", None) != shown:
                subprocess.run(["mount", "--bind", shown, HELPER_SOCKET], check=True)
                self.shown = shown

        def plug(self):
            from vnic_drivers.host import privileged

            privileged.configuration.cache_clear()
            privileged.run("ovs_hybrid_plug", {"port_id": PORT, "mac": MAC, "vm_id": None, "mtu": None})

        def settle(self, label):
            """Wait, untimed, until the helper's deletion for PORT is done (its port lock)."""
            from vnic_drivers.helper import client

            client.call(self.spec["sockets"][label], "ovs_port_status",
                        {"port_id": PORT, "hybrid": True, "wait": 0}, 30)

        def call(self, label, operation, args):
            from vnic_drivers.helper import client

            start = time.perf_counter()
            client.call(self.spec["sockets"][label], operation, args, 30)
            return time.perf_counter() - start

        def kernel(self, batched):
            """Delete the hybrid devices in-process: one request per device, or one batch."""
            from vnic_drivers import naming
            from vnic_drivers.host import netlink

            qbr, qvb, qvo = naming.hybrid_names(PORT)
            netlink.hybrid_create(qbr, qvb, qvo)
            start = time.perf_counter()
            if batched:
                netlink.hybrid_prepare_removal(qbr, qvb, qvo).finish()
            else:
                for name in (qvo, qbr):  # the baseline's way: qvo takes qvb along
                    self.ipr.link("del", index=self.ipr.link_lookup(ifname=name)[0])
            elapsed = time.perf_counter() - start
            assert not any(netlink.link_exists(name) for name in (qbr, qvb, qvo))
            return elapsed

        def round(self, samples):
            def add(name, value):
                samples.setdefault(name, []).append(value)

            add("pass", self.timed([sys.executable, "-I", "-c", "pass"]))
            for label in HELPERS:
                for run_hook, key in ((True, "destroy-%s" % label), (False, "destroy-op-%s" % label)):
                    self.use(label, run_hook)
                    self.plug()
                    add(key, self.hook("after_device_destroy", "OPEN_VSWITCH", security_groups="default"))
                    self.settle(label)
            for label in HELPERS:
                self.plug()
                add("unplug-call-%s" % label, self.call(label, "ovs_unplug", {"port_id": PORT}))
                self.settle(label)
                self.plug()
                add("replug-calls-%s" % label, self.call(label, "ovs_unplug", {"port_id": PORT})
                    + self.call(label, "ovs_hybrid_plug", {"port_id": PORT, "mac": MAC,
                                                           "vm_id": None, "mtu": None}))
                self.call(label, "ovs_unplug", {"port_id": PORT})
                self.settle(label)
            add("kernel-one-by-one", self.kernel(False))
            add("kernel-batch", self.kernel(True))
            self.use("new")

    return UnplugDriver(spec)


def report(samples, args):
    med = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    rows = [
        # subject, key, baseline key
        ("`python3 -I -c pass`", "pass", None),
        ("after_device_destroy (hybrid), run_hook, baseline helper", "destroy-old", "pass"),
        ("after_device_destroy (hybrid), run_hook, this helper", "destroy-new", "pass"),
        ("after_device_destroy, run_hook, this helper vs baseline helper", "destroy-new", "destroy-old"),
        ("after_device_destroy (hybrid), ovs_unplug request, baseline helper", "destroy-op-old", "pass"),
        ("after_device_destroy (hybrid), ovs_unplug request, this helper", "destroy-op-new", "pass"),
        ("after_device_destroy, ovs_unplug request, this helper vs baseline helper", "destroy-op-new",
         "destroy-op-old"),
        ("in the helper: run_hook after_device_destroy until its answer, baseline", "in-helper-run-hook-old", None),
        ("in the helper: run_hook after_device_destroy until its answer, this tree", "in-helper-run-hook-new",
         "in-helper-run-hook-old"),
        ("in the helper: ovs_unplug until its answer, baseline", "in-helper-answer-old", None),
        ("in the helper: ovs_unplug until its answer, this tree", "in-helper-answer-new", "in-helper-answer-old"),
        ("in the helper: the deletion after the answer, this tree", "in-helper-after-new", None),
        ("client: ovs_unplug call, baseline helper", "unplug-call-old", None),
        ("client: ovs_unplug call, this helper", "unplug-call-new", "unplug-call-old"),
        ("client: ovs_unplug + ovs_hybrid_plug at once, baseline helper", "replug-calls-old", None),
        ("client: ovs_unplug + ovs_hybrid_plug at once, this helper", "replug-calls-new", "replug-calls-old"),
        ("kernel: hybrid devices deleted one request per device", "kernel-one-by-one", None),
        ("kernel: hybrid devices deleted in one batch (prepare_removal + finish)", "kernel-batch", "kernel-one-by-one"),
    ]
    lines = ["%s; %s; Python %s; %d cores; %d interleaved rounds, medians; baseline: %s"
             % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), platform.platform(),
                platform.python_version(), os.cpu_count(), args.rounds, args.baseline),
             "",
             "| subject | median ms | vs | ratio |",
             "| --- | ---: | --- | ---: |"]
    for subject, key, base in rows:
        if key not in med:
            continue
        ratio = med[key] / med[base] if base in med else None
        lines.append("| %s | %.1f | %s | %s |" % (subject, med[key], base or "",
                                                   "%.2f" % ratio if ratio else ""))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="the git ref to compare with (default main)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--output", help="also write the table to this file")
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        json.dump(make_driver(json.loads(args.driver)).run(), sys.stdout)
        return
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (it builds a throwaway host and runs hooks as vdsm)")
    outside(args)


if __name__ == "__main__":
    main()

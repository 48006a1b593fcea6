#!/usr/bin/env python3
"""Whole-process time of the Linux Bridge ``after_device_create`` hook, beside the cost of
merely importing pyroute2, both measured in the same run (as root).

Each round builds the state libvirt leaves (a tap held open on ``;vdsmdummy;``, the
agent's ``brq…`` bridge present) in a private network namespace, then times, as whole
processes started the same way (``ip netns exec NS python3 …``):

- ``after_device_create``: the hook as VDSM runs it, which takes the tap off the dummy
  bridge and enslaves it to ``brq…`` (checked after each run);
- ``python3 -c "from pyroute2 import IPRoute"``: the floor any netlink hook pays;
- ``python3 -c pass``: the interpreter alone.

The three are interleaved round by round so drift hits them alike. Usage:
``python3 bench/lb_plug.py [--rounds N]`` (default 20); prints medians and the ratio.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.conftest import NETWORK_ID, PORT_ID, host_skip_reason, quantum_properties  # noqa: E402
from tests.lb_topology import DUMMY_BRIDGE, Topology  # noqa: E402
from vnic_drivers.simulate import hook_environment  # noqa: E402

TAP = "tap" + PORT_ID[:11]
BRQ = "brq" + NETWORK_ID[:11]
DEVICE = os.path.join(REPO, "tests", "golden", "lb_create.xml")


def timed(argv, env=None):
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit("bench: %s failed (%d): %s" % (argv[-1], done.returncode, done.stderr.strip()))
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    reason = host_skip_reason()
    if reason:
        raise SystemExit("bench: cannot run here: %s" % reason)
    from pyroute2 import netns

    name = "qvnic-bench-%s" % uuid.uuid4().hex[:8]
    netns.create(name)
    topology = Topology(name)
    samples = {"after_device_create": [], "import pyroute2": [], "python3 -c pass": []}
    try:
        topology.add_bridge(DUMMY_BRIDGE)
        topology.add_bridge(BRQ)
        in_ns = ["ip", "netns", "exec", name, sys.executable]
        with tempfile.TemporaryDirectory() as workdir:
            domxml = os.path.join(workdir, "domxml")
            properties = quantum_properties("LINUX_BRIDGE", network_id=NETWORK_ID)
            env = hook_environment(domxml, properties, {}, "d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de")
            env["PYTHONPATH"] = REPO
            env.pop("QUANTUM_VNIC_CONF", None)
            for _ in range(rounds):
                with open(DEVICE, "rb") as source, open(domxml, "wb") as target:
                    target.write(source.read())
                holder = topology.add_tap(TAP)
                samples["after_device_create"].append(
                    timed(in_ns + [os.path.join(REPO, "hooks", "after_device_create")], env))
                if topology.link(TAP)["master"] != BRQ:
                    raise SystemExit("bench: the hook did not enslave %s to %s" % (TAP, BRQ))
                topology.release(holder)
                samples["import pyroute2"].append(timed(in_ns + ["-c", "from pyroute2 import IPRoute"]))
                samples["python3 -c pass"].append(timed(in_ns + ["-c", "pass"]))
    finally:
        topology.close()
        netns.remove(name)

    medians = {key: statistics.median(values) for key, values in samples.items()}
    print("%d rounds, %s, Python %s, whole processes via ip netns exec" % (
        rounds, os.uname().release, sys.version.split()[0]))
    for key, values in samples.items():
        print("  %-20s median %6.1f ms   min %6.1f ms   max %6.1f ms" % (
            key, medians[key] * 1e3, min(values) * 1e3, max(values) * 1e3))
    print("  after_device_create / import pyroute2 = %.2f" % (
        medians["after_device_create"] / medians["import pyroute2"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""50 VMs x 2 vNICs started at once, then destroyed: wall time and per-hook distribution.

    sudo python3 bench/load.py [--vms N] [--fillers N ...] [--single N]

Runs the scenario of ``tests/test_load.py`` (:mod:`tests.load_run`): a throwaway host
(network namespace, ``;vdsmdummy;``, the agent's ``brq…``, a private OVS with
ovs-vswitchd), every hook as the user vdsm through the real sudo path, all 100 hooks of
a hook point started at once; libvirt's part (taps, its OVS ports) played in between.
In the same run, first, the hooks of ``--single`` VMs one at a time: the single-hook
figures the load figures compare with. Prints a Markdown section for bench/RESULTS.md.
"""

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests import load_run  # noqa: E402

PHASES = (("load start", "before_device_create"), ("load started", "after_device_create"),
          ("load destroyed", "after_device_destroy"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=load_run.VMS)
    parser.add_argument("--fillers", type=int, nargs="+", default=[0, 5000],
                        help="unrelated ports on br-int, one run each (default: 0 5000)")
    parser.add_argument("--single", type=int, default=2,
                        help="VMs (3 vNICs each, one per kind) whose hooks run one at a time first")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/load.py: needs root (network namespace, private OVS, sudo as vdsm)")
    rows = []
    for fillers in args.fillers:
        report = load_run.run(fillers=fillers, vms=args.vms, single=args.single)
        bad = report["errors"] + report["problems"] + report["leftovers"]
        if bad:
            sys.exit("bench/load.py: the run went wrong: %s" % "; ".join(bad[:5]))
        rows.append((fillers, report))
    print("| other ports on br-int | hook point | wall time, %d hooks at once | per hook median | p95 | max "
          "| single hook (same run) median | p95 | max |" % (args.vms * load_run.NICS_PER_VM))
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for fillers, report in rows:
        single = report["single"]
        for name, hook_point in PHASES:
            phase = report["phases"][name]
            print("| %d | %s | %.1f s | %.2f s | %.2f s | %.2f s | %.2f s | %.2f s | %.2f s |" % (
                fillers, hook_point, phase["wall"], phase["hooks"]["median"], phase["hooks"]["p95"],
                phase["hooks"]["max"], single["median"], single["p95"], single["max"]))
    for fillers, report in rows:
        total = sum(phase["wall"] for phase in report["phases"].values())
        print("\n%d other ports: the three parallel phases took %.1f s in all; single-hook "
              "sample: %d runs; no error, nothing left." % (fillers, total, report["single"]["n"]))


if __name__ == "__main__":
    main()

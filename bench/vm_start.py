"""VM start time through the hooks vs without them, on a real libvirtd and QEMU.

    python3 bench/vm_start.py [--runs N] [--nics N]

Starts the e2e suite's private host (test netns, private OVS and libvirtd; root needed)
and, interleaved so that machine noise hits both alike, per run:

- with hooks: what VDSM does to start the VM (``tests/e2e/vdsm_driver.py``, through
  VDSM's own hook runner from ``../shared/vdsm``): every ``before_device_create`` hook
  process, ``createXML`` (define + start of a transient domain, as VDSM), every
  ``after_device_create`` hook process (on an empty file, as VDSM passes it);
- without hooks: ``createXML`` of the very domain XML the hooks produced (same devices,
  so libvirt's own OVS port work is in both).

Each VM is destroyed (destroy hooks included, not timed) before the next. Prints medians.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.e2e import host as host_module  # noqa: E402
from tests.e2e import procs  # noqa: E402
from tests.e2e.vnics import quantum_nic  # noqa: E402
from tests.e2e.libvirtd import QEMU  # noqa: E402
from tests.e2e.vdsm_driver import Nic, Vdsm, Vm  # noqa: E402

PLUGINS = ("OPEN_VSWITCH", "LINUX_BRIDGE")


def _timed(action, vm):
    start = time.perf_counter()
    action(vm)
    return time.perf_counter() - start


def one_run(vdsm, index, nic_count):
    """(seconds with hooks, seconds without) for one VM of *nic_count* Quantum vNICs."""
    hooked = Vm("bench-hooks-%d" % index, [quantum_nic(PLUGINS[i % len(PLUGINS)]) for i in range(nic_count)])
    with_hooks = _timed(vdsm.start, hooked)
    vdsm.destroy(hooked)
    # The same devices as the hooks left them, without custom properties: no hook runs.
    plain = Vm("bench-plain-%d" % index, [Nic(nic.mac, {}) for nic in hooked.nics])
    for copy, nic in zip(plain.nics, hooked.nics):
        copy.xml = nic.xml
    without_hooks = _timed(vdsm.start, plain)
    vdsm.destroy(plain)
    return with_hooks, without_hooks


def measure(host, runs, nic_count):
    conn = host.libvirtd.connect()
    vdsm = Vdsm(conn, host.netns, QEMU, hook_config=host.hook_config())
    try:
        one_run(vdsm, -1, nic_count)  # warm-up: libvirt probes QEMU's capabilities once
        samples = [one_run(vdsm, index, nic_count) for index in range(runs)]
    finally:
        vdsm.close()
        conn.close()
    if vdsm.failures:
        raise SystemExit("hooks failed: %r" % vdsm.failures)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--nics", type=int, default=2, help="Quantum vNICs per VM, OVS and LB alternating")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vm-start-bench-") as root:
        try:
            with host_module.running(root) as host:
                samples = measure(host, args.runs, args.nics)
        except (procs.Unavailable, procs.NotInstalled) as err:
            raise SystemExit("bench/vm_start.py: %s" % err) from None
    with_hooks = statistics.median(sample[0] for sample in samples)
    without_hooks = statistics.median(sample[1] for sample in samples)
    print("%d runs, %d Quantum vNICs per VM (%s), TCG guest, Python %s" % (
        args.runs, args.nics, "/".join(PLUGINS[i % len(PLUGINS)] for i in range(args.nics)),
        sys.version.split()[0]))
    print("%-46s %10s" % ("VM start", "median ms"))
    print("%-46s %10.0f" % ("without hooks (createXML)", without_hooks * 1000))
    print("%-46s %10.0f" % ("with hooks (before_* + createXML + after_*)", with_hooks * 1000))
    print("%-46s %10.0f" % ("hook overhead", (with_hooks - without_hooks) * 1000))


if __name__ == "__main__":
    main()

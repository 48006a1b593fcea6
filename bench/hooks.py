"""Whole-process timings of hook runs, as medians and as ratios to baselines measured in
the same run (interleaved, so machine noise hits both alike).

    python3 bench/hooks.py [--runs N]

Each sample is one fresh process, exactly as VDSM starts a hook: interpreter start-up,
imports, reading the file, rewriting, atomic write, exit.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.conftest import quantum_properties  # noqa: E402

with open(os.path.join(REPO, "examples", "ovs_vnic.xml"), "rb") as _stream:
    DEVICE = _stream.read()


def _timed(argv, env):
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit("%s failed: %s" % (argv, done.stderr.decode()))
    return elapsed


def hook_command(hook_point, properties, workdir):
    """argv and env for one hook run on a fresh copy of the example device."""
    path = os.path.join(workdir, "domxml")
    with open(path, "wb") as stream:
        stream.write(DEVICE)
    env = dict(os.environ, _hook_domxml=path, vmId="d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de", PYTHONPATH=REPO)
    env.update(properties)
    # Built-in defaults but for where the MAC records go (not the machine's /run/vdsm): a
    # config file as the hook's argument, as tools pass it (VDSM passes no argument).
    config = os.path.join(workdir, "quantum_vnic.conf")
    with open(config, "w", encoding="utf-8") as stream:
        stream.write("[hook]\nstate_dir = %s\n" % os.path.join(workdir, "state"))
    return [sys.executable, os.path.join(REPO, "hooks", hook_point), "--config", config], env


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    subjects = {
        "python3 -c pass": lambda w: ([sys.executable, "-c", "pass"], dict(os.environ)),
        'python3 -c "import lxml.etree"': lambda w: ([sys.executable, "-c", "import lxml.etree"], dict(os.environ)),
        "before_device_create, not a Quantum vNIC": lambda w: hook_command(
            "before_device_create", {"provider_type": "OTHER"}, w),
        "before_device_create, OPEN_VSWITCH": lambda w: hook_command(
            "before_device_create", quantum_properties("OPEN_VSWITCH"), w),
        "before_device_create, LINUX_BRIDGE": lambda w: hook_command(
            "before_device_create", quantum_properties("LINUX_BRIDGE"), w),
    }
    samples = {name: [] for name in subjects}
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.runs):
            for name, make in subjects.items():
                argv, env = make(workdir)
                samples[name].append(_timed(argv, env))

    baseline = statistics.median(samples['python3 -c "import lxml.etree"'])
    print("%d interleaved runs each, Python %s" % (args.runs, sys.version.split()[0]))
    print("%-42s %10s %22s" % ("command", "median ms", "ratio to import lxml"))
    for name, values in samples.items():
        median = statistics.median(values)
        print("%-42s %10.1f %22.2f" % (name, median * 1000, median / baseline))


if __name__ == "__main__":
    main()

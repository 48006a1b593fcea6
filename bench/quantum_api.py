"""What the Quantum API costs: lookup latency, and the hooks of a VM start with the API on.

    python3 bench/quantum_api.py [--runs N]

Starts the tests' real Neutron API server (tests/neutron_server.py: its own venv, made on
first use; sqlite, noauth, loopback), creates a network and a port bound to this host,
then measures, interleaved so machine noise hits all alike:

- lookup latency in-process: GET port and GET network on one warm client (keep-alive),
  and a cold client per lookup (new session, TCP connect; what one hook process pays);
- whole hook processes for one Linux Bridge vNIC, API off and on: ``before_device_create``
  (binding check, network, MTU: 2 GETs) and ``after_device_create`` (network id: 1 GET),
  and their sum, the hooks' share of a VM start per vNIC; host operations are dry-run
  (they are the same with the API on or off);
- the fast path (not a Quantum vNIC) with the API configured, which must cost nothing;
- a stopped provider (connection refused, no retries): the price of the fallback.

Prints medians (ms) and ratios to the API-off run of the same hook point.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests import neutron_server  # noqa: E402
from tests.conftest import quantum_properties  # noqa: E402
from vnic_drivers import config as config_module  # noqa: E402
from vnic_drivers.quantum import client as client_module  # noqa: E402
from vnic_drivers.binding_host import binding_host_id  # noqa: E402

with open(os.path.join(REPO, "examples", "linux_bridge_vnic.xml"), "rb") as _stream:
    DEVICE = _stream.read()


def _hook(hook_point, properties, config_path, workdir):
    path = os.path.join(workdir, "domxml")
    with open(path, "wb") as stream:
        stream.write(DEVICE if hook_point.startswith("before_") else b"")
    env = dict(os.environ, _hook_domxml=path, vmId="d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de", PYTHONPATH=REPO)
    env.update(properties)
    argv = [sys.executable, os.path.join(REPO, "hooks", hook_point), "--config", config_path, "--dry-run"]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit("%s failed: %s" % (hook_point, done.stderr.decode()))
    return elapsed


def _write(path, text):
    with open(path, "w") as stream:
        stream.write(text)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    venv, seconds, _ = neutron_server.ensure_venv(log=lambda line: print(line, file=sys.stderr))
    workdir = tempfile.mkdtemp(prefix="bench-quantum-")
    server = neutron_server.NeutronServer(venv, workdir)
    started = time.perf_counter()
    server.start()
    print("Neutron %s API at %s (start %.1fs; venv install took %.0fs)" % (
        neutron_server.NEUTRON_VERSION, server.url, time.perf_counter() - started,
        seconds))
    try:
        host = binding_host_id(config_module.defaults(), "LINUX_BRIDGE")[0]
        server.add_agent(host, "LINUX_BRIDGE")
        server.add_agent(host, "OPEN_VSWITCH")
        network = server.create_network()
        port = server.create_port(network["id"], **{"binding:host_id": host})
        props = quantum_properties("LINUX_BRIDGE", port_id=port["id"])
        off = _write(os.path.join(workdir, "off.conf"), "")
        on = _write(os.path.join(workdir, "on.conf"), "[quantum]\nurl = %s\n" % server.url)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            down_url = "http://127.0.0.1:%d" % sock.getsockname()[1]
        down = _write(os.path.join(workdir, "down.conf"), "[quantum]\nurl = %s\nretries = 0\n" % down_url)
        config = config_module.load(on)
        warm = client_module.Client(config, budget=3600)

        subjects = {
            "GET port, warm client": lambda: warm.port(port["id"]),
            "GET network, warm client": lambda: warm.network(network["id"]),
            "GET port, cold client": lambda: client_module.Client(config).port(port["id"]),
            "before_device_create, API off": lambda: _hook("before_device_create", props, off, workdir),
            "before_device_create, API on": lambda: _hook("before_device_create", props, on, workdir),
            "after_device_create, API off": lambda: _hook("after_device_create", props, off, workdir),
            "after_device_create, API on": lambda: _hook("after_device_create", props, on, workdir),
            "not a Quantum vNIC, API off": lambda: _hook("before_device_create", {"provider_type": "X"}, off, workdir),
            "not a Quantum vNIC, API on": lambda: _hook("before_device_create", {"provider_type": "X"}, on, workdir),
            "before_device_create, provider down": lambda: _hook("before_device_create", props, down, workdir),
        }
        samples = {name: [] for name in subjects}
        for _ in range(args.runs):
            for name, run in subjects.items():
                start = time.perf_counter()
                result = run()
                samples[name].append(result if isinstance(result, float) else time.perf_counter() - start)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    print("%d interleaved runs each, Python %s" % (args.runs, sys.version.split()[0]))
    print("%-40s %10s %14s" % ("what", "median ms", "ratio to off"))
    for name, median in medians.items():
        base = name.rsplit(", ", 1)[0] + ", API off"
        ratio = "%14.2f" % (median / medians[base]) if base in medians and base != name else ""
        print("%-40s %10.1f %s" % (name, median, ratio))
    start_off = medians["before_device_create, API off"] + medians["after_device_create, API off"]
    start_on = medians["before_device_create, API on"] + medians["after_device_create, API on"]
    print("%-40s %10.1f" % ("VM start hooks per vNIC, API off", start_off))
    print("%-40s %10.1f %14.2f  (+%.1f ms per vNIC)" % ("VM start hooks per vNIC, API on", start_on,
                                                      start_on / start_off, start_on - start_off))


if __name__ == "__main__":
    main()

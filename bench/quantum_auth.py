#!/usr/bin/env python3
"""What Keystone authentication adds to a hook process, measured as whole processes.

A loopback Keystone v2.0 token endpoint (tests/keystone_server.py's ``KeystoneV2``) runs in
this process; each round times, interleaved so drift hits them alike:

- ``client floor``: ``python3 -c`` loading the config and making the ``requests.Session``
  every API client needs (what a hook with the API on pays before authenticating);
- ``cached token``: the same plus ``auth.for_config(config).headers(session)`` with the
  token in the cache (the usual case: credentials file, cache file, no network);
- ``fetch token``: the same with an empty cache (one POST to the endpoint, one cache write);
- ``python3 -c pass``: the interpreter alone.

Usage: ``python3 bench/quantum_auth.py [--rounds N]`` (default 20); prints medians and
the ratios against ``client floor``.
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

from tests.keystone_server import KeystoneV2  # noqa: E402

PASSWORD = "bench-password"
LOAD = ("from vnic_drivers import config; c = config.load(sys.argv[1])\n"
        "import requests; s = requests.Session(); s.quantum_timeout = (3, 10)")
HEADERS = "from vnic_drivers.quantum import auth; assert auth.for_config(c).headers(s)"


def timed(argv):
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=REPO))
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit("bench: %s failed (%d): %s" % (argv, done.returncode, done.stderr.strip()))
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    server = KeystoneV2({("quantum", "services"): PASSWORD})
    with tempfile.TemporaryDirectory() as workdir:
        credentials = os.path.join(workdir, "credentials")
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as stream:
            stream.write("[keystone]\nauth_url = %s\nusername = quantum\npassword = %s\ntenant_name = services\n"
                         % (server.url, PASSWORD))
        cache = os.path.join(workdir, "token")
        conf = os.path.join(workdir, "quantum_vnic.conf")
        with open(conf, "w") as stream:
            stream.write("[quantum]\nurl = http://127.0.0.1:9696\nauth = keystone-v2\ncredentials = %s\n"
                         "token_cache = %s\n" % (credentials, cache))
        python = [sys.executable, "-c"]
        samples = {"python3 -c pass": [], "client floor": [], "cached token": [], "fetch token": []}
        for _ in range(rounds):
            samples["python3 -c pass"].append(timed(python + ["pass"]))
            samples["client floor"].append(timed(python + ["import sys; " + LOAD, conf]))
            if os.path.exists(cache):
                os.unlink(cache)
            samples["fetch token"].append(timed(python + ["import sys; " + LOAD + "\n" + HEADERS, conf]))
            samples["cached token"].append(timed(python + ["import sys; " + LOAD + "\n" + HEADERS, conf]))
    server.stop()
    assert len(server.requests) == rounds, "a cached run asked Keystone"
    base = statistics.median(samples["client floor"])
    for name, values in samples.items():
        median = statistics.median(values)
        print("%-16s median %6.1f ms  (%.2fx client floor)" % (name, median * 1000, median / base))


if __name__ == "__main__":
    main()

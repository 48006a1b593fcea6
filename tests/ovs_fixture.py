"""A private, real Open vSwitch for tests: never the host's own database or daemons.

:func:`private_ovs` (a context manager, usable by any suite) creates a database from the
installed ``vswitch.ovsschema`` in a directory of the caller's, starts ``ovsdb-server`` on
a unix socket there and, optionally, ``ovs-vswitchd`` inside a given network namespace
with ``br-int`` on the userspace (``netdev``) datapath, which needs no kernel module. The
daemons are this process's children: they are stopped by pid and reaped on exit.

Every OVS run-time path (``OVS_RUNDIR`` and friends) points into the directory, so
nothing is read from or written to ``/var/run/openvswitch``.

    with private_ovs(tmpdir, netns="qvnic-x") as ovs:
        ovs.remote        # "unix:<tmpdir>/db.sock", for [openvswitch] ovsdb
        ovs.pids          # {"ovsdb-server": pid, "ovs-vswitchd": pid}
        ovs.vsctl("list-ports", "br-int")
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
BRIDGE = "br-int"
START_TIMEOUT = 20.0
PROGRAMS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl")


def skip_reason(vswitchd=True):
    """Why a private OVS (with ovs-vswitchd, or ovsdb-server alone) cannot run here, or None."""
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    if missing:
        return "needs Open vSwitch (%s missing; apt-get install openvswitch-switch)" % ", ".join(missing)
    if not os.path.exists(SCHEMA):
        return "needs %s (apt-get install openvswitch-common)" % SCHEMA
    if vswitchd and os.geteuid() != 0:
        return "needs root to run ovs-vswitchd in a network namespace"
    try:
        import ovs.jsonrpc  # noqa: F401
    except ImportError:
        return "needs the ovs python bindings (pip install ovs)"
    return None


class PrivateOvs:
    """A running private OVS: its socket, its daemons' pids, an ovs-vsctl bound to it."""

    def __init__(self, directory, netns):
        self.directory = directory
        self.netns = netns
        self.socket = os.path.join(directory, "db.sock")
        self.remote = "unix:" + self.socket
        self.pids = {}
        self.processes = {}
        self.env = dict(os.environ, OVS_RUNDIR=directory, OVS_DBDIR=directory,
                        OVS_LOGDIR=directory, OVS_SYSCONFDIR=directory)

    @property
    def vswitchd(self):
        return "ovs-vswitchd" in self.processes

    def vsctl(self, *args, wait=None):
        """``ovs-vsctl`` on this database; waits for ovs-vswitchd only when it runs."""
        wait = self.vswitchd if wait is None else wait
        argv = ["ovs-vsctl", "--db=" + self.remote, "--timeout=30"] + ([] if wait else ["--no-wait"])
        done = subprocess.run(argv + list(args), env=self.env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError("ovs-vsctl %s: %s" % (" ".join(args), done.stderr.strip()))
        return done.stdout.strip()

    def _start(self, name, argv):
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv  # execs: the pid is the daemon's
        log = open(os.path.join(self.directory, name + ".out"), "wb")
        with log:
            process = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        self.pids[name] = process.pid
        return process

    def _common_options(self, name):
        return ["--pidfile=%s/%s.pid" % (self.directory, name),
                "--unixctl=%s/%s.ctl" % (self.directory, name),
                "--log-file=%s/%s.log" % (self.directory, name), "-vconsole:off", "--no-chdir"]

    def start_ovsdb_server(self):
        database = os.path.join(self.directory, "conf.db")
        if not os.path.exists(database):
            subprocess.run(["ovsdb-tool", "create", database, SCHEMA], check=True, env=self.env,
                           capture_output=True)
        process = self._start("ovsdb-server", ["ovsdb-server", database, "--remote=punix:" + self.socket]
                              + self._common_options("ovsdb-server"))
        _until(lambda: _connectable(self.socket), process, "ovsdb-server on %s" % self.socket)
        self.vsctl("init", wait=False)

    def start_vswitchd(self):
        self._start("ovs-vswitchd", ["ovs-vswitchd", self.remote] + self._common_options("ovs-vswitchd"))
        # ovs-vsctl waits until ovs-vswitchd has applied the change: the daemon is ready.
        self.vsctl("--may-exist", "add-br", BRIDGE, "--", "set", "Bridge", BRIDGE, "datapath_type=netdev")

    def stop(self, name=None):
        """Stop one daemon (or all, vswitchd first) by pid and reap it."""
        for each in [name] if name else ["ovs-vswitchd", "ovsdb-server"]:
            process = self.processes.pop(each, None)
            if process is None:
                continue
            self.pids.pop(each)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_tail(self, name, lines=20):
        try:
            with open(os.path.join(self.directory, name + ".log"), encoding="utf-8", errors="replace") as stream:
                return "".join(stream.readlines()[-lines:])
        except OSError:
            return ""


def _connectable(path):
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _until(ready, process, what):
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if process.poll() is not None:
            raise RuntimeError("%s exited with %d at start" % (what, process.returncode))
        if time.monotonic() > deadline:
            raise RuntimeError("%s not ready after %gs" % (what, START_TIMEOUT))
        time.sleep(0.02)


@contextlib.contextmanager
def private_ovs(directory, netns=None, vswitchd=True):
    """Run a private OVS in *directory* (ovs-vswitchd inside *netns*); stop it on exit.

    Without *vswitchd* only ovsdb-server runs and ``br-int`` is created in the database.
    Keep *directory* short: a unix socket path has at most 107 characters.
    """
    ovs = PrivateOvs(directory, netns)
    try:
        ovs.start_ovsdb_server()
        if vswitchd:
            ovs.start_vswitchd()
        else:
            ovs.vsctl("add-br", BRIDGE)
        yield ovs
    finally:
        ovs.stop()

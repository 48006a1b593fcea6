"""A throwaway host: a network namespace with bridges, taps and its own Open vSwitch.

Used by ``quantum-vnic demo`` (and by the tests) to run the real hooks against real
kernel objects without touching the machine's own network namespace or OVS database:

- :class:`Sandbox` creates a network namespace and a temp directory, both named
  ``PREFIX-PID-RANDOM`` (:func:`owned_name`); bridges and taps are made inside it with
  pyroute2 (taps the way libvirt makes them: ``tuntap`` in ``tap`` mode, up, optionally
  on a bridge and with an MTU);
- :class:`PrivateOvs` runs ``ovsdb-server`` on a database and unix socket in that
  directory and ``ovs-vswitchd`` inside the namespace on the userspace (``netdev``)
  datapath, which needs no kernel module; every OVS run-time path points into the
  directory, never at ``/var/run/openvswitch``.

:meth:`Sandbox.delete` stops the daemons by pid, removes the namespace (and with it every
device in it) and the directory; it is safe to call twice and after a partial start.
All programs run from argv lists, never through a shell.

A run killed outright (SIGKILL: no ``finally``, no ``delete``) leaves nothing running:
the OVS daemons get SIGKILL when the thread that started them ends (Linux's parent-death
signal). What it does leave, the namespace and the directory, the next
:meth:`Sandbox.create` removes (:func:`remove_stale`): their names carry the pid of the
process that made them, and they are removed only once that process is gone.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
OVS_PROGRAMS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl")
START_TIMEOUT = 20.0
NETNS_DIR = "/run/netns"
# What owned_name() makes: qvnic[-word...]-PID-RANDOM (8 hex digits).
OWNED_NAME = re.compile(r"^qvnic(?:-[a-z0-9]+)*-([0-9]+)-[0-9a-f]{8}$")


def missing_requirements(ovs=True):
    """Why a sandbox (with a private OVS) cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, taps, ovs-vswitchd)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun to create taps"
    if shutil.which("ip") is None:
        return "needs iproute2's ip (dnf/apt-get install iproute2)"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "needs pyroute2 (dnf install python3-pyroute2)"
    if ovs:
        missing = [program for program in OVS_PROGRAMS if shutil.which(program) is None]
        if missing or not os.path.exists(OVS_SCHEMA):
            return "needs Open vSwitch (%s missing; dnf install openvswitch)" % ", ".join(
                missing or [OVS_SCHEMA])
    return None


def owned_name(prefix):
    """``PREFIX-PID-RANDOM``: a namespace or directory name that says which process made
    it, so that :func:`remove_stale` can tell one a killed run left from one in use.
    *prefix* is ``qvnic`` or ``qvnic-WORD``, lower-case letters and digits."""
    return "%s-%d-%s" % (prefix, os.getpid(), uuid.uuid4().hex[:8])


def _owner_gone(name):
    match = OWNED_NAME.match(name)
    if match is None:
        return False  # not an owned name: never ours to remove
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    return False


def remove_stale():
    """Remove the namespaces and temp directories named by :func:`owned_name` whose
    owner process is gone (a run killed before its clean-up); the names removed.

    A name whose pid runs (the owner, or an unrelated process that got its pid) is
    kept: at worst a stale one waits for a later run. Pids are this pid namespace's.
    """
    from pyroute2 import netns

    removed = []
    for name in _listdir(NETNS_DIR):
        if _owner_gone(name):
            try:
                netns.remove(name)
            except OSError:
                continue  # removed meanwhile by another run
            removed.append(os.path.join(NETNS_DIR, name))
    temp = tempfile.gettempdir()
    for name in _listdir(temp):
        path = os.path.join(temp, name)
        if _owner_gone(name) and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _listdir(path):
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _die_with_parent(argv):
    """*argv* made to get SIGKILL when the thread that started it ends (its process killed
    included), so a killed run leaves no daemon behind: ``setpriv --pdeathsig``, which
    survives the ``exec`` of ``ip netns exec`` and of the daemon. Start daemons from a
    thread that lives as long as they should (the main thread).

    Not a ``preexec_fn``: Python code between fork and exec runs the parent's signal
    handlers and at-fork callbacks in the child, and a Ctrl-C landing there (the demo
    stops on one) printed a traceback. Without setpriv (util-linux) the daemons are
    started as they are, and the next run's Sandbox removes what a killed one left.
    """
    import shutil

    setpriv = shutil.which("setpriv")
    return argv if setpriv is None else [setpriv, "--pdeathsig", "KILL", "--"] + argv


class PrivateOvs:
    """ovsdb-server (and ovs-vswitchd in *netns*) on files in *directory* only.

    The daemons are this process's children and die with it (:func:`_die_with_parent`).
    """

    def __init__(self, directory, netns=None):
        self.directory = directory
        self.netns = netns
        self.socket = os.path.join(directory, "db.sock")
        self.remote = "unix:" + self.socket
        self.processes = {}
        self.env = dict(os.environ, OVS_RUNDIR=directory, OVS_DBDIR=directory,
                        OVS_LOGDIR=directory, OVS_SYSCONFDIR=directory)

    @property
    def pids(self):
        return {name: process.pid for name, process in self.processes.items()}

    @property
    def vswitchd(self):
        """Whether ovs-vswitchd runs (else only the database does)."""
        return "ovs-vswitchd" in self.processes

    def start(self, bridge="br-int", vswitchd=True):
        """Start the daemons and create *bridge* (netdev datapath); ready on return."""
        self.start_ovsdb_server()
        if vswitchd:
            self._start("ovs-vswitchd", ["ovs-vswitchd", self.remote] + self._options("ovs-vswitchd"))
        # Waiting (with ovs-vswitchd), ovs-vsctl returns once the daemon applied it: ready.
        self.vsctl("--may-exist", "add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev")
        return self

    def start_ovsdb_server(self):
        """Create the database and serve it on :attr:`socket`; ready on return."""
        database = os.path.join(self.directory, "conf.db")
        if not os.path.exists(database):
            self._run(["ovsdb-tool", "create", database, OVS_SCHEMA])
        server = self._start("ovsdb-server", [
            "ovsdb-server", database, "--remote=punix:" + self.socket] + self._options("ovsdb-server"))
        _wait_until(lambda: _connectable(self.socket), server, "ovsdb-server on " + self.socket,
                    lambda: self.log_tail("ovsdb-server", suffix=".out") or self.log_tail("ovsdb-server"))
        self.vsctl("init", wait=False)

    def vsctl(self, *args, wait=None):
        """``ovs-vsctl`` on this database: its stdout, or RuntimeError with its stderr.

        It waits for ovs-vswitchd to apply a change only when that daemon runs (or *wait*).
        """
        wait = self.vswitchd if wait is None else wait
        return self._run(["ovs-vsctl", "--db=" + self.remote, "--timeout=20"]
                         + ([] if wait else ["--no-wait"]) + list(args))

    def log_tail(self, name, lines=20, suffix=".log"):
        """The last *lines* of a daemon's log file (``.out``: its stdout/stderr); '' if none."""
        try:
            with open(os.path.join(self.directory, name + suffix), encoding="utf-8",
                      errors="replace") as stream:
                return "".join(stream.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self, name=None):
        """Stop one daemon, or all (ovs-vswitchd first), by pid; reap them."""
        for each in [name] if name else ["ovs-vswitchd", "ovsdb-server"]:
            process = self.processes.pop(each, None)
            if process is not None:
                _terminate(process)

    def _options(self, name):
        return ["--pidfile=%s/%s.pid" % (self.directory, name),
                "--unixctl=%s/%s.ctl" % (self.directory, name),
                "--log-file=%s/%s.log" % (self.directory, name), "-vconsole:off", "--no-chdir"]

    def _start(self, name, argv):
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv  # ip execs: the pid is the daemon's
        with open(os.path.join(self.directory, name + ".out"), "wb") as output:
            process = subprocess.Popen(_die_with_parent(argv), env=self.env, stdin=subprocess.DEVNULL,
                                       stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)  # Ctrl-C is ours to handle
        self.processes[name] = process
        return process

    def _run(self, argv):
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(argv[:3]), done.stderr.strip()))
        return done.stdout.strip()


def links_of(ipr):
    """{name: {"kind", "master", "up", "mtu"}} of every device *ipr* (an IPRoute) sees."""
    raw = ipr.get_links()
    names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in raw}
    found = {}
    for link in raw:
        info = link.get_attr("IFLA_LINKINFO")
        found[link.get_attr("IFLA_IFNAME")] = {
            "kind": info.get_attr("IFLA_INFO_KIND") if info else None,
            "master": names.get(link.get_attr("IFLA_MASTER")),
            "up": bool(link["flags"] & 1),
            "mtu": link.get_attr("IFLA_MTU"),
        }
    return found


def netns_iproute(name):
    """An IPRoute working inside the existing network namespace *name* (a context manager).

    pyroute2 0.9.1 and later take ``IPRoute(netns=...)``. Before that (EL9 ships 0.7) the
    calling thread enters the namespace for the ``with`` block and returns to its own on
    leaving it (0.7's ``NetNS`` would fork a helper per call instead, and a Ctrl-C landing
    in the fork handlers is lost with a traceback). Never creates a namespace that is gone.
    """
    import pyroute2

    if _version(pyroute2.__version__) >= (0, 9, 1):
        return pyroute2.IPRoute(netns=name, flags=0)
    return _iproute_entered(name)


@contextlib.contextmanager
def _iproute_entered(name):
    from pyroute2 import IPRoute
    from pyroute2.netns import setns

    # Stop signals wait for the end of the block: one landing half-way could leave this
    # thread in *name*, or 0.7's tap creation with a helper thread that never ends (the
    # process would then hang at exit). The block is a few netlink requests.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        setns(name, flags=0)
        try:
            # The socket, and the taps made through /dev/net/tun, belong to *name*.
            with IPRoute() as ipr:
                yield ipr
        finally:
            setns(own)
    finally:
        os.close(own)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _version(text):
    numbers = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(part or 0) for part in numbers.groups()) if numbers else (0, 0, 0)


class Sandbox:
    """A network namespace and a temp directory, both removed by :meth:`delete` (or, after
    a killed run, by the next one's :func:`remove_stale`)."""

    def __init__(self, prefix="qvnic-sandbox"):
        self.name = owned_name(prefix)
        self.directory = None
        self.ovs = None
        self.created = False

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc_info):
        self.delete()

    def create(self):
        """Make the namespace and the directory (loopback up); on failure remove both.
        First, what killed runs left (:func:`remove_stale`)."""
        from pyroute2 import netns

        remove_stale()
        try:
            self.created = True  # before: an interrupt right after creation must still remove it
            netns.create(self.name)
            # Short: a unix socket path in it has at most 107 characters.
            directory = os.path.join(tempfile.gettempdir(), self.name)
            os.mkdir(directory, 0o700)
            self.directory = directory
            with self.ipr() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        except BaseException:
            # A with-statement whose __enter__ raised never calls __exit__: clean up here.
            self.delete()
            raise
        return self

    def ipr(self):
        """An IPRoute inside the namespace (use it as a context manager)."""
        return netns_iproute(self.name)

    def start_ovs(self, bridge="br-int"):
        self.ovs = PrivateOvs(self.directory, self.name)
        return self.ovs.start(bridge)

    def add_bridge(self, name):
        with self.ipr() as ipr:
            ipr.link("add", ifname=name, kind="bridge")
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")

    def add_tap(self, name, master=None, mtu=None, mac=None):
        """A tap as libvirt creates it for a vNIC: up, with its MTU, on *master* if given."""
        with self.ipr() as ipr:
            ipr.link("add", ifname=name, kind="tuntap", mode="tap")
            index = ipr.link_lookup(ifname=name)[0]
            settings = {"state": "up"}
            if mtu:
                settings["mtu"] = mtu
            if mac:
                # libvirt gives the tap the guest MAC with the first byte set to 0xfe.
                settings["address"] = "fe" + mac[2:]
            if master:
                settings["master"] = ipr.link_lookup(ifname=master)[0]
            ipr.link("set", index=index, **settings)

    def delete_link(self, name):
        with self.ipr() as ipr:
            found = ipr.link_lookup(ifname=name)
            if found:
                ipr.link("del", index=found[0])

    def links(self):
        """{name: {"kind", "master", "up", "mtu"}} of every device in the namespace."""
        with self.ipr() as ipr:
            return links_of(ipr)

    def command(self, argv):
        """*argv* prefixed to run inside the namespace."""
        return ["ip", "netns", "exec", self.name] + list(argv)

    def delete(self):
        """Stop the daemons, remove the namespace and the directory; idempotent."""
        from pyroute2 import netns

        if self.ovs is not None:
            self.ovs.stop()
            self.ovs = None
        if self.created:
            self.created = False
            try:
                netns.remove(self.name)
            except OSError:
                pass  # already gone
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def _connectable(path):
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _wait_until(ready, process, what, log_tail=lambda: ""):
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if process.poll() is not None:
            problem = "%s exited with status %d at start" % (what, process.returncode)
        elif time.monotonic() > deadline:
            problem = "%s not ready after %gs" % (what, START_TIMEOUT)
        else:
            time.sleep(0.02)
            continue
        tail = log_tail().strip().splitlines()
        raise RuntimeError(problem + ("; it said: %s" % tail[-1] if tail else ""))


def _terminate(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

"""``quantum-vnic-helper``: the resident root daemon that runs privileged operations for hooks.

systemd starts it on the first connection to ``quantum-vnic-helper.socket`` (socket
activation: connections queue while it starts or restarts) and hands it the listening
socket (``$LISTEN_FDS``, fd 3). Run by hand it binds ``[helper] socket`` itself.

For each connection (:mod:`.protocol` says what travels on it):

- the caller's uid comes from the kernel (``SO_PEERCRED``); root and ``[helper]
  allowed_users`` may ask, anyone else gets one refusal and the connection is closed;
- a request line is read within ``[helper] client_timeout`` seconds, at most
  ``protocol.MAX_REQUEST`` bytes and ``protocol.MAX_DEPTH`` levels deep;
- the operation runs through :func:`vnic_drivers.host.privileged.run`: the same table and
  the same validation as the sudo entry point, and the OVSDB remote and integration bridge
  from this side's config, never from the caller.

Every connection has its own thread, so an operation waiting for an agent never holds up
another; changes to the same port (same port id, or same tap) run one at a time. An
operation may leave part of its work until after the answer (:class:`privileged.Then
<vnic_drivers.host.privileged.Then>`: ``ovs_unplug`` answers once the port's OVS rows are
gone and qvo is down, then deletes the hybrid devices): that part runs right after the
answer is sent, still holding the port's lock, so the next request for that port (a VM
restarted at once) waits until it is done; the idle exit and SIGTERM wait for it too. The
process keeps its netlink sockets (:func:`.netlink.keep_open`) and one OVSDB connection
per remote (:func:`.ovsdb.share`: reconnected and the request retried once when
ovsdb-server restarted). SIGHUP re-reads the config; SIGTERM, or ``[helper]
idle_timeout`` seconds without a connection, ends it (systemd starts it again when needed).
Logs go to stderr (the journal) like the hooks' (:mod:`vnic_drivers.log`).
"""

import argparse
import contextlib
import os
import signal
import socket
import struct
import sys
import threading
import time

from .. import config as config_module
from .. import log
from ..errors import HookError, InputError
from . import protocol

SD_LISTEN_FDS_START = 3
MAX_CONNECTIONS = 256  # beyond this a caller is refused (and uses sudo)


class PortLocks:
    """One lock per port key, alive while someone holds or waits for it."""

    def __init__(self):
        self._guard = threading.Lock()
        self._locks = {}  # key -> [lock, holders and waiters]

    @contextlib.contextmanager
    def hold(self, key):
        if key is None:  # a host-wide read: nothing to serialise with
            yield
            return
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if not entry[1]:
                    del self._locks[key]


def port_key(args):
    """What two conflicting requests share: the port id's device-name part (port[:11]),
    from ``port_id`` or a device named prefix+port[:11] (``tap``); None for host-wide reads.
    Generic on purpose: operations are dispatched by name, whatever their arguments."""
    port_id = args.get("port_id")
    if isinstance(port_id, str):
        return port_id[:11]
    tap = args.get("tap")
    if isinstance(tap, str):
        return tap[3:]
    return None


class Settings:
    """What the daemon itself takes from ``[helper]`` (re-read on SIGHUP)."""

    def __init__(self, config):
        import pwd

        section = lambda option: config.get("helper", option)  # noqa: E731
        self.config = config
        self.socket = section("socket")
        self.idle_timeout = section("idle_timeout")
        # 0 would make sockets non-blocking: wait at least a little for a request.
        self.client_timeout = max(section("client_timeout"), 0.5)
        self.allowed = {0}
        self.groups = []  # primary gids of the allowed users, in the config's order
        self.unknown = []
        for user in section("allowed_users"):
            try:
                entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
            except KeyError:
                if user.isdigit():
                    self.allowed.add(int(user))
                else:
                    self.unknown.append(user)
                continue
            self.allowed.add(entry.pw_uid)
            self.groups.append(entry.pw_gid)


class Helper:
    def __init__(self):
        self.logger = log.setup("helper")
        self.settings = None
        self.locks = PortLocks()
        self.active = 0
        self.pending = 0  # steps left for after an answer, not yet run (see answer)
        self.active_lock = threading.Lock()
        self.last_activity = time.monotonic()
        self.stopping = False
        self.reload_requested = False

    # --- configuration ---

    def load(self):
        """Read root's config, the one privileged.run takes the OVSDB remote and br-int
        from (the same cached object); on SIGHUP a bad file keeps the previous settings."""
        from ..host import ovsdb, privileged

        config_module.load()  # a bad file raises here, before the running config is dropped
        privileged.configuration.cache_clear()
        config = privileged.configuration()
        self.settings = Settings(config)
        ovsdb.close_shared()  # the remote may have changed
        log.setup("helper", config.get("hook", "log_level"), config.get("hook", "syslog"))
        for user in self.settings.unknown:
            self.logger.warning("[helper] allowed_users: no user %s on this host; ignored", user)
        self.logger.info("ready: config %s, allowed uids %s, idle timeout %gs", config.path,
                         ",".join(str(uid) for uid in sorted(self.settings.allowed)),
                         self.settings.idle_timeout)

    def reload(self):
        self.reload_requested = False
        try:
            self.load()
        except HookError as err:
            self.logger.error("reload refused, keeping the previous config: %s", err)

    # --- the listening socket ---

    def listener(self):
        """The socket systemd passed, or ``[helper] socket`` bound here."""
        if os.environ.get("LISTEN_PID") == str(os.getpid()) and int(os.environ.get("LISTEN_FDS", "0")) >= 1:
            for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
                os.environ.pop(name, None)
            return socket.socket(fileno=SD_LISTEN_FDS_START)
        path = self.settings.socket
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        sock.listen(128)
        # As SocketGroup= would: the group of the first allowed user that exists.
        gid = next(iter(self.settings.groups), 0)
        os.chown(path, 0, gid)
        self.logger.info("not socket-activated: listening on %s (mode 0660, gid %d)", path, gid)
        return sock

    def serve(self):
        from ..host import netlink, ovsdb

        netlink.keep_open()
        ovsdb.share()
        listener = self.listener()
        listener.settimeout(1.0)
        try:
            while not self.stopping:
                if self.reload_requested:
                    self.reload()
                try:
                    conn, _ = listener.accept()
                except socket.timeout:
                    if self._idle():
                        self.logger.info("idle for %gs: exiting (socket activation restarts me)",
                                         self.settings.idle_timeout)
                        break
                    continue
                except InterruptedError:
                    continue
                self._start(conn)
        finally:
            listener.close()
            self._drain()
            ovsdb.close_shared()

    def _idle(self):
        timeout = self.settings.idle_timeout
        with self.active_lock:
            return (timeout > 0 and not self.active and not self.pending
                    and time.monotonic() - self.last_activity >= timeout)

    def _drain(self, seconds=10.0):
        """Wait up to *seconds* for running requests, and however long it takes for the
        steps already left for after an answer (deletions: bounded netlink work), so that
        an answered unplug is never left half-done by the exit."""
        deadline = time.monotonic() + seconds
        while True:
            with self.active_lock:
                if not self.pending and (not self.active or time.monotonic() >= deadline):
                    return
            time.sleep(0.02)

    def _start(self, conn):
        with self.active_lock:
            self.active += 1
            self.last_activity = time.monotonic()
            busy = self.active > MAX_CONNECTIONS
        if busy:
            self._finish(conn, {"ok": False, "kind": protocol.REFUSED,
                                "error": "helper busy (%d connections)" % MAX_CONNECTIONS})
            return
        threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _finish(self, conn, message=None):
        try:
            if message is not None:
                conn.sendall(protocol.encode(message))
                _discard_unread(conn)
        except OSError:
            pass
        finally:
            conn.close()
            with self.active_lock:
                self.active -= 1
                self.last_activity = time.monotonic()

    # --- one connection ---

    def _connection(self, conn):
        settings = self.settings
        final = None
        try:
            uid = peer_uid(conn)
            if uid not in settings.allowed:
                self.logger.warning("refused a connection from uid %d: not in [helper] allowed_users", uid)
                final = _refusal("uid %d is not allowed to use the helper ([helper] allowed_users "
                                 "in root's config)" % uid)
                return
            conn.settimeout(settings.client_timeout)
            reader = LineReader(conn)
            while True:
                try:
                    line = reader.line()
                except protocol.Refused as err:
                    final = _refusal(str(err))
                    self.logger.warning("uid %d: %s", uid, err)
                    return
                if line is None:
                    return
                try:
                    operation, args = protocol.decode_request(line)
                except protocol.Refused as err:
                    final = _refusal(str(err))
                    self.logger.warning("uid %d: %s", uid, err)
                    return
                if operation == protocol.RUN_HOOK:
                    self.run_hook(conn, uid, args)
                    return  # its answer is not a JSON line: nothing may follow on this connection
                self.answer(uid, operation, args, lambda reply: conn.sendall(protocol.encode(reply)))
        except (socket.timeout, OSError):
            return  # the client went away or was too slow: nothing to answer
        finally:
            self._finish(conn, final)

    def answer(self, uid, operation, args, send):
        """Run one request and *send* its reply; then run what the operation left for
        after the reply, still holding the port's lock (also when the client is gone)."""
        if operation == "ping":
            send({"ok": True, "result": {"pid": os.getpid(), "uid": uid}})
            return
        steps = []
        with self.locks.hold(port_key(args)):
            try:
                send(self._run(uid, operation, args, steps))
            finally:
                self._run_steps(uid, operation, args, steps)

    def _later(self, steps):
        def later(step):
            with self.active_lock:
                self.pending += 1
            steps.append(step)
        return later

    def _run_steps(self, uid, operation, args, steps):
        for step in steps:
            start = time.monotonic()
            try:
                step()
            except Exception as err:  # nobody to tell: the next run or cleanup repairs it
                self.logger.warning("uid %d: %s %s: after the answer: failed, left for the next "
                                    "run or quantum-vnic cleanup: %s", uid, operation,
                                    _describe(args), err)
            else:
                self.logger.info("uid %d: %s %s: after the answer: done (%.1f ms)", uid,
                                 operation, _describe(args), (time.monotonic() - start) * 1000)
            finally:
                with self.active_lock:
                    self.pending -= 1

    def _run(self, uid, operation, args, steps):
        from ..host import privileged

        start = time.monotonic()
        try:
            result = privileged.run(operation, args, later=self._later(steps))
        except InputError as err:
            reply, outcome = {"ok": False, "kind": protocol.INPUT, "error": str(err)}, "refused: %s" % err
        except HookError as err:
            reply, outcome = {"ok": False, "kind": protocol.HOST, "error": str(err)}, "failed: %s" % err
        except Exception as err:  # a bug: log it whole, tell the caller in one line
            self.logger.exception("uid %d: %s: unexpected failure", uid, operation)
            reply = {"ok": False, "kind": protocol.HOST,
                     "error": "%s: internal error in quantum-vnic-helper (%s); see its log"
                              % (operation, type(err).__name__)}
            outcome = "crashed"
        else:
            reply, outcome = {"ok": True, "result": result}, "done"
        self.logger.info("uid %d: %s %s: %s (%.1f ms)", uid, operation, _describe(args), outcome,
                         (time.monotonic() - start) * 1000)
        return reply


    def run_hook(self, conn, uid, args):
        """A whole after_* hook point for a hook process (:mod:`.hook_runner`), answered
        in run_hook's frames (:mod:`.protocol`)."""
        from ..host import InProcessHost
        from . import hook_runner

        start = time.monotonic()
        settings = self.settings
        steps = []  # what the hook's operations left for after the answer (see answer)
        try:
            hook_point, environ = hook_runner.parse(args)
            with self.locks.hold(port_key(args)):
                hook = hook_runner.HookRun(hook_point, environ, settings.config,
                                           InProcessHost(later=self._later(steps)))
                bound = hook.bound(settings.client_timeout)
                conn.sendall(protocol.ACCEPTED + protocol.BOUND.pack(min(bound, 0xFFFF)))
                code, text = hook.run()
                try:
                    conn.sendall(protocol.result_frame(code, text))
                    self.logger.info("uid %d: run_hook %s: exit %d (%.1f ms)", uid, _describe(args),
                                     code, (time.monotonic() - start) * 1000)
                finally:
                    self._run_steps(uid, protocol.RUN_HOOK, args, steps)
        except hook_runner.Declined as err:
            conn.sendall(protocol.DECLINED)
            self.logger.info("uid %d: run_hook %s: declined: %s", uid, _describe(args), err)


class LineReader:
    """Request lines from a socket, refusing one longer than protocol.MAX_REQUEST."""

    def __init__(self, conn):
        self.conn = conn
        self.buffer = b""

    def line(self):
        """The next line without its newline; None at a clean end of the connection."""
        while b"\n" not in self.buffer:
            if len(self.buffer) > protocol.MAX_REQUEST:
                raise protocol.Refused("request of more than %d bytes" % protocol.MAX_REQUEST)
            chunk = self.conn.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line


def _discard_unread(conn, limit=4 * protocol.MAX_REQUEST):
    """Read (a bounded amount of) what the client sent and nobody will read: closing a
    Unix socket with unread data resets it, and the client could lose the refusal."""
    conn.setblocking(False)
    try:
        while limit > 0:
            chunk = conn.recv(65536)
            if not chunk:
                break
            limit -= len(chunk)
    except OSError:
        pass


def _refusal(error):
    return {"ok": False, "kind": protocol.REFUSED, "error": error}


def _describe(args):
    import json

    return " ".join("%s=%s" % (key, json.dumps(value)) for key, value in sorted(args.items()))[:300]


def peer_uid(conn):
    """The uid of the process at the other end of *conn*, as the kernel saw it connect."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def main(argv=None):
    argparse.ArgumentParser(
        prog="quantum-vnic-helper", description=__doc__.splitlines()[0],
        epilog="Reads root's %s ([helper], and what the operations need)." % config_module.DEFAULT_PATH,
    ).parse_args(argv)
    if os.geteuid() != 0:
        sys.stderr.write("quantum-vnic-helper: must run as root (systemd starts it)\n")
        return 2
    helper = Helper()
    try:
        helper.load()
    except HookError as err:
        helper.logger.error("%s", err)
        return 1
    # Warm up what every request needs, before the first one waits on it.
    from ..host import netlink, ovs_plug, privileged  # noqa: F401
    import pyroute2  # noqa: F401
    import ovs.jsonrpc  # noqa: F401

    def on_hup(*_):
        helper.reload_requested = True

    def on_term(*_):
        helper.stopping = True

    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    helper.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

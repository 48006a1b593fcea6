"""A real Neutron API server from PyPI on loopback, for the Quantum API tests.

Neutron pins its own versions of half of PyPI, so it lives in its own virtualenv (never
in the interpreter that runs the tests), created once and reused: the directory is
``$QUANTUM_VNIC_NEUTRON_VENV`` or ``neutron-VERSION-pyX.Y`` in :func:`tests.cache.cache_root`
(``$QUANTUM_VNIC_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/quantum-vnic``); CI reuses it
for the whole run. The venv also caches an empty database with Neutron's schema
(sqlite cannot run Neutron's migrations: the schema comes from the models' metadata,
then ``neutron-db-manage stamp heads``).

The server: ML2 with the Open vSwitch and Linux Bridge mechanism drivers, vxlan tenant
networks, ``auth_strategy = noauth``, ``transport_url = fake:/`` (no message bus), the
WSGI application ``neutron.wsgi.api:application`` under eventlet's WSGI server (the app
monkey-patches for eventlet when imported; wsgiref's threads then never answer).
Ports bind only to a host with a live agent, so :meth:`NeutronServer.add_agent` writes a
fresh agent row; :meth:`NeutronServer.set_port_status` stands in for the agent's RPC.

This file is also a script: ``prepare`` (the main interpreter: make the venv) and, run by
the venv's interpreter, ``schema`` and ``serve``; at module level it imports the standard
library only, and its two standard-library helpers beside it (:mod:`tests.cache`,
:mod:`tests.venvs`: the install is uv's when there is one, else pip's).
"""

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

try:
    from tests import cache, venvs
except ImportError:  # run as a script (``prepare``): this file's directory is sys.path[0]
    import cache
    import venvs

NEUTRON_VERSION = "25.2.3"  # 2024.2 (Dalmatian): installs and runs on Python 3.9 to 3.12
# pip would take the newest of every dependency, and neutron-lib 4+ dropped names 25.x
# imports (constants.ACCESS_READONLY): every version is pinned, as the venv that passed.
CONSTRAINTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "neutron_constraints.txt")
VENV_ENV = "QUANTUM_VNIC_NEUTRON_VENV"
PYTHON_ENV = "QUANTUM_VNIC_NEUTRON_PYTHON"
INSTALL_TIMEOUT = 1200
START_TIMEOUT = 90
AGENT_TYPES = {
    "OPEN_VSWITCH": ("Open vSwitch agent", "neutron-openvswitch-agent"),
    "LINUX_BRIDGE": ("Linux bridge agent", "neutron-linuxbridge-agent"),
}

NEUTRON_CONF = """\
[DEFAULT]
core_plugin = ml2
service_plugins =
auth_strategy = noauth
transport_url = fake:/
api_paste_config = {paste}
state_path = {state}
agent_down_time = 86400
global_physnet_mtu = 1500
debug = false
use_stderr = true
[database]
connection = sqlite:///{db}
[ml2]
type_drivers = vxlan,flat
tenant_network_types = vxlan
mechanism_drivers = openvswitch,linuxbridge
extension_drivers = port_security
[ml2_type_vxlan]
vni_ranges = 1:1000
[experimental]
linuxbridge = true
[oslo_concurrency]
lock_path = {state}/lock
"""


class NeutronUnavailable(Exception):
    """Neutron cannot be installed or started here; ``str()`` says exactly why."""


# --- the virtualenv -------------------------------------------------------------------


def _python():
    return os.environ.get(PYTHON_ENV) or sys.executable


def venv_dir(python=None):
    explicit = os.environ.get(VENV_ENV)
    if explicit:
        return explicit
    version = subprocess.run([python or _python(), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return os.path.join(cache.cache_root(), "neutron-%s-py%s" % (NEUTRON_VERSION, version))


def ensure_venv(log=print):
    """(the venv's directory, seconds its making took, whether this call made it); made
    (install neutron, schema) on first use."""
    import fcntl

    path = venv_dir()
    done = os.path.join(path, "quantum-vnic-ready")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(CONSTRAINTS, "rb") as stream:
        stamp = hashlib.sha256(stream.read()).hexdigest()
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one installer at a time (parallel sessions)
        try:
            with open(done) as stream:
                seconds, made_with = stream.read().split()
            if made_with == stamp:
                return path, float(seconds), False
        except (OSError, ValueError):
            pass  # not made yet, or made with other pins: make it again
        started = time.monotonic()
        shutil.rmtree(path, ignore_errors=True)
        log("neutron_server: creating %s (neutron==%s with uv, else pip; once)" % (path, NEUTRON_VERSION))
        _run([_python(), "-m", "venv", path], "create the virtualenv", 120)
        try:
            tool = venvs.install(path, ["neutron==%s" % NEUTRON_VERSION], CONSTRAINTS, timeout=INSTALL_TIMEOUT)
        except venvs.Failed as err:
            raise NeutronUnavailable(str(err)) from None
        installed = time.monotonic()
        _make_schema(path)
        seconds = time.monotonic() - started
        with open(done, "w") as stream:
            stream.write("%.1f %s\n" % (seconds, stamp))
        log("neutron_server: venv ready in %.0fs (%s install %.0fs, schema %.0fs)"
            % (seconds, tool, installed - started, seconds - (installed - started)))
        return path, seconds, True


def _run(argv, what, timeout, **kwargs):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise NeutronUnavailable("%s: no result after %ds" % (what, timeout)) from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines()
                 if line.strip() and "is ignored: it is neither" not in line]
        raise NeutronUnavailable("%s failed (exit %d): %s" % (what, done.returncode, " | ".join(lines[-6:])))
    return done


def _write_config(directory, venv, db):
    paste = os.path.join(venv, "etc", "neutron", "api-paste.ini")
    os.makedirs(os.path.join(directory, "lock"), exist_ok=True)
    conf = os.path.join(directory, "neutron.conf")
    with open(conf, "w") as stream:
        stream.write(NEUTRON_CONF.format(paste=paste, state=directory, db=db))
    return conf


def _make_schema(venv):
    """An empty Neutron database in the venv (schema.sqlite), stamped at the heads."""
    work = os.path.join(venv, "schema-work")
    os.makedirs(work, exist_ok=True)
    db = os.path.join(work, "neutron.sqlite")
    conf = _write_config(work, venv, db)
    python = os.path.join(venv, "bin", "python")
    _run([python, os.path.abspath(__file__), "schema", db], "create Neutron's schema", 300)
    _run([os.path.join(venv, "bin", "neutron-db-manage"), "--config-file", conf, "stamp", "heads"],
         "neutron-db-manage stamp heads", 300)
    os.replace(db, os.path.join(venv, "schema.sqlite"))
    shutil.rmtree(work, ignore_errors=True)


# --- the server -----------------------------------------------------------------------


class NeutronServer:
    """One running API server; ``url`` is its endpoint (http://127.0.0.1:PORT)."""

    def __init__(self, venv, workdir):
        self.venv = venv
        self.workdir = workdir
        self.db = os.path.join(workdir, "neutron.sqlite")
        shutil.copyfile(os.path.join(venv, "schema.sqlite"), self.db)
        self.conf = _write_config(workdir, venv, self.db)
        self.process = None
        self.url = None

    def start(self):
        port_file = os.path.join(self.workdir, "port")
        env = dict(os.environ, OS_NEUTRON_CONFIG_DIR=self.workdir,
                   OS_NEUTRON_CONFIG_FILES=os.path.basename(self.conf))
        env.pop("PYTHONPATH", None)
        self.log = open(os.path.join(self.workdir, "server.log"), "w")
        self.process = subprocess.Popen(
            [os.path.join(self.venv, "bin", "python"), os.path.abspath(__file__), "serve", port_file],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NeutronUnavailable("the Neutron API server exited (%d) at start: %s"
                                         % (self.process.returncode, self.log_tail()))
            if os.path.exists(port_file) and os.path.getsize(port_file):
                with open(port_file) as stream:
                    self.url = "http://127.0.0.1:%d" % int(stream.read())
                if self._answers():
                    return self
            time.sleep(0.2)
        self.stop()
        raise NeutronUnavailable("the Neutron API server did not answer within %ds: %s"
                                 % (START_TIMEOUT, self.log_tail()))

    def _answers(self):
        try:
            self.request("GET", "/v2.0/networks")
            return True
        except OSError:
            return False

    def log_tail(self, lines=8):
        try:
            with open(os.path.join(self.workdir, "server.log")) as stream:
                return " | ".join(line.strip() for line in stream.read().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self):
        from tests import child_process

        child_process.stop(self.process)

    # --- the API, as an admin would use it (stdlib HTTP: the client under test is not
    # used to set up its own test) ---

    def request(self, method, path, body=None):
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            connection.request(method, path, body=None if body is None else json.dumps(body),
                               headers={"Content-Type": "application/json", "Accept": "application/json"})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.status >= 400:
            raise AssertionError("%s %s: HTTP %d %s" % (method, path, response.status, data[:300]))
        return json.loads(data) if data else None

    def create_network(self, **fields):
        fields.setdefault("name", "net-%s" % uuid.uuid4().hex[:6])
        fields.setdefault("tenant_id", "admin")
        return self.request("POST", "/v2.0/networks", {"network": fields})["network"]

    def create_port(self, network_id, **fields):
        fields.update(network_id=network_id)
        fields.setdefault("tenant_id", "admin")
        return self.request("POST", "/v2.0/ports", {"port": fields})["port"]

    def delete_port(self, port_id):
        self.request("DELETE", "/v2.0/ports/%s" % port_id)

    def add_agent(self, host, plugin_type="OPEN_VSWITCH"):
        """A live agent of *plugin_type* on *host*, as its first report would write it."""
        agent_type, binary = AGENT_TYPES[plugin_type]
        now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
        configurations = {"tunnel_types": ["vxlan"], "tunneling_ip": "127.0.0.1",
                          "bridge_mappings": {}, "interface_mappings": {},
                          "integration_bridge": "br-int", "ovs_hybrid_plug": False,
                          "datapath_type": "system", "devices": 0}
        row = {"id": str(uuid.uuid4()), "agent_type": agent_type, "binary": binary,
               "topic": "N/A", "host": host, "admin_state_up": 1, "created_at": now,
               "started_at": now, "heartbeat_timestamp": now, "description": None,
               "configurations": json.dumps(configurations), "load": 0,
               "resource_versions": None, "availability_zone": None, "resources_synced": None}
        self._write(lambda db: _insert(db, "agents", row))
        return row["id"]

    def set_port_status(self, port_id, status):
        """What the agent's ``update_device_up`` RPC ends in: the port's status column."""
        self._write(lambda db: db.execute("UPDATE ports SET status = ? WHERE id = ?", (status, port_id)))

    def _write(self, change):
        with contextlib.closing(sqlite3.connect(self.db, timeout=30)) as db:
            with db:
                change(db)


def _insert(db, table, row):
    columns = [info[1] for info in db.execute("PRAGMA table_info(%s)" % table)]
    names = [name for name in row if name in columns]
    db.execute("INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(names), ", ".join("?" * len(names))),
               [row[name] for name in names])


# --- stand-ins for a broken provider, and TLS -----------------------------------------


def _listen(scheme):
    """A listening socket on a free loopback port, and its *scheme* URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, "%s://127.0.0.1:%d" % (scheme, sock.getsockname()[1])


def _accept_each(sock, handle):
    """Call *handle* with each connection *sock* accepts, in a daemon thread, until it is closed."""
    def accept():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            handle(conn)

    threading.Thread(target=accept, daemon=True).start()


class SilentServer:
    """Accepts TCP connections on loopback and never answers (a hung provider)."""

    def __init__(self):
        self.sock, self.url = _listen("http")
        self.held = []
        _accept_each(self.sock, self.held.append)

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


def unused_port_url():
    """An http URL on loopback where nothing listens (a stopped provider)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return "http://127.0.0.1:%d" % sock.getsockname()[1]


def make_ca_and_cert(directory):
    """A self-signed CA and a server certificate for 127.0.0.1 it signed (openssl)."""
    ca_key, ca_cert = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    key, csr, cert = (os.path.join(directory, name) for name in ("server.key", "server.csr", "server.pem"))
    ext = os.path.join(directory, "san.ext")
    with open(ext, "w") as stream:
        stream.write("subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n")
    for argv in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_cert,
         "-days", "2", "-subj", "/CN=quantum-vnic test CA"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ):
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return ca_cert, cert, key


class TlsProxy:
    """TLS on loopback in front of an http server: terminates TLS, forwards the bytes."""

    def __init__(self, backend_url, cert, key):
        import ssl
        from urllib.parse import urlsplit

        parts = urlsplit(backend_url)
        self.backend = (parts.hostname, parts.port)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock, self.url = _listen("https")
        _accept_each(self.sock, lambda conn: threading.Thread(target=self._serve, args=(conn,),
                                                              daemon=True).start())

    def _serve(self, conn):
        try:
            client = self.context.wrap_socket(conn, server_side=True)
        except OSError:  # the client refused our certificate: that is a test's point
            conn.close()
            return
        backend = socket.create_connection(self.backend, timeout=30)
        threading.Thread(target=_pipe, args=(backend, client), daemon=True).start()
        _pipe(client, backend)

    def close(self):
        self.sock.close()


def _pipe(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


# --- run inside the venv --------------------------------------------------------------


def _venv_schema(db):
    import sqlalchemy
    from neutron.db.migration.models import head

    engine = sqlalchemy.create_engine("sqlite:///" + db)
    head.get_metadata().create_all(engine)


def _venv_serve(port_file):
    del sys.argv[1:]  # oslo.config parses the command line: leave it nothing to refuse
    from neutron.wsgi.api import application  # monkey-patches for eventlet first

    import eventlet
    import eventlet.wsgi

    sock = eventlet.listen(("127.0.0.1", 0))
    with open(port_file + ".tmp", "w") as stream:
        stream.write(str(sock.getsockname()[1]))
    os.replace(port_file + ".tmp", port_file)
    eventlet.wsgi.server(sock, application, log_output=False)


def _prepare():
    """``python3 tests/neutron_server.py prepare``: make the venv now (./dev test starts it
    in the background, so the install overlaps the suites that run before this one)."""
    try:
        ensure_venv(log=lambda line: print(line, file=sys.stderr))
    except NeutronUnavailable as err:
        sys.exit("neutron_server: %s" % err)


if __name__ == "__main__":
    {"schema": _venv_schema, "serve": _venv_serve, "prepare": _prepare}[sys.argv[1]](*sys.argv[2:])

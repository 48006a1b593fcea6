"""Keystone servers for the authentication tests: a real Keystone (v3) and a v2.0 endpoint.

``RealKeystone`` runs Keystone from PyPI (``KEYSTONE_VERSION``) on loopback: its own
virtualenv, cached in :func:`tests.cache.cache_root` (``$QUANTUM_VNIC_CACHE``, else
``${XDG_CACHE_HOME:-~/.cache}/quantum-vnic``; installed once, with uv when there is one
(:mod:`tests.venvs`), then reused; ``python3 tests/keystone_server.py prepare`` makes it
ahead, as ``./dev test`` does in the background), sqlite, fernet
tokens, the admin user/project/role/region of ``keystone-manage bootstrap``, served by this
file run as a script under the venv's Python (``wsgiref`` with threads, port picked by the
kernel). Dependencies are pinned by ``keystone_constraints.txt`` (what ran here). The
bootstrapped database and keys are made once per venv and copied for each run, so a run
with the venv cached pays only the server's start-up (CI may cache that directory; a fresh
machine builds it in a few minutes, the ``ready`` file in the venv records how long).

``KeystoneV2`` is a small ``http.server`` endpoint that speaks Keystone's v2.0 token API:
Keystone dropped v2.0 (Queens), so no installable Keystone serves it. It answers
``POST /v2.0/tokens`` with the documents Keystone v2.0 issued (``access.token.id``,
``expires``, ``issued_at``, ``tenant``; ``serviceCatalog``, ``user``, ``metadata``) and
its 401/400 error documents, and guards ``GET /v2.0/tenants`` with ``X-Auth-Token`` so
that a revoked token gets a 401.
"""

import datetime
import json
import os
import shutil
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

KEYSTONE_VERSION = "30.0.0"
CONSTRAINTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keystone_constraints.txt")
ADMIN_PASSWORD = "adm1n-Pa55-not-in-logs"
START_TIMEOUT = 120

KEYSTONE_CONF = """\
[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///{dir}/keystone.db
[fernet_tokens]
key_repository = {dir}/fernet-keys
[fernet_receipts]
key_repository = {dir}/fernet-keys
[credential]
key_repository = {dir}/credential-keys
[identity]
# bcrypt's minimum: the tests hash passwords, they do not defend them
password_hash_rounds = 4
[token]
expiration = 3600
"""


class Unavailable(Exception):
    """Keystone cannot run here; ``str()`` says why (the tests skip with it)."""


def _run(argv, log, **kwargs):
    with open(log, "ab") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    if done.returncode != 0:
        with open(log, "rb") as stream:
            tail = stream.read().decode("utf-8", "replace").strip().splitlines()[-3:]
        raise Unavailable("%s failed (exit %d): %s" % (" ".join(argv[:3]), done.returncode, " | ".join(tail)))


def prepare_venv():
    """The cached venv with Keystone and a bootstrapped state template: (venv, template, seconds
    spent installing now, 0 when cached). Serialized by a lock, so parallel runs install once."""
    import fcntl

    if sys.version_info < (3, 11):
        raise Unavailable("Keystone %s needs Python 3.11+, this is %s" % (KEYSTONE_VERSION, sys.version.split()[0]))
    import hashlib

    root = cache.cache_root()
    os.makedirs(root, exist_ok=True)
    with open(CONSTRAINTS, "rb") as stream:
        pins = hashlib.sha256(stream.read()).hexdigest()[:8]
    venv = os.path.join(root, "keystone-%s-py%d.%d-%s" % ((KEYSTONE_VERSION,) + sys.version_info[:2] + (pins,)))
    template = os.path.join(venv, "state-template")
    ready = os.path.join(venv, "ready")
    with open(venv + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(ready):
            return venv, template, 0.0
        started = time.monotonic()
        shutil.rmtree(venv, ignore_errors=True)
        log = venv + ".log"
        if os.path.exists(log):
            os.unlink(log)
        try:
            _run([sys.executable, "-m", "venv", venv], log)
            tool = venvs.install(venv, ["keystone==%s" % KEYSTONE_VERSION], CONSTRAINTS, log=log, timeout=900)
            installed = time.monotonic()
            _bootstrap(venv, template, log)
        except (Unavailable, venvs.Failed, subprocess.TimeoutExpired, OSError) as err:
            shutil.rmtree(venv, ignore_errors=True)
            raise Unavailable("installing Keystone %s in a venv failed: %s (log: %s)" % (KEYSTONE_VERSION, err, log))
        with open(ready, "w") as stream:
            stream.write("%s install %.1f s, bootstrap %.1f s\n" % (tool, installed - started,
                                                                     time.monotonic() - installed))
        return venv, template, time.monotonic() - started


def _write_conf(directory):
    path = os.path.join(directory, "keystone.conf")
    with open(path, "w") as stream:
        stream.write(KEYSTONE_CONF.format(dir=directory))
    return path


def _bootstrap(venv, template, log):
    os.makedirs(template, mode=0o700)
    conf = _write_conf(template)
    manage = [os.path.join(venv, "bin", "keystone-manage"), "--config-file", conf]
    user = ["--keystone-user", "root", "--keystone-group", "root"]
    _run(manage + ["db_sync"], log)
    _run(manage + ["fernet_setup"] + user, log)
    _run(manage + ["credential_setup"] + user, log)
    _run(manage + ["bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
                   "--bootstrap-region-id", "RegionOne",
                   "--bootstrap-public-url", "http://127.0.0.1:5000/v3"], log)


class RealKeystone:
    """A running Keystone: ``url`` (unversioned), ``admin_token()``, ``request()``; ``stop()``."""

    def __init__(self, workdir):
        self.venv, template, self.install_seconds = prepare_venv()
        self.workdir = workdir
        for name in ("keystone.db", "fernet-keys", "credential-keys"):
            source = os.path.join(template, name)
            copy = shutil.copytree if os.path.isdir(source) else shutil.copy2
            copy(source, os.path.join(workdir, name))
        os.chmod(workdir, 0o700)
        conf = _write_conf(workdir)
        self.log = os.path.join(workdir, "keystone.log")
        env = dict(os.environ, OS_KEYSTONE_CONFIG_FILES=conf)
        env.pop("PYTHONPATH", None)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [os.path.join(self.venv, "bin", "python"), os.path.abspath(__file__), "serve"],
                stdout=subprocess.PIPE, stderr=log, env=env, cwd=workdir)
        self.port = self._read_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.version = KEYSTONE_VERSION

    def _read_port(self):
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if selector.select(START_TIMEOUT):
                line = self.process.stdout.readline().strip()
                if line.isdigit():
                    return int(line)
        code = self.process.poll()
        self.stop()
        with open(self.log, "rb") as stream:
            tail = stream.read().decode("utf-8", "replace").strip().splitlines()[-3:]
        what = "exited (%d)" % code if code is not None else "did not start within %d s" % START_TIMEOUT
        raise Unavailable("Keystone %s: %s" % (what, " | ".join(tail)))

    def stop(self):
        from tests import child_process

        child_process.stop(self.process)
        self.process.stdout.close()

    def request(self, method, path, token=None, body=None, expect=(200, 201, 204), **headers):
        import requests

        if token:
            headers["X-Auth-Token"] = token
        response = requests.request(method, self.url + path, json=body, headers=headers, timeout=30)
        if expect and response.status_code not in expect:
            raise AssertionError("%s %s: HTTP %d %s" % (method, path, response.status_code, response.text[:300]))
        return response

    def token(self, username, password, user_domain="Default", project=None, project_domain="Default",
              domain=None):
        scope = {"project": {"name": project, "domain": {"name": project_domain}}} if project else \
            {"domain": {"name": domain}}
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": username, "domain": {"name": user_domain}, "password": password}}}, "scope": scope}}
        return self.request("POST", "/v3/auth/tokens", body=body).headers["X-Subject-Token"]

    def admin_token(self):
        return self.token("admin", ADMIN_PASSWORD, project="admin")

    def revoke(self, token):
        self.request("DELETE", "/v3/auth/tokens", token=self.admin_token(), **{"X-Subject-Token": token})

    def create(self, kind, body, token):
        """POST /v3/{kind}s; the new object's id."""
        return self.request("POST", "/v3/%ss" % kind, token=token, body={kind: body}).json()[kind]["id"]

    def role_id(self, name, token):
        return self.request("GET", "/v3/roles?name=%s" % name, token=token).json()["roles"][0]["id"]


# --- the v2.0 endpoint ---------------------------------------------------------------


def _iso(moment, zulu=True):
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + "Z" if zulu else text + moment.strftime(".%f")


class KeystoneV2:
    """Keystone's v2.0 token API on loopback, in a thread. *users*: {(username, tenant): password}
    where tenant is a name or an id. ``requests`` lists the JSON bodies of token requests;
    ``fail_with`` holds status codes to answer first; ``delay`` slows token issue down."""

    def __init__(self, users, lifetime=3600, tls=None):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.users = users
        self.lifetime = lifetime
        self.requests = []
        self.tokens = {}
        self.fail_with = []
        self.delay = 0.0
        self.document = None
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                server._token_request(self, self.rfile.read(length))

            def do_GET(self):
                server._tenants(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.httpd.server_port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def revoke(self, token):
        self.tokens.pop(token, None)

    def _send(self, handler, status, doc):
        data = json.dumps(doc).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Vary", "X-Auth-Token")
        handler.end_headers()
        handler.wfile.write(data)

    def _error(self, handler, status, title, message):
        self._send(handler, status, {"error": {"message": message, "code": status, "title": title}})

    def _token_request(self, handler, data):
        if handler.path != "/v2.0/tokens":
            return self._error(handler, 404, "Not Found", "The resource could not be found.")
        with self.lock:
            try:
                body = json.loads(data)
            except ValueError:
                body = None
            self.requests.append(body)
            status = self.fail_with.pop(0) if self.fail_with else None
        time.sleep(self.delay)
        if status:
            return self._error(handler, status, "Service Unavailable", "The service is unavailable.")
        if self.document is not None:
            return self._send(handler, 200, self.document)
        try:
            auth = body["auth"]
            creds = auth["passwordCredentials"]
            username, password = creds["username"], creds["password"]
            tenant = auth.get("tenantName") or auth["tenantId"]
        except (TypeError, KeyError):
            return self._error(handler, 400, "Bad Request", "Expecting to find username or userId in "
                               "passwordCredentials - the server could not comply with the request since it "
                               "is either malformed or otherwise incorrect. The client is assumed to be in error.")
        if self.users.get((username, tenant)) != password:
            return self._error(handler, 401, "Unauthorized",
                               "The request you have made requires authentication.")
        self._send(handler, 200, self._access(username, tenant))

    def _access(self, username, tenant):
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        token = uuid.uuid4().hex
        with self.lock:
            self.tokens[token] = username
        tenant_id = tenant if len(tenant) == 32 else uuid.uuid5(uuid.NAMESPACE_DNS, tenant).hex
        user_id = uuid.uuid5(uuid.NAMESPACE_DNS, username).hex
        return {"access": {
            "token": {
                "issued_at": _iso(now, zulu=False),
                "expires": _iso(now + datetime.timedelta(seconds=self.lifetime)),
                "id": token,
                "tenant": {"description": None, "enabled": True, "id": tenant_id, "name": tenant},
                "audit_ids": [uuid.uuid4().hex[:22]],
            },
            "serviceCatalog": [{
                "endpoints": [{"adminURL": "http://127.0.0.1:9696", "region": "RegionOne",
                               "internalURL": "http://127.0.0.1:9696", "id": uuid.uuid4().hex,
                               "publicURL": "http://127.0.0.1:9696"}],
                "endpoints_links": [], "type": "network", "name": "quantum"}],
            "user": {"username": username, "roles_links": [], "id": user_id,
                     "roles": [{"name": "admin"}], "name": username},
            "metadata": {"is_admin": 0, "roles": [uuid.uuid4().hex]},
        }}

    def _tenants(self, handler):
        if handler.path != "/v2.0/tenants":
            return self._error(handler, 404, "Not Found", "The resource could not be found.")
        if handler.headers.get("X-Auth-Token") not in self.tokens:
            return self._error(handler, 401, "Unauthorized", "The request you have made requires authentication.")
        self._send(handler, 200, {"tenants_links": [], "tenants": []})


def _serve():
    """Run under the Keystone venv's Python: serve Keystone, print the port, run until killed."""
    import signal
    import socketserver
    from wsgiref import simple_server

    from keystone.server.wsgi import initialize_public_application

    class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
        daemon_threads = True

    class Handler(simple_server.WSGIRequestHandler):
        def log_message(self, *args):
            pass

    sys.argv[1:] = []  # oslo.config parses the command line: "serve" is ours
    application = initialize_public_application()
    httpd = simple_server.make_server("127.0.0.1", 0, application, server_class=Server, handler_class=Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(httpd.server_port, flush=True)
    httpd.serve_forever()


def _prepare():
    """``python3 tests/keystone_server.py prepare``: make the venv and its bootstrapped state
    now (./dev test starts it in the background, beside the suites that do not need it)."""
    try:
        venv, _, seconds = prepare_venv()
    except Unavailable as err:
        sys.exit("keystone_server: %s" % err)
    print("keystone_server: %s %s" % (venv, "ready in %.0f s" % seconds if seconds else "was ready"), file=sys.stderr)


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    _serve()
elif __name__ == "__main__" and sys.argv[1:] == ["prepare"]:
    _prepare()

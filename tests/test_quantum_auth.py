"""Authentication of the Quantum API client (vnic_drivers/quantum/auth.py).

Keystone v3 runs for real (PyPI Keystone in its own cached venv on loopback, see
tests/keystone_server.py; those tests are marked ``slow``). Keystone v2.0 is gone from
every installable Keystone, so v2.0 is tested against ``KeystoneV2``, a loopback HTTP
endpoint that issues Keystone v2.0 token documents; the cache, lock, permission and
error paths, which do not depend on the Keystone version, are tested against it too
because it can count requests, fail on demand and issue short-lived tokens.
"""

import json
import io
import os
import re
import socket
import stat
import subprocess
import sys
import time

import pytest

from tests import as_vdsm
from tests.keystone_server import ADMIN_PASSWORD, KeystoneV2, RealKeystone, Unavailable
from vnic_drivers import config as config_module
from vnic_drivers import log
from vnic_drivers.errors import HostError, InputError
from vnic_drivers.quantum import auth

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "v2-Pa55word-never-logged"
TENANT = "services"
NOBODY = 65534


def write_private(path, text, mode=0o600):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(text)
    os.chmod(str(path), mode)
    return str(path)


def credentials_text(url, **options):
    lines = ["[keystone]", "auth_url = %s" % url] + ["%s = %s" % item for item in options.items()]
    return "\n".join(lines) + "\n"


def make_config(tmp_path, auth_mode, credentials=None, token_cache=True):
    """A real config file with a [quantum] section, loaded the way the hooks load it."""
    lines = ["[quantum]", "url = http://127.0.0.1:9696", "auth = %s" % auth_mode]
    if credentials is not None:
        lines.append("credentials = %s" % write_private(tmp_path / "quantum_vnic.credentials", credentials))
    lines.append("token_cache = %s" % (tmp_path / "token" if token_cache else ""))
    path = tmp_path / "quantum_vnic.conf"
    path.write_text("\n".join(lines) + "\n")
    return config_module.load(str(path))


def new_session(timeout=(2.0, 5.0), verify=True):
    """What the API client hands to ``headers()``."""
    import requests

    session = requests.Session()
    session.verify = verify
    session.quantum_timeout = timeout
    return session


class Captured:
    """What the package logger (vnic_drivers.log.LOG) wrote, at INFO unless set_level()."""

    def __init__(self):
        self.stream = io.StringIO()
        self.set_level("INFO")

    def set_level(self, level):
        log.setup("test", level=level, stream=self.stream)

    @property
    def text(self):
        return self.stream.getvalue()


@pytest.fixture
def caplog():
    """The package logger's lines (it does not go through ``logging``)."""
    captured = Captured()
    try:
        yield captured
    finally:
        log.setup("test")


@pytest.fixture
def v2():
    server = KeystoneV2({("quantum", TENANT): PASSWORD})
    yield server
    server.stop()


def v2_config(tmp_path, server, **options):
    options = options or {"username": "quantum", "password": PASSWORD, "tenant_name": TENANT}
    return make_config(tmp_path, "keystone-v2", credentials_text(server.url, **options))


def tenants_status(server, headers):
    import requests

    return requests.get(server.url + "/v2.0/tenants", headers=headers, timeout=5).status_code


def assert_no_secret(*texts, secrets=(PASSWORD,)):
    for text in texts:
        for secret in secrets:
            assert secret not in text


# --- noauth and the config --------------------------------------------------------------


def test_noauth_sends_no_header_and_reads_no_credentials(tmp_path):
    config = make_config(tmp_path, "noauth")  # credentials at the default path, which is absent
    chosen = auth.for_config(config)
    assert chosen.headers(new_session()) == {}
    assert chosen.headers(new_session(), refresh=True) == {}
    assert repr(chosen) == "NoAuth()"


def test_config_defaults_and_bad_auth_mode(tmp_path):
    quantum = config_module.defaults().as_dict()["quantum"]
    assert quantum["auth"] == "noauth" and quantum["url"] is None
    assert quantum["token_cache"] == "/run/vdsm/quantum_vnic.token"
    (tmp_path / "c.conf").write_text("[quantum]\nauth = keystone\n")
    with pytest.raises(InputError, match=r"\[quantum\] auth='keystone': expected one of noauth, keystone-v2"):
        config_module.load(str(tmp_path / "c.conf"))


# --- the credentials file ---------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o660, 0o610])
def test_credentials_open_to_group_or_others_are_refused(tmp_path, mode):
    config = make_config(tmp_path, "keystone-v2", credentials_text(
        "http://127.0.0.1:1", username="u", password=PASSWORD, tenant_name="t"))
    os.chmod(config.get("quantum", "credentials"), mode)
    with pytest.raises(InputError) as err:
        auth.for_config(config)
    message = str(err.value)
    assert "open to group or others (mode %04o)" % mode in message
    assert "chown vdsm: " in message and "chmod 0600" in message
    assert "\n" not in message
    assert_no_secret(message)


def test_credentials_owned_by_another_user_are_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file to another user")
    config = make_config(tmp_path, "keystone-v2", credentials_text(
        "http://127.0.0.1:1", username="u", password=PASSWORD, tenant_name="t"))
    os.chown(config.get("quantum", "credentials"), NOBODY, NOBODY)
    with pytest.raises(InputError, match="is owned by " + re.escape(auth._user_name(NOBODY))) as err:
        auth.for_config(config)
    assert_no_secret(str(err.value))


def test_credentials_must_be_a_regular_file_that_exists(tmp_path):
    config = make_config(tmp_path, "keystone-v2", "")
    path = config.get("quantum", "credentials")
    os.unlink(path)
    with pytest.raises(InputError, match="does not exist; create it .* or set \\[quantum\\] auth = noauth"):
        auth.for_config(config)
    os.mkfifo(path, 0o600)  # must not block the hook
    with pytest.raises(InputError, match="is not a regular file"):
        auth.for_config(config)


HOOK_SCRIPT = """
import json, sys, requests
from vnic_drivers import config
from vnic_drivers.errors import HookError
from vnic_drivers.quantum import auth
session = requests.Session()
session.quantum_timeout = (2, 5)
try:
    print(json.dumps({"token": auth.for_config(config.load(sys.argv[1])).headers(session)["X-Auth-Token"]}))
except HookError as err:
    print(json.dumps({"error": "%s: %s" % (type(err).__name__, err)}))
"""


ROOT_SCRIPT = ("import sys; from vnic_drivers import config; from vnic_drivers.quantum import auth; "
               "print(auth.for_config(config.load(sys.argv[1])).credentials.get('username'))")


def test_credentials_for_the_hook_user_vdsm(v2):
    """Hooks run as vdsm: a root-owned 0600 file is unreadable to them,
    which they say with the fix; a vdsm-owned 0600 file works, and so does the cache in a
    directory of vdsm's (as /run/vdsm). Run as a real user vdsm (tests/as_vdsm.py)."""
    reason = as_vdsm.required_tools()
    if reason:
        pytest.skip(reason)
    with as_vdsm.workdir() as workdir:
        vdsm = as_vdsm.vdsm_uid()
        run_dir = os.path.join(workdir, "run")
        os.mkdir(run_dir, 0o755)
        os.chown(run_dir, vdsm, vdsm)
        credentials = write_private(os.path.join(workdir, "quantum_vnic.credentials"), credentials_text(
            v2.url, username="quantum", password=PASSWORD, tenant_name=TENANT))
        conf = os.path.join(workdir, "quantum_vnic.conf")
        with open(conf, "w") as stream:
            stream.write("[quantum]\nurl = http://127.0.0.1:9696\nauth = keystone-v2\ncredentials = %s\n"
                         "token_cache = %s/token\n" % (credentials, run_dir))
        script = os.path.join(workdir, "hook.py")
        with open(script, "w") as stream:
            stream.write(HOOK_SCRIPT)

        def hook():
            done = as_vdsm.run_as_vdsm(workdir, [sys.executable, script, conf],
                                       env=dict(os.environ, PYTHONPATH=REPO))
            if done.returncode == as_vdsm.CANNOT:
                pytest.skip(done.stderr.strip())
            assert done.returncode == 0, done.stderr
            assert_no_secret(done.stderr)
            return json.loads(done.stdout)

        assert hook() == {"error": "InputError: credentials file %s cannot be read by vdsm (uid %d) (Permission denied); "
                                   "chown vdsm: %s && chmod 0600 %s" % (credentials, vdsm, credentials, credentials)}
        os.chown(credentials, vdsm, vdsm)
        token = hook()["token"]
        assert token in v2.tokens
        status = os.stat(os.path.join(run_dir, "token"))
        assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (vdsm, 0o600)
        assert hook() == {"token": token} and len(v2.requests) == 1
        # root (doctor, where vdsm exists) may read the file made for vdsm.
        done = as_vdsm.run_as_vdsm(workdir, [sys.executable, "-c", ROOT_SCRIPT, conf], as_root=True,
                                   env=dict(os.environ, PYTHONPATH=REPO))
        assert done.stdout.strip() == "quantum", done.stderr


@pytest.mark.parametrize("mode, text, expected", [
    ("keystone-v2", "password %s\n" % PASSWORD, r"not a valid ini file \(line 1\)"),
    ("keystone-v2", "[keystone]\nauth_url = http://k:5000\npassword %s\n" % PASSWORD,
     r"not a valid ini file \(line 3\)"),
    ("keystone-v2", "[keystone]\npassword = %s\npassword = %s\n" % (PASSWORD, PASSWORD),
     r"not a valid ini file \(line 3\)"),
    ("keystone-v2", "[auth]\npassword = %s\n" % PASSWORD, r"expected exactly one section, \[keystone\]"),
    ("keystone-v2", "[keystone]\npasword = %s\n" % PASSWORD, "unknown option 'pasword'"),
    ("keystone-v2", "[keystone]\nauth_url = http://k:5000\nusername = u\npassword = %s\n" % PASSWORD,
     "needs tenant_name or tenant_id"),
    ("keystone-v2", "[keystone]\nauth_url = http://k:5000\nuser_domain_name = D\n",
     "user_domain_name is not used by \\[quantum\\] auth = keystone-v2"),
    ("keystone-v3", "[keystone]\nauth_url = http://k:5000\nusername = u\n", "needs password"),
    ("keystone-v3", "[keystone]\nauth_url = http://u:%s@k:5000\nusername = u\npassword = x\n" % PASSWORD,
     "no user:password@"),
    ("keystone-v3", "[keystone]\nauth_url = http://k:5000\nusername = u\npassword = %s\n" % PASSWORD,
     "needs a scope: project_name, project_id, domain_name or domain_id"),
    ("keystone-v3", "[keystone]\nauth_url = http://k\nusername = u\npassword = p\nproject_id = a\ndomain_id = b\n",
     "give only one of project_id, domain_id"),
    ("keystone-v3", "[keystone]\nauth_url = http://k\nuser_id = u\nuser_domain_name = D\npassword = p\n"
     "project_id = a\n", "user_domain_\\* goes with username"),
    ("keystone-v3", b"[keystone]\npassword = \xff\n", "is not UTF-8 text"),
])
def test_bad_credentials_file_is_one_line_without_the_password(tmp_path, mode, text, expected):
    path = tmp_path / "quantum_vnic.credentials"
    config = make_config(tmp_path, mode, text if isinstance(text, str) else "")
    if isinstance(text, bytes):
        path.write_bytes(text)
    with pytest.raises(InputError, match=expected) as err:
        auth.for_config(config)
    message = str(err.value)
    assert message.startswith("credentials file %s" % path) and "\n" not in message
    assert_no_secret(message)


def test_v3_credentials_default_to_the_default_domain_and_version_the_url(tmp_path):
    config = make_config(tmp_path, "keystone-v3", credentials_text(
        "https://keystone.example:5000/", username="quantum", password=PASSWORD, project_name="services"))
    chosen = auth.for_config(config)
    text = repr(chosen)
    assert text == ("KeystoneAuth(Credentials(keystone-v3, https://keystone.example:5000/v3, user quantum "
                    "(domain Default), project services (domain Default), password=***), cache=TokenCache(%r))"
                    % str(tmp_path / "token"))
    body = auth._v3_request(chosen.credentials)
    assert body["auth"]["identity"]["password"]["user"] == {
        "name": "quantum", "domain": {"name": "Default"}, "password": PASSWORD}
    assert body["auth"]["scope"] == {"project": {"name": "services", "domain": {"name": "Default"}}}


def test_packaged_example_is_a_valid_v3_file(tmp_path):
    with open(os.path.join(REPO, "packaging", "quantum_vnic.credentials")) as stream:
        example = stream.read()
    config = make_config(tmp_path, "keystone-v3", example)
    assert repr(auth.for_config(config).credentials) == (
        "Credentials(keystone-v3, https://keystone.example.com:5000/v3, user quantum-vnic (domain Default), "
        "project service (domain Default), password=***)")
    v2_example = "\n".join(line for line in example.splitlines() if "domain" not in line or line.startswith("#"))
    config = make_config(tmp_path, "keystone-v2", v2_example.replace("project_name", "tenant_name"))
    assert auth.for_config(config).credentials.get("tenant_name") == "service"


# --- Keystone v2.0 -----------------------------------------------------------------------


def test_v2_token_is_fetched_once_and_shared_through_a_0600_cache(tmp_path, v2):
    config = v2_config(tmp_path, v2)
    old_umask = os.umask(0)  # the cache must be private whatever the umask
    try:
        headers = auth.for_config(config).headers(new_session())
    finally:
        os.umask(old_umask)
    assert v2.requests == [{"auth": {"passwordCredentials": {"username": "quantum", "password": PASSWORD},
                                     "tenantName": TENANT}}]
    token = headers["X-Auth-Token"]
    assert token in v2.tokens and tenants_status(v2, headers) == 200
    cache = tmp_path / "token"
    status = os.stat(str(cache))
    assert stat.S_IMODE(status.st_mode) == 0o600 and status.st_uid == os.geteuid()
    assert sorted(os.listdir(str(tmp_path))) == ["quantum_vnic.conf", "quantum_vnic.credentials", "token",
                                                  "token.lock"]
    assert PASSWORD not in cache.read_text()
    # A second hook process: the cached token, no request to Keystone.
    assert auth.for_config(config).headers(new_session()) == headers
    assert len(v2.requests) == 1


def test_v2_tenant_id(tmp_path, v2):
    tenant_id = "fc394f2ab2df4114bde39905f800dc57"
    v2.users[("quantum", tenant_id)] = PASSWORD
    config = v2_config(tmp_path, v2, username="quantum", password=PASSWORD, tenant_id=tenant_id)
    auth.for_config(config).headers(new_session())
    assert v2.requests[0]["auth"]["tenantId"] == tenant_id and "tenantName" not in v2.requests[0]["auth"]


def test_v2_refresh_after_a_401_fetches_a_new_token_once(tmp_path, v2):
    config = v2_config(tmp_path, v2)
    first = auth.for_config(config)
    headers = first.headers(new_session())
    v2.revoke(headers["X-Auth-Token"])
    assert tenants_status(v2, headers) == 401
    # Another hook still holding the revoked token refreshes a moment later ...
    second = auth.for_config(config)
    assert second.headers(new_session()) == headers
    renewed = first.headers(new_session(), refresh=True)
    assert renewed != headers and tenants_status(v2, renewed) == 200
    assert len(v2.requests) == 2
    # ... and takes the token the first one stored, without asking Keystone again.
    assert second.headers(new_session(), refresh=True) == renewed
    assert len(v2.requests) == 2
    assert auth.for_config(config).headers(new_session()) == renewed


def test_refresh_that_fails_leaves_no_rejected_token_in_the_cache(tmp_path, v2):
    config = v2_config(tmp_path, v2)
    chosen = auth.for_config(config)
    chosen.headers(new_session())
    v2.fail_with = [500]
    with pytest.raises(HostError, match="HTTP 500"):
        chosen.headers(new_session(), refresh=True)
    assert not os.path.exists(str(tmp_path / "token"))
    assert auth.for_config(config).headers(new_session())["X-Auth-Token"] in v2.tokens
    assert len(v2.requests) == 3


def test_v2_refresh_without_a_cache(tmp_path, v2):
    config = make_config(tmp_path, "keystone-v2", credentials_text(
        v2.url, username="quantum", password=PASSWORD, tenant_name=TENANT), token_cache=False)
    chosen = auth.for_config(config)
    assert chosen.cache is None
    headers = chosen.headers(new_session())
    assert chosen.headers(new_session()) == headers  # kept in memory
    assert chosen.headers(new_session(), refresh=True) != headers
    assert len(v2.requests) == 2 and sorted(os.listdir(str(tmp_path))) == ["quantum_vnic.conf",
                                                                             "quantum_vnic.credentials"]


def test_expiry_margin(tmp_path, v2):
    """A token is not handed out within EXPIRY_MARGIN seconds of its expiry (the clock is
    the test's seam: Keystone issues hour-long tokens)."""
    config = v2_config(tmp_path, v2)
    auth.for_config(config).headers(new_session())
    credentials = auth.for_config(config).credentials
    cache = auth.TokenCache(str(tmp_path / "token"), credentials.fingerprint())

    def hook_at(seconds_later):
        later = auth.KeystoneAuth(credentials, cache, clock=lambda: time.time() + seconds_later)
        return later.headers(new_session())

    cached = cache.load().value
    assert hook_at(3600 - auth.EXPIRY_MARGIN - 5)["X-Auth-Token"] == cached
    assert len(v2.requests) == 1
    assert hook_at(3600 - auth.EXPIRY_MARGIN + 5)["X-Auth-Token"] != cached
    assert len(v2.requests) == 2


def test_short_lived_tokens_are_shared_for_half_their_life(tmp_path):
    server = KeystoneV2({("quantum", TENANT): PASSWORD}, lifetime=60)
    try:
        config = v2_config(tmp_path, server)
        token = auth.for_config(config).headers(new_session())
        assert auth.for_config(config).headers(new_session()) == token
        credentials = auth.for_config(config).credentials
        late = auth.KeystoneAuth(credentials, auth.TokenCache(str(tmp_path / "token"), credentials.fingerprint()),
                                 clock=lambda: time.time() + 31)
        assert late.headers(new_session()) != token
    finally:
        server.stop()


@pytest.mark.parametrize("damage", ["corrupt", "open", "foreign", "symlink", "other-credentials", "directory"])
def test_untrusted_cache_is_ignored_and_replaced(tmp_path, v2, damage, caplog):
    config = v2_config(tmp_path, v2)
    planted = auth.for_config(config).headers(new_session())["X-Auth-Token"]
    cache = tmp_path / "token"
    if damage == "corrupt":
        cache.write_text('{"version": 1, "for": "')
    elif damage == "open":
        os.chmod(str(cache), 0o644)
    elif damage == "foreign":
        if os.geteuid() != 0:
            pytest.skip("needs root to give the cache to another user")
        os.chown(str(cache), NOBODY, NOBODY)
    elif damage == "symlink":
        os.rename(str(cache), str(tmp_path / "elsewhere"))
        os.symlink(str(tmp_path / "elsewhere"), str(cache))
    elif damage == "other-credentials":
        doc = json.loads(cache.read_text())
        doc["for"] = "0" * 64
        cache.write_text(json.dumps(doc))
    elif damage == "directory":
        cache.unlink()
        cache.mkdir()
    caplog.set_level("DEBUG")
    token = auth.for_config(config).headers(new_session())["X-Auth-Token"]
    assert token != planted and len(v2.requests) == 2
    if damage == "directory":  # cannot be replaced: one warning, the token still works
        assert "not written (Is a directory)" in caplog.text
        return
    status = os.lstat(str(cache))
    assert stat.S_ISREG(status.st_mode) and stat.S_IMODE(status.st_mode) == 0o600
    assert status.st_uid == os.geteuid()
    assert auth.for_config(config).headers(new_session())["X-Auth-Token"] == token
    assert_no_secret(caplog.text, secrets=(PASSWORD, planted, token))


def test_cache_that_cannot_be_written_is_one_warning(tmp_path, v2, caplog):
    config = make_config(tmp_path, "keystone-v2", credentials_text(
        v2.url, username="quantum", password=PASSWORD, tenant_name=TENANT))
    chosen = auth.for_config(config)
    chosen.cache.path = str(tmp_path / "missing-dir" / "token")
    headers = chosen.headers(new_session())
    assert tenants_status(v2, headers) == 200
    assert "token cache %s not written (No such file or directory)" % chosen.cache.path in caplog.text


def test_concurrent_hooks_ask_keystone_once(tmp_path, v2):
    """Eight hook processes start at once with no cache: the lock makes one of them fetch."""
    config = v2_config(tmp_path, v2)
    v2.delay = 0.5  # a slow Keystone: the others must wait on the lock, not ask too
    code = ("import sys, requests; from vnic_drivers import config; from vnic_drivers.quantum import auth\n"
            "s = requests.Session(); s.quantum_timeout = (2, 5)\n"
            "print(auth.for_config(config.load(sys.argv[1])).headers(s)['X-Auth-Token'])")
    processes = [subprocess.Popen([sys.executable, "-c", code, config.path], cwd=REPO, stdout=subprocess.PIPE,
                                  env=dict(os.environ, PYTHONPATH=REPO)) for _ in range(8)]
    tokens = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert len(tokens) == 1 and len(v2.requests) == 1


def test_wrong_password_is_one_line_naming_the_fix(tmp_path, v2, caplog):
    caplog.set_level("DEBUG")
    wrong = "Wr0ng-" + PASSWORD
    config = v2_config(tmp_path, v2, username="quantum", password=wrong, tenant_name=TENANT)
    with pytest.raises(HostError) as err:
        auth.for_config(config).headers(new_session())
    assert str(err.value) == (
        "Keystone at %s/v2.0/tokens rejected the credentials of user quantum, project %s (HTTP 401: The "
        "request you have made requires authentication.); fix the user, password, project or domains in %s"
        % (v2.url, TENANT, config.get("quantum", "credentials")))
    assert not os.path.exists(str(tmp_path / "token"))
    assert_no_secret(str(err.value), caplog.text, secrets=(wrong,))


def test_keystone_errors_are_retried_once_when_transient(tmp_path, v2):
    config = v2_config(tmp_path, v2)
    v2.fail_with = [503]
    assert tenants_status(v2, auth.for_config(config).headers(new_session())) == 200
    assert len(v2.requests) == 2
    (tmp_path / "token").unlink()
    v2.fail_with = [500]
    with pytest.raises(HostError, match=r"Keystone at .* failed \(HTTP 500: The service is unavailable.\); "
                                        r"see Keystone's log"):
        auth.for_config(config).headers(new_session())
    assert len(v2.requests) == 3
    v2.fail_with = [503, 503]
    with pytest.raises(HostError, match=r"HTTP 503"):
        auth.for_config(config).headers(new_session())
    assert len(v2.requests) == 5


def test_answer_without_a_token(tmp_path, v2):
    v2.document = {"access": {"user": {"name": "quantum"}}}
    config = v2_config(tmp_path, v2)
    with pytest.raises(HostError, match=r"answered HTTP 200 without a keystone-v2 token; is auth_url in \S+ a "
                                        r"Keystone v2 endpoint\?"):
        auth.for_config(config).headers(new_session())
    v2.document = {"access": {"token": {"id": "bad token\r\nX-Injected: 1", "expires": "2099-01-01T00:00:00Z"}}}
    with pytest.raises(HostError, match="without a keystone-v2 token"):
        auth.for_config(config).headers(new_session())


def test_keystone_down_or_silent_is_a_bounded_error(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d" % closed.getsockname()[1]
    config = make_config(tmp_path, "keystone-v2", credentials_text(
        url, username="quantum", password=PASSWORD, tenant_name=TENANT))
    with pytest.raises(HostError) as err:
        auth.for_config(config).headers(new_session())
    assert str(err.value) == ("Keystone at %s/v2.0/tokens is unreachable (Connection refused); check auth_url in "
                              "%s and that Keystone is up" % (url, config.get("quantum", "credentials")))
    with socket.socket() as silent:  # accepts (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = "http://127.0.0.1:%d" % silent.getsockname()[1]
        (tmp_path / "quantum_vnic.credentials").unlink()
        config = make_config(tmp_path, "keystone-v2", credentials_text(
            url, username="quantum", password=PASSWORD, tenant_name=TENANT))
        started = time.monotonic()
        with pytest.raises(HostError, match=r"did not answer within 0.5 s; check that Keystone is up, or raise "
                                            r"\[quantum\] connect_timeout/read_timeout"):
            auth.for_config(config).headers(new_session(timeout=(0.5, 0.5)))
        assert time.monotonic() - started < 10


def test_tls_keystone_is_verified_with_the_sessions_ca(tmp_path):
    """The session's ``verify`` (the client sets it from [quantum] ca_file) applies to Keystone."""
    import ssl

    ca_key, ca_cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    key, csr, cert = tmp_path / "k.key", tmp_path / "k.csr", tmp_path / "k.pem"
    openssl = ["openssl"]
    run = lambda *args: subprocess.run(openssl + list(args), check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_cert),
        "-days", "2", "-subj", "/CN=quantum-vnic test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    extensions = tmp_path / "ext.cnf"
    extensions.write_text("subjectAltName = IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(extensions))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server = KeystoneV2({("quantum", TENANT): PASSWORD}, tls=context)
    try:
        config = v2_config(tmp_path, server)
        with pytest.raises(HostError, match=r"Keystone at https://127.0.0.1:\d+/v2.0/tokens: TLS verification "
                                            r"failed; set \[quantum\] ca_file to the CA bundle"):
            auth.for_config(config).headers(new_session())
        assert server.requests == []
        headers = auth.for_config(config).headers(new_session(verify=str(ca_cert)))
        assert headers["X-Auth-Token"] in server.tokens
    finally:
        server.stop()


def test_no_secret_in_repr_or_log(tmp_path, v2, caplog):
    caplog.set_level("DEBUG")
    config = v2_config(tmp_path, v2)
    chosen = auth.for_config(config)
    token = chosen.headers(new_session())["X-Auth-Token"]
    chosen.headers(new_session(), refresh=True)
    texts = [repr(chosen), repr(chosen.credentials), repr(chosen.cache), repr(chosen._token), caplog.text]
    assert re.search(r"obtained, valid 3(599|600) s", caplog.text)  # v2.0's expires has no fraction
    assert_no_secret(*texts, secrets=(PASSWORD, token, chosen._token.value))


def test_requests_is_imported_only_to_fetch_a_token(tmp_path, v2):
    config = v2_config(tmp_path, v2)
    auth.for_config(config).headers(new_session())
    code = ("import sys; from vnic_drivers import config; from vnic_drivers.quantum import auth\n"
            "class Session: quantum_timeout = (1, 1)\n"
            "print(auth.for_config(config.load(sys.argv[1])).headers(Session())['X-Auth-Token'] != '',"
            " 'requests' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, config.path], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO), timeout=60)
    assert done.stdout.split() == ["True", "False"], done.stderr


# --- Keystone v3: a real Keystone ---------------------------------------------------------


@pytest.fixture(scope="module")
def keystone(tmp_path_factory):
    try:
        server = RealKeystone(str(tmp_path_factory.mktemp("keystone")))
    except Unavailable as err:
        pytest.skip("real Keystone cannot run here: %s" % err)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ovirt_user(keystone):
    """A user and project in their own domain, as an oVirt site would create for the hooks,
    with a role on the project and on the domain."""
    admin = keystone.admin_token()
    domain = keystone.create("domain", {"name": "ovirt"}, admin)
    project = keystone.create("project", {"name": "networking", "domain_id": domain}, admin)
    user = keystone.create("user", {"name": "quantum-vnic", "domain_id": domain,
                                    "password": "v3-Pa55word-never-logged"}, admin)
    member = keystone.role_id("member", admin)
    keystone.request("PUT", "/v3/projects/%s/users/%s/roles/%s" % (project, user, member), token=admin)
    keystone.request("PUT", "/v3/domains/%s/users/%s/roles/%s" % (domain, user, member), token=admin)
    return {"user_id": user, "project_id": project, "domain_id": domain, "password": "v3-Pa55word-never-logged"}


def v3_config(tmp_path, keystone, **options):
    tmp_path.mkdir(exist_ok=True)
    return make_config(tmp_path, "keystone-v3", credentials_text(keystone.url, **options))


def scope_of(keystone, headers):
    """What Keystone says about the token: its scope, read with the token itself."""
    token = headers["X-Auth-Token"]
    response = keystone.request("GET", "/v3/auth/tokens", token=token, expect=None, **{"X-Subject-Token": token})
    if response.status_code != 200:
        return response.status_code
    body = response.json()["token"]
    if "project" in body:
        return ("project", body["project"]["name"], body["project"]["domain"]["name"])
    return ("domain", body["domain"]["name"])


@pytest.mark.slow
def test_v3_project_token_from_real_keystone(tmp_path, keystone, ovirt_user, caplog):
    caplog.set_level("DEBUG")
    config = v3_config(tmp_path, keystone, username="quantum-vnic", user_domain_name="ovirt",
                       password=ovirt_user["password"], project_name="networking", project_domain_name="ovirt")
    headers = auth.for_config(config).headers(new_session())
    assert scope_of(keystone, headers) == ("project", "networking", "ovirt")
    assert stat.S_IMODE(os.stat(str(tmp_path / "token")).st_mode) == 0o600
    # Another hook: the cached token.
    assert auth.for_config(config).headers(new_session()) == headers
    assert_no_secret(caplog.text, (tmp_path / "token").read_text(),
                     secrets=(ovirt_user["password"],))
    assert headers["X-Auth-Token"] not in caplog.text


@pytest.mark.slow
def test_v3_scopes_by_id_and_by_domain(tmp_path, keystone, ovirt_user):
    config = v3_config(tmp_path / "by-id", keystone, user_id=ovirt_user["user_id"],
                       password=ovirt_user["password"], project_id=ovirt_user["project_id"])
    assert scope_of(keystone, auth.for_config(config).headers(new_session())) == \
        ("project", "networking", "ovirt")
    config = v3_config(tmp_path / "domain", keystone, username="quantum-vnic",
                       user_domain_id=ovirt_user["domain_id"], password=ovirt_user["password"], domain_name="ovirt")
    assert scope_of(keystone, auth.for_config(config).headers(new_session())) == ("domain", "ovirt")


@pytest.mark.slow
def test_v3_admin_in_the_default_domain(tmp_path, keystone):
    config = v3_config(tmp_path, keystone, username="admin", password=ADMIN_PASSWORD, project_name="admin")
    assert scope_of(keystone, auth.for_config(config).headers(new_session())) == ("project", "admin", "Default")


@pytest.mark.slow
def test_v3_refresh_after_revocation(tmp_path, keystone, ovirt_user):
    config = v3_config(tmp_path, keystone, username="quantum-vnic", user_domain_name="ovirt",
                       password=ovirt_user["password"], project_name="networking", project_domain_name="ovirt")
    chosen = auth.for_config(config)
    headers = chosen.headers(new_session())
    keystone.revoke(headers["X-Auth-Token"])
    # What the API client sees: a 401 with the old token ...
    assert keystone.request("GET", "/v3/auth/projects", token=headers["X-Auth-Token"], expect=None
                            ).status_code == 401
    renewed = chosen.headers(new_session(), refresh=True)
    # ... and none with the new one, which the next hook finds in the cache.
    assert renewed != headers
    assert keystone.request("GET", "/v3/auth/projects", token=renewed["X-Auth-Token"]).json()["projects"][0][
        "name"] == "networking"
    assert auth.for_config(config).headers(new_session()) == renewed


@pytest.mark.slow
def test_v3_expiry_margin(tmp_path, keystone, ovirt_user):
    config = v3_config(tmp_path, keystone, username="quantum-vnic", user_domain_name="ovirt",
                       password=ovirt_user["password"], project_name="networking", project_domain_name="ovirt")
    token = auth.for_config(config).headers(new_session())["X-Auth-Token"]
    credentials = auth.for_config(config).credentials
    cache = auth.TokenCache(str(tmp_path / "token"), credentials.fingerprint())
    lifetime = cache.load().expires - cache.load().issued
    assert 3590 < lifetime <= 3600  # Keystone's [token] expiration, as Keystone reported it

    def later(seconds):
        return auth.KeystoneAuth(credentials, cache, clock=lambda: time.time() + seconds).headers(new_session())

    assert later(lifetime - auth.EXPIRY_MARGIN - 10)["X-Auth-Token"] == token
    renewed = later(lifetime - auth.EXPIRY_MARGIN + 10)["X-Auth-Token"]
    assert renewed != token and cache.load().value == renewed


@pytest.mark.slow
def test_v3_wrong_password_and_unknown_project(tmp_path, keystone, ovirt_user):
    wrong = "Wr0ng-" + ovirt_user["password"]
    config = v3_config(tmp_path, keystone, username="quantum-vnic", user_domain_name="ovirt", password=wrong,
                       project_name="networking", project_domain_name="ovirt")
    with pytest.raises(HostError) as err:
        auth.for_config(config).headers(new_session())
    assert str(err.value).startswith(
        "Keystone at %s/v3/auth/tokens rejected the credentials of user quantum-vnic (domain ovirt), project "
        "networking (domain ovirt) (HTTP 401" % keystone.url)
    assert str(err.value).endswith("fix the user, password, project or domains in %s"
                                   % config.get("quantum", "credentials"))
    assert_no_secret(str(err.value), secrets=(wrong, ovirt_user["password"]))
    (tmp_path / "quantum_vnic.credentials").unlink()
    config = v3_config(tmp_path, keystone, username="quantum-vnic", user_domain_name="ovirt",
                       password=ovirt_user["password"], project_name="nowhere", project_domain_name="ovirt")
    expected = r"rejected the credentials of user quantum-vnic \(domain ovirt\), project nowhere"
    with pytest.raises(HostError, match=expected) as err:
        auth.for_config(config).headers(new_session())
    assert_no_secret(str(err.value), secrets=(ovirt_user["password"],))


@pytest.mark.slow
def test_v3_concurrent_hooks_share_one_token(tmp_path, keystone, ovirt_user):
    config = v3_config(tmp_path, keystone, username="quantum-vnic", user_domain_name="ovirt",
                       password=ovirt_user["password"], project_name="networking", project_domain_name="ovirt")
    code = ("import sys, requests; from vnic_drivers import config; from vnic_drivers.quantum import auth\n"
            "s = requests.Session(); s.quantum_timeout = (5, 30)\n"
            "print(auth.for_config(config.load(sys.argv[1])).headers(s)['X-Auth-Token'])")
    processes = [subprocess.Popen([sys.executable, "-c", code, config.path], cwd=REPO, stdout=subprocess.PIPE,
                                  env=dict(os.environ, PYTHONPATH=REPO)) for _ in range(6)]
    tokens = {process.communicate(timeout=120)[0].strip() for process in processes}
    assert len(tokens) == 1 and scope_of(keystone, {"X-Auth-Token": tokens.pop().decode()})[0] == "project"

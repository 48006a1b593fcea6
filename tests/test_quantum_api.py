"""The Quantum API client and what the hooks and doctor do with it.

The ``slow`` tests talk to a real Neutron API server (tests/neutron_server.py: Neutron
from PyPI in its own virtualenv, sqlite, noauth) on loopback, through its API: networks,
ports bound here and elsewhere, a deleted port, the ACTIVE wait, TLS through a loopback
proxy with a self-signed CA. A stopped provider is a loopback port nobody listens on; a
hung one is a socket that accepts and never answers.

The others need no Neutron: the config, the fast path, and the client's retry and 401
rules against a small loopback HTTP server that answers what each test scripts (Neutron
under noauth never answers 401 or 5xx on demand).
"""

import contextlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from tests import neutron_server
from tests.conftest import quantum_properties
from tests.vdsm import REPO, run_hook
from vnic_drivers import config as config_module
from vnic_drivers.binding_host import binding_host_id
from vnic_drivers.errors import HostError, InputError
from vnic_drivers.quantum import client as client_module
from vnic_drivers.quantum import hook_steps
from vnic_drivers.vnic import Vnic

EXAMPLES = os.path.join(REPO, "examples")


def example(name):
    with open(os.path.join(EXAMPLES, name), "rb") as stream:
        return stream.read()


def quantum_ini(url, **options):
    lines = ["[quantum]", "url = %s" % url]
    lines += ["%s = %s" % (key, value) for key, value in options.items()]
    return "\n".join(lines) + "\n"


def make_config(tmp_path, url, **options):
    path = tmp_path / ("quantum-%d.conf" % len(list(tmp_path.glob("quantum-*.conf"))))
    path.write_text(quantum_ini(url, **options))
    return config_module.load(str(path))


def this_host(plugin_type="OPEN_VSWITCH"):
    return binding_host_id(config_module.defaults(), plugin_type)[0]


def warnings_of(run):
    return [line for line in run.stderr.splitlines() if "WARNING" in line]


# --- the real Neutron server (session) ------------------------------------------------


@pytest.fixture(scope="session")
def neutron(request, tmp_path_factory):
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def say(line):
        with capture.global_and_fixture_disabled():
            sys.stderr.write("\n%s\n" % line)

    try:
        venv, seconds, made_now = neutron_server.ensure_venv(log=say)
    except neutron_server.NeutronUnavailable as err:
        pytest.skip("Neutron %s cannot be installed here: %s" % (neutron_server.NEUTRON_VERSION, err))
    if not made_now:
        say("neutron_server: reusing %s (its install took %.0fs)" % (venv, seconds))
    server = neutron_server.NeutronServer(venv, str(tmp_path_factory.mktemp("neutron")))
    started = time.monotonic()
    try:
        server.start()
    except neutron_server.NeutronUnavailable as err:
        pytest.skip(str(err))
    say("neutron_server: Neutron %s API at %s, started in %.1fs" % (
        neutron_server.NEUTRON_VERSION, server.url, time.monotonic() - started))
    server.add_agent(this_host("OPEN_VSWITCH"), "OPEN_VSWITCH")
    server.add_agent(this_host("LINUX_BRIDGE"), "LINUX_BRIDGE")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def network(neutron):
    return neutron.create_network()


@pytest.fixture
def bound_port(neutron, network):
    port = neutron.create_port(network["id"], **{"binding:host_id": this_host()})
    assert port["binding:vif_type"] not in ("binding_failed", "unbound"), port
    return port


slow = pytest.mark.slow


@slow
def test_port_and_network_lookup(neutron, network, bound_port, tmp_path):
    api = client_module.Client(make_config(tmp_path, neutron.url))
    port = api.port(bound_port["id"])
    assert port["network_id"] == network["id"]
    assert port["binding:host_id"] == this_host()
    assert api.network(network["id"])["mtu"] == network["mtu"] == 1450  # vxlan: 1500 - 50
    custom = neutron.create_network(mtu=1400)
    assert api.network(custom["id"])["mtu"] == 1400
    agents = api.agents(this_host())
    assert {agent["agent_type"] for agent in agents} >= {"Open vSwitch agent"}
    assert bound_port["id"] in {port["id"] for port in api.ports_on_host(this_host())}


@slow
def test_create_takes_mtu_from_the_network_and_checks_the_binding(neutron, network, bound_port):
    props = quantum_properties("LINUX_BRIDGE", port_id=bound_port["id"])
    run = run_hook("before_device_create", example("linux_bridge_vnic.xml"), props,
                   config=quantum_ini(neutron.url), dry_run=True)
    assert run.returncode == 0, run.stderr
    assert b"<mtu size=\"1450\"/>" in run.after
    assert warnings_of(run) == []


@slow
def test_mtu_property_wins_over_the_network(neutron, bound_port):
    props = quantum_properties("OPEN_VSWITCH", port_id=bound_port["id"], mtu="1300")
    run = run_hook("before_device_create", example("ovs_vnic.xml"), props,
                   config=quantum_ini(neutron.url), dry_run=True)
    assert run.returncode == 0, run.stderr
    assert b"<mtu size=\"1300\"/>" in run.after


@slow
def test_linux_bridge_plug_gets_the_network_id(neutron, network, bound_port):
    props = quantum_properties("LINUX_BRIDGE", port_id=bound_port["id"])
    run = run_hook("after_device_create", b"", props, config=quantum_ini(neutron.url), dry_run=True)
    assert run.returncode == 0, run.stderr
    # The privileged side derives brq+network[:11] from the network id it is sent.
    assert 'network_id="%s"' % network["id"] in run.stderr, run.stderr
    # Without the API the agent is left to find the tap (no network, no bridge).
    run = run_hook("after_device_create", b"", props, dry_run=True)
    assert "network_id=null" in run.stderr, run.stderr


@slow
def test_port_bound_elsewhere_warns_once_and_strict_stops(neutron, network):
    port = neutron.create_port(network["id"], **{"binding:host_id": "compute-elsewhere"})
    assert port["binding:vif_type"] == "binding_failed"
    props = quantum_properties("OPEN_VSWITCH", port_id=port["id"])
    xml = example("ovs_vnic.xml")
    run = run_hook("before_device_create", xml, props, config=quantum_ini(neutron.url), dry_run=True)
    assert run.returncode == 0, run.stderr
    assert run.changed  # the VM still starts, as without the API
    [warning] = warnings_of(run)
    assert "'compute-elsewhere'" in warning and repr(this_host()) in warning and "fix:" in warning

    run = run_hook("before_device_create", xml, props, config=quantum_ini(neutron.url, strict="true"),
                   dry_run=True)
    assert run.returncode == 2
    assert not run.changed
    assert "compute-elsewhere" in run.stderr and "strict" in run.stderr


@slow
def test_binding_failed_on_this_host_is_named(neutron, tmp_path):
    # No agent on this host for a flat physnet: the port's host is right, binding fails.
    flat = neutron.create_network(**{"provider:network_type": "flat", "provider:physical_network": "physnet9"})
    port = neutron.create_port(flat["id"], **{"binding:host_id": this_host()})
    assert port["binding:vif_type"] == "binding_failed"
    steps = hook_steps.ApiSteps(make_config(tmp_path, neutron.url, strict="true"), "before_device_create")
    with pytest.raises(HostError, match="binding_failed"):
        steps.check_binding(Vnic(port["id"], "OPEN_VSWITCH"), steps.client.port(port["id"]))


@slow
def test_active_wait(neutron, bound_port):
    props = quantum_properties("OPEN_VSWITCH", port_id=bound_port["id"])
    config = quantum_ini(neutron.url, active_wait="30")
    # The agent's RPC ends in the port's status column: set it there while the hook waits.
    timer = threading.Timer(1.0, neutron.set_port_status, (bound_port["id"], "ACTIVE"))
    timer.start()
    try:
        run = run_hook("after_device_create", b"", props, config=config, dry_run=True)
    finally:
        timer.cancel()
    assert run.returncode == 0, run.stderr
    assert "is ACTIVE after" in run.stderr
    assert warnings_of(run) == []


@slow
def test_active_wait_times_out_with_a_warning(neutron, bound_port):
    props = quantum_properties("OPEN_VSWITCH", port_id=bound_port["id"])
    run = run_hook("after_nic_hotplug", b"", props, config=quantum_ini(neutron.url, active_wait="1.5"),
                   dry_run=True)
    assert run.returncode == 0, run.stderr
    [warning] = warnings_of(run)
    assert "still DOWN after 1.5s" in warning


@slow
def test_deleted_port(neutron, network, tmp_path):
    port = neutron.create_port(network["id"], **{"binding:host_id": this_host()})
    neutron.delete_port(port["id"])
    with pytest.raises(client_module.NotFound) as caught:
        client_module.Client(make_config(tmp_path, neutron.url)).port(port["id"])
    assert caught.value.status == 404
    props = quantum_properties("OPEN_VSWITCH", port_id=port["id"])
    xml = example("ovs_vnic.xml")
    run = run_hook("before_device_create", xml, props, config=quantum_ini(neutron.url), dry_run=True)
    assert run.returncode == 0 and run.changed, run.stderr
    [warning] = warnings_of(run)
    assert "does not exist in Quantum" in warning and "404" in warning
    run = run_hook("before_device_create", xml, props, config=quantum_ini(neutron.url, strict="yes"),
                   dry_run=True)
    assert run.returncode == 2 and not run.changed


@slow
def test_doctor_reports_api_agents_and_ports(neutron, bound_port, tmp_path):
    neutron.set_port_status(bound_port["id"], "ACTIVE")
    conf = tmp_path / "doctor.conf"
    conf.write_text(quantum_ini(neutron.url))
    checks = doctor_checks(conf)
    assert checks["quantum api"]["status"] == "ok", checks
    assert neutron.url in checks["quantum api"]["message"]
    assert checks["quantum agents"]["status"] == "ok", checks
    assert "Open vSwitch agent on host %s" % this_host() in checks["quantum agents"]["message"]
    assert "%s ACTIVE" % bound_port["id"] in checks["quantum ports"]["message"]

    conf.write_text(quantum_ini(neutron_server.unused_port_url(), retries="0"))
    checks = doctor_checks(conf)
    assert checks["quantum api"]["status"] == "FAIL"
    assert "connection refused" in checks["quantum api"]["message"]
    assert checks["quantum agents"]["status"] == checks["quantum ports"]["status"] == "skip"


def doctor_checks(conf):
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("QUANTUM_VNIC_CONF", None)
    done = subprocess.run([sys.executable, "-m", "vnic_drivers.cli", "doctor", "--json", "--config", str(conf),
                           "--plugin", "OPEN_VSWITCH", "--hooks-dir", "/nonexistent"],
                          capture_output=True, text=True, timeout=120, env=env)
    return {check["check"]: check for check in json.loads(done.stdout)["checks"]}


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return neutron_server.make_ca_and_cert(str(tmp_path_factory.mktemp("tls")))


@slow
def test_tls_verified_with_the_ca_and_refused_without(neutron, network, tls, tmp_path):
    ca, cert, key = tls
    proxy = neutron_server.TlsProxy(neutron.url, cert, key)
    try:
        api = client_module.Client(make_config(tmp_path, proxy.url, ca_file=ca))
        assert api.network(network["id"])["id"] == network["id"]
        with pytest.raises(client_module.ApiError, match="TLS verification failed.*ca_file"):
            client_module.Client(make_config(tmp_path, proxy.url)).network(network["id"])
    finally:
        proxy.close()


# --- a provider that is down or hung (no Neutron needed) ------------------------------


def test_stopped_provider_falls_back_with_one_warning():
    props = quantum_properties("LINUX_BRIDGE")
    xml = example("linux_bridge_vnic.xml")
    config = quantum_ini(neutron_server.unused_port_url(), active_wait="5")
    without_api = run_hook("before_device_create", xml, props, dry_run=True)
    run = run_hook("before_device_create", xml, props, config=config, dry_run=True)
    assert run.returncode == 0, run.stderr
    assert run.after == without_api.after  # exactly the no-API device
    [warning] = warnings_of(run)
    assert "connection refused (3 attempts)" in warning and "going on without the API" in warning
    # after_*: no network id either, and no ACTIVE wait once the provider is known down.
    run = run_hook("after_device_create", b"", props, config=config, dry_run=True)
    assert run.returncode == 0 and len(warnings_of(run)) == 1, run.stderr

    run = run_hook("before_device_create", xml, props, config=config + "strict = true\n", dry_run=True)
    assert run.returncode == 2 and not run.changed
    assert "connection refused" in run.stderr


def test_auth_that_cannot_start_is_a_failed_lookup():
    """Credentials the auth refuses (here: no file) fall back like a provider that is down."""
    props = quantum_properties("OPEN_VSWITCH")
    config = quantum_ini(neutron_server.unused_port_url(), auth="keystone-v3",
                         credentials="/nonexistent/quantum_vnic.credentials", active_wait="5")
    for hook_point in ("before_device_create", "after_device_create"):
        run = run_hook(hook_point, example("ovs_vnic.xml"), props, config=config, dry_run=True)
        assert run.returncode == 0, run.stderr
        [warning] = warnings_of(run)
        assert "going on without the API" in warning
    run = run_hook("before_device_create", example("ovs_vnic.xml"), props, config=config + "strict = true\n",
                   dry_run=True)
    assert run.returncode == 2 and not run.changed


def test_hung_provider_is_bounded_by_the_budget(tmp_path):
    silent = neutron_server.SilentServer()
    try:
        api = client_module.Client(make_config(tmp_path, silent.url, read_timeout="0.5", retries="5", budget="1.2"))
        with pytest.raises(client_module.ApiError, match="no answer within"):
            api.port("0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9")
        # The run's budget is spent, or the provider is known down: no second wait.
        with pytest.raises(client_module.ApiError):
            api.network("7c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f")
        # Each read is cut to what is left of the budget, so at most budget + backoff in all.
        assert api.remaining() == 0.0 or api._down is not None

        props = quantum_properties("OPEN_VSWITCH")
        run = run_hook("before_device_create", example("ovs_vnic.xml"), props, dry_run=True,
                       config=quantum_ini(silent.url, read_timeout="0.5", retries="1", budget="2"))
        assert run.returncode == 0 and run.changed, run.stderr
        [warning] = warnings_of(run)
        # The read timeout is 0.5 s, or what is left of the 2 s budget when that is less: the
        # budget counts from the hook's start, and a busy machine (CI runs two passes at
        # once) can spend more than 1.5 s of it before the first request.
        waited = re.search(r"no answer within ([0-9.]+)s", warning)
        assert waited and 0 < float(waited.group(1)) <= 0.5, warning
    finally:
        silent.close()


# --- the client's rules, against a scripted loopback HTTP server -----------------------


class Scripted(http.server.ThreadingHTTPServer):
    """Answers GETs from a list of (status, body); records each request's headers."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests = []
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.url = "http://127.0.0.1:%d" % self.server_port
        threading.Thread(target=self.serve_forever, daemon=True).start()


class ScriptedHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append((self.path, dict(self.headers)))
        status, body = self.server.answers.pop(0) if self.server.answers else (500, {})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def scripted(*answers):
    server = Scripted(answers)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


NETWORK = {"network": {"id": "7c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f", "mtu": 9000}}
NET_ID = NETWORK["network"]["id"]


class TokenAuth:
    """A Keystone-like auth (the real ones are vnic_drivers/quantum/auth.py's)."""

    def __init__(self):
        self.calls = []

    def headers(self, session, refresh=False):
        self.calls.append((refresh, session.quantum_timeout, session.verify))
        return {"X-Auth-Token": "tok-%d-s3cr3t" % len(self.calls)}


def test_5xx_is_retried_4xx_is_not(tmp_path):
    config = make_config(tmp_path, "http://127.0.0.1:1", retries="2")
    with scripted((503, {}), (502, {}), (200, NETWORK)) as server:
        api = client_module.Client(make_config(tmp_path, server.url, retries="2"))
        assert api.network(NET_ID)["mtu"] == 9000
        assert len(server.requests) == 3
    with scripted((400, {"NeutronError": {"message": "Invalid input\nfor mtu"}}), (200, NETWORK)) as server:
        api = client_module.Client(make_config(tmp_path, server.url, retries="2"))
        with pytest.raises(client_module.ApiError, match=r"HTTP 400: Invalid input for mtu$"):
            api.network(NET_ID)
        assert len(server.requests) == 1
    with scripted((500, {}), (500, {}), (500, {})) as server:
        api = client_module.Client(make_config(tmp_path, server.url, retries="2"))
        with pytest.raises(client_module.ApiError, match=r"HTTP 500 \(3 attempts\)"):
            api.network(NET_ID)
    assert config.get("quantum", "retries") == 2


def test_401_refreshes_the_token_once_and_secrets_stay_out(tmp_path, monkeypatch):
    auth = TokenAuth()
    monkeypatch.setattr(client_module.auth_module, "for_config", lambda config: auth)
    with scripted((401, {}), (200, NETWORK)) as server:
        api = client_module.Client(make_config(tmp_path, server.url, connect_timeout="1", read_timeout="3"))
        assert api.network(NET_ID)["mtu"] == 9000
        assert [refresh for refresh, _, _ in auth.calls] == [False, True]
        assert auth.calls[0][1] == (1.0, 3.0) and auth.calls[0][2] is True
        assert [headers["X-Auth-Token"] for _, headers in server.requests] == ["tok-1-s3cr3t", "tok-2-s3cr3t"]
    with scripted((401, {}), (401, {}), (200, NETWORK)) as server:
        api = client_module.Client(make_config(tmp_path, server.url))
        with pytest.raises(client_module.ApiError) as caught:
            api.network(NET_ID)
        assert caught.value.status == 401 and len(server.requests) == 2  # one refresh, one retry
        for text in (str(caught.value), repr(api)):
            assert "s3cr3t" not in text


def test_invalid_answers_are_refused(tmp_path):
    bad = {"port": {"id": "x", "network_id": "../../etc", "status": "ACTIVE"}}
    with scripted((200, bad), (200, {"network": {"mtu": 70000}}), (200, ["not", "a", "port"])) as server:
        api = client_module.Client(make_config(tmp_path, server.url))
        with pytest.raises(client_module.ApiError, match="invalid port .* network_id"):
            api.port(NET_ID)
        with pytest.raises(client_module.ApiError, match="invalid network .* mtu"):
            api.network(NET_ID)
        with pytest.raises(client_module.ApiError, match="not a Quantum 'port' document"):
            api.port(NET_ID)


# --- config and the fast path ---------------------------------------------------------


def test_quantum_section_defaults_and_validation(tmp_path):
    defaults = config_module.defaults()
    assert defaults.get("quantum", "url") is None
    assert defaults.get("quantum", "auth") == "noauth"
    assert defaults.get("quantum", "strict") is False
    assert defaults.get("quantum", "active_wait") == 0
    assert defaults.get("quantum", "ca_file") is None  # the system's CAs: verification is on
    for option, value in (("url", "ftp://x"), ("url", "http://user:pw@host:9696"), ("auth", "basic"),
                          ("retries", "-1"), ("budget", "0"), ("ca_file", "relative.pem")):
        options = {"url": "http://controller:9696", option: value}
        with pytest.raises(InputError, match=r"\[quantum\] %s" % option) as caught:
            make_config(tmp_path, options.pop("url"), **options)
        assert "pw" not in str(caught.value)
    assert make_config(tmp_path, "https://controller:9696/").get("quantum", "url") == "https://controller:9696"


def test_api_off_imports_no_requests(tmp_path):
    """With no url (the default) a Quantum vNIC's hook loads neither the client nor requests."""
    code = (
        "import sys\n"
        "from vnic_drivers import hook_main\n"
        "rc = hook_main.main('before_device_create', argv=['--config', sys.argv[1], '--dry-run'])\n"
        "print(rc, 'requests' in sys.modules, 'vnic_drivers.quantum.client' in sys.modules)\n"
    )
    xml = tmp_path / "domxml"
    xml.write_bytes(example("ovs_vnic.xml"))
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    env = dict(os.environ, PYTHONPATH=REPO, _hook_domxml=str(xml), **quantum_properties("OPEN_VSWITCH"))
    done = subprocess.run([sys.executable, "-c", code, str(conf)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["0", "False", "False"], done.stderr

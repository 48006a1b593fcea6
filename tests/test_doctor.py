"""``quantum-vnic doctor`` on a real host fixture: healthy, then broken one way at a time.

The host: a network namespace with VDSM's ``;vdsmdummy;`` bridge and a private Open
vSwitch (``br-int``) (:mod:`vnic_drivers.sandbox`); the hooks installed as the RPM
installs them; the user ``vdsm`` and the packaged sudoers drop-in in a private mount
namespace (``tests/as_vdsm.py``, doctor stays root like an admin); stand-ins for the
agent processes (doctor looks for agents by process name). Doctor runs as its own
process inside that namespace, as the admin would run it.

Process names are the whole machine's, not the namespace's: one host fixture at a time
on the machine (a lock), or the stand-ins of another test run (CI's EL9 pass runs beside
the first pass) would be agents running here, and an agent this test stopped would
still run.
"""

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from tests import as_vdsm
from tests.vdsm import HOOKS_DIR, REPO
from vnic_drivers import doctor, sandbox

DUMMY = ";vdsmdummy;"
GRIZZLY_EXCERPT = os.path.join(REPO, "tests", "agent_fixtures", "grizzly_linuxbridge_quantum_agent_excerpt.py")
AGENTS = {"LINUX_BRIDGE": "neutron-linuxbridge-agent", "OPEN_VSWITCH": "neutron-openvswitch-agent"}


class Host:
    """The fixture host; :meth:`doctor` runs the command on it."""

    def __init__(self, box, workdir):
        self.box = box
        self.workdir = workdir
        self.hooks = os.path.join(workdir, "hooks")
        self.config = os.path.join(workdir, "quantum_vnic.conf")
        self.agents = {}

    def install_hooks(self):
        for hook in os.listdir(HOOKS_DIR):
            os.makedirs(os.path.join(self.hooks, hook))
            target = os.path.join(self.hooks, hook, "50_quantum_vnic")
            shutil.copyfile(os.path.join(HOOKS_DIR, hook), target)
            os.chmod(target, 0o755)
        for directory, _, _ in os.walk(self.hooks):
            os.chmod(directory, 0o755)

    def write_config(self, text=None):
        with open(self.config, "w", encoding="utf-8") as stream:
            stream.write(text if text is not None else "[openvswitch]\novsdb = %s\n" % self.box.ovs.remote)
        os.chmod(self.config, 0o644)

    def start_agent(self, plugin):
        # A process named like the agent: what doctor (like an admin with ps) looks for.
        self.agents[plugin] = subprocess.Popen([AGENTS[plugin], "600"], executable=shutil.which("sleep"))

    def stop_agent(self, plugin):
        process = self.agents.pop(plugin)
        process.send_signal(signal.SIGTERM)
        process.wait()

    def doctor(self, *extra, json_output=True):
        argv = [sys.executable, "-m", "vnic_drivers.cli", "doctor", "--config", self.config,
                "--hooks-dir", self.hooks] + (["--json"] if json_output else []) + list(extra)
        done = as_vdsm.run_as_vdsm(self.workdir, argv, env=dict(os.environ, PYTHONPATH=REPO),
                                   netns=self.box.name, as_root=True)
        if done.returncode == as_vdsm.CANNOT:
            pytest.skip(done.stderr.strip())
        assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
        if not json_output:
            return done.returncode, done.stdout
        report = json.loads(done.stdout)
        assert report["ok"] == (done.returncode == 0)
        return done.returncode, {check["check"]: check for check in report["checks"]}


@contextlib.contextmanager
def agents_of_this_machine():
    """Held while a test has agent stand-ins or runs doctor on them (see the docstring)."""
    with open(os.path.join(tempfile.gettempdir(), "quantum-vnic-test-agents.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture
def host():
    reason = sandbox.missing_requirements() or as_vdsm.required_tools()
    if reason:
        pytest.skip(reason)
    with agents_of_this_machine(), as_vdsm.workdir() as workdir, sandbox.Sandbox("qvnic-doctor") as box:
        box.start_ovs()
        box.add_bridge(DUMMY)
        fixture = Host(box, workdir)
        fixture.install_hooks()
        fixture.write_config()
        try:
            for plugin in AGENTS:
                fixture.start_agent(plugin)
            yield fixture
        finally:
            for plugin in list(fixture.agents):
                fixture.stop_agent(plugin)


def statuses(checks):
    return {name: check["status"] for name, check in checks.items()}


HEALTHY = {"config": "ok", "binding host id": "ok", "hooks": "ok", "sudoers": "ok", "sudo path": "ok", "agents": "ok",
           "ovsdb": "ok", "integration bridge": "ok", "dummy bridge": "ok",
           # No quantum-vnic-helper runs on the test host: hooks would use sudo (the
           # helper check itself is tested with a running helper in tests/test_helper.py).
           "helper": "warn",
           # [quantum] url empty: no provider to ask (tests/test_quantum_api.py has one)
           "quantum api": "skip", "quantum agents": "skip", "quantum ports": "skip"}


def assert_healthy_but(checks, **expected):
    found = statuses(checks)
    wanted = dict(HEALTHY, **{name.replace("_", " "): status for name, status in expected.items()})
    if "agent patch" not in wanted:  # depends on an agent installed on this machine
        assert found.pop("agent patch") in ("ok", "warn", "skip")
    if "leftovers" not in wanted:  # skip unless this machine's libvirtd answers (tests/test_cleanup.py)
        assert found.pop("leftovers") in ("ok", "skip")
    assert found == wanted, checks
    for check in checks.values():
        if check["status"] in ("FAIL", "warn"):
            assert check["fix"], check


def test_healthy_host(host):
    code, checks = host.doctor()
    assert code == 0
    assert_healthy_but(checks)


def test_text_output_is_one_line_per_check(host):
    host.box.ovs.vsctl("del-br", "br-int")
    code, text = host.doctor(json_output=False)
    lines = text.splitlines()
    assert code == 1
    assert len(lines) == len(doctor.CHECKS) + 1  # one line per check and the verdict
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1 and "integration bridge" in failed[0] and "; fix: " in failed[0]
    assert lines[-1].endswith("1 check(s) failed: VM networking is blocked")


def test_missing_integration_bridge(host):
    host.box.ovs.vsctl("del-br", "br-int")
    code, checks = host.doctor()
    assert code == 1
    assert_healthy_but(checks, integration_bridge="FAIL")
    assert "add-br br-int" in checks["integration bridge"]["fix"]


def test_ovsdb_down(host):
    host.box.ovs.stop("ovs-vswitchd")
    host.box.ovs.stop("ovsdb-server")
    code, checks = host.doctor()
    assert code == 1
    assert_healthy_but(checks, ovsdb="FAIL", integration_bridge="skip")
    assert host.box.ovs.remote in checks["ovsdb"]["message"]


def test_missing_dummy_bridge_and_stuck_taps(host):
    host.box.add_tap("tap0a1b2c3d-4e", master=DUMMY)
    code, checks = host.doctor()
    assert code == 0  # works, but the agent has not done its part: a warning
    assert_healthy_but(checks, dummy_bridge="warn")
    assert "tap0a1b2c3d-4e" in checks["dummy bridge"]["message"]
    host.box.delete_link(DUMMY)
    code, checks = host.doctor()
    assert code == 1
    assert_healthy_but(checks, dummy_bridge="FAIL")


def test_hook_not_executable(host):
    os.chmod(os.path.join(host.hooks, "after_device_create", "50_quantum_vnic"), 0o644)
    code, checks = host.doctor()
    assert code == 1
    assert_healthy_but(checks, hooks="FAIL")
    assert "after_device_create" in checks["hooks"]["message"]


def test_binding_host_id_and_its_source(host, tmp_path):
    """The value after_get_caps reports, per plugin, and where it came from."""
    import socket

    ini = tmp_path / "etc/neutron/plugins/ml2/openvswitch_agent.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[DEFAULT]\nhost = compute-7-ovs\n")
    host.write_config("[openvswitch]\novsdb = %s\n[hook]\nagent_config_root = %s\n" % (host.box.ovs.remote, tmp_path))
    code, checks = host.doctor()
    message = checks["binding host id"]["message"]
    assert checks["binding host id"]["status"] == "ok", checks
    assert "OPEN_VSWITCH: compute-7-ovs (host in %s)" % ini in message, message
    assert "LINUX_BRIDGE: %s (socket.gethostname())" % socket.gethostname() in message, message
    host.write_config("[openvswitch]\novsdb = %s\n[hook]\nbinding_host_id = node9\n" % host.box.ovs.remote)
    code, checks = host.doctor()
    assert "OPEN_VSWITCH: node9 ([hook] binding_host_id in %s)" % host.config in checks["binding host id"]["message"]


def test_invalid_config(host):
    host.write_config("[openvswitch]\nintegration_bridge = br int\n")
    code, checks = host.doctor()
    assert code == 1
    # The other checks still run with the defaults, but none guesses which OVSDB to ask
    # (the default socket may be another OVS: on a test machine, the machine's own).
    assert checks["config"]["status"] == "FAIL" and "integration_bridge" in checks["config"]["message"]
    assert checks["ovsdb"]["status"] == "skip" and "invalid" in checks["ovsdb"]["message"]
    assert checks["integration bridge"]["status"] == "skip"


def test_sudoers_with_wrong_mode(host):
    sudoers = os.path.join(host.workdir, "sudoers-copy")
    shutil.copyfile(os.path.join(REPO, "packaging", "sudoers"), sudoers)
    os.chmod(sudoers, 0o644)
    code, checks = host.doctor("--sudoers", sudoers)
    assert code == 1
    assert_healthy_but(checks, sudoers="FAIL")
    assert "0644" in checks["sudoers"]["message"]


def test_agent_not_running(host):
    host.stop_agent("OPEN_VSWITCH")
    code, checks = host.doctor("--plugin", "OPEN_VSWITCH", "--plugin", "LINUX_BRIDGE")
    assert code == 1
    assert_healthy_but(checks, agents="FAIL")
    assert "neutron-openvswitch-agent" in checks["agents"]["fix"]
    # Without --plugin, the running agents say which plugin this host serves.
    code, checks = host.doctor()
    assert code == 0
    assert_healthy_but(checks, ovsdb="skip", integration_bridge="skip")


def test_agent_patch_state(host):
    if shutil.which("patch") is None:
        pytest.skip("needs the patch program (apt-get install patch)")
    agent = os.path.join(host.workdir, "linuxbridge_quantum_agent.py")
    shutil.copyfile(GRIZZLY_EXCERPT, agent)
    os.chmod(agent, 0o644)
    code, checks = host.doctor("--agent-file", agent)
    assert code == 0
    assert_healthy_but(checks, agent_patch="warn")
    assert "not patched" in checks["agent patch"]["message"]
    assert checks["agent patch"]["fix"] == "quantum-vnic agent-patch apply"
    subprocess.run([sys.executable, "-m", "vnic_drivers.cli", "agent-patch", "apply", agent],
                   env=dict(os.environ, PYTHONPATH=REPO), check=True, capture_output=True)
    code, checks = host.doctor("--agent-file", agent)
    assert code == 0
    assert_healthy_but(checks, agent_patch="ok")
    assert "is patched" in checks["agent patch"]["message"]


def test_config_option_holds_for_the_whole_process(tmp_path):
    """What loads the config by itself in doctor's process (the privileged operations, in
    process as root) reads the --config file too, not /etc/vdsm/quantum_vnic.conf."""
    import textwrap

    (tmp_path / "quantum_vnic.conf").write_text(
        "[openvswitch]\novsdb = unix:%s\nintegration_bridge = br-doctor\n" % (tmp_path / "none.sock"))
    script = textwrap.dedent("""
        import contextlib, io, json, sys
        from vnic_drivers import cli
        from vnic_drivers.host import privileged
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(sys.argv[1:])
        config = privileged.configuration()
        print(json.dumps([config.path, config.get("openvswitch", "integration_bridge")]))
    """)
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("QUANTUM_VNIC_CONF", None)
    # A relative --config: what the process keeps is its absolute path.
    done = subprocess.run([sys.executable, "-c", script, "doctor", "--plugin", "OPEN_VSWITCH",
                           "--config", "quantum_vnic.conf", "--hooks-dir", str(tmp_path)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stdout) == [str(tmp_path / "quantum_vnic.conf"), "br-doctor"]

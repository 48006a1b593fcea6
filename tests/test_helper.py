"""The resident helper, for real: root daemon, socket activation, clients as ``vdsm``.

The helper (``vnic_drivers/helper/server.py``) runs as root inside the test's network
namespace (a :class:`vnic_drivers.sandbox.Sandbox` with a private OVS, ``;vdsmdummy;``
and an agent-style ``brq`` bridge), started by ``systemd-socket-activate`` as systemd
starts it from ``quantum-vnic-helper.socket``; the test then gives the socket the mode
and group the unit's ``SocketMode``/``SocketGroup`` give it (0660, vdsm's group). It runs
in an :mod:`tests.as_vdsm` mount namespace, so it reads the test's config at
``/etc/vdsm/quantum_vnic.conf`` and knows the user ``vdsm``. Clients are processes of
``vdsm`` (``tests/as_vdsm.py``) reaching it through the socket, or root through sudo's
fallback: the packaged sudoers drop-in.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from tests import as_vdsm
from tests.vdsm import REPO
from vnic_drivers import naming
from vnic_drivers.helper import client, protocol
from vnic_drivers.host import privileged

PORT = "5e1f0c2a-9b3d-4e7f-8a6b-1c2d3e4f5a6b"
NETWORK = "7c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
MAC = "00:1a:4a:16:01:51"
VM = "d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de"
HELPER_MAIN = ("import sys; sys.path.insert(0, %r); from vnic_drivers.helper.server import main; "
               "sys.exit(main())")


def _skip_reason():
    from vnic_drivers import sandbox

    return (as_vdsm.required_tools() or sandbox.missing_requirements()
            or (None if shutil.which("systemd-socket-activate") else
                "needs systemd-socket-activate (apt-get install systemd)"))


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def write_config(path, helper_socket, ovsdb, **helper):
    helper.setdefault("allowed_users", "vdsm")
    helper.setdefault("idle_timeout", "0")
    helper.setdefault("client_timeout", "10")
    text = "[openvswitch]\novsdb = %s\n[helper]\nsocket = %s\n" % (ovsdb, helper_socket)
    text += "".join("%s = %s\n" % item for item in helper.items())
    # In place, never replaced: the helper sees this file through a bind mount.
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.chmod(path, 0o644)
    return path


class Helper:
    """quantum-vnic-helper under systemd-socket-activate, as root in *netns*."""

    def __init__(self, workdir, netns, config, name="helper", repo=REPO):
        self.workdir, self.netns, self.config = workdir, netns, config
        self.repo = repo  # whose vnic_drivers it runs (bench/unplug.py: also an older tree's)
        self.socket = os.path.join(workdir, "run", name + ".sock")
        self.log_path = os.path.join(workdir, name + ".log")
        self.process = None

    def start(self):
        os.makedirs(os.path.dirname(self.socket), mode=0o755, exist_ok=True)
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        with open(self.log_path, "a", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                as_vdsm.command(self.workdir, ["systemd-socket-activate", "-l", self.socket,
                                               sys.executable, "-I", "-c", HELPER_MAIN % self.repo],
                                netns=self.netns, as_root=True, config=self.config),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while not self._listening():  # the file appears at bind(), before listen()
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("helper did not start: %s" % self.log()[-2000:])
            time.sleep(0.02)
        # What quantum-vnic-helper.socket's SocketMode=0660 and SocketGroup= give it.
        os.chown(self.socket, 0, as_vdsm.vdsm_uid())
        os.chmod(self.socket, 0o660)
        return self

    def _listening(self):
        if not os.path.exists(self.socket):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(self.socket)  # starts the helper, as a first client would
            except OSError:
                return False
        return True

    def ping(self, timeout=20):
        return client.call(self.socket, "ping", {}, timeout)

    def pid(self):
        """The helper's own pid (started on the first connection)."""
        return self.ping()["pid"]

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as stream:
            return stream.read()

    def reload(self):
        """SIGHUP, then wait until the helper logged its new config."""
        before = self.log().count("ready: config")
        os.kill(self.pid(), signal.SIGHUP)
        deadline = time.monotonic() + 10
        while self.log().count("ready: config") == before:
            assert time.monotonic() < deadline, self.log()[-2000:]
            time.sleep(0.05)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


@pytest.fixture(scope="module")
def host():
    """(sandbox, workdir, config path, running Helper) shared by the module's tests."""
    from vnic_drivers import sandbox

    with as_vdsm.workdir() as workdir, sandbox.Sandbox("qvnic-helper") as box:
        box.start_ovs()
        box.add_bridge(naming.VDSM_DUMMY_BRIDGE)
        box.add_bridge(naming.linux_bridge_name(NETWORK))
        config = os.path.join(workdir, "shared", "quantum_vnic.conf")
        helper = Helper(workdir, box.name, config)
        write_config(config, helper.socket, box.ovs.remote)
        helper.start()
        try:
            helper.ping()
            yield box, workdir, config, helper
        finally:
            helper.stop()


def settled(path, port_id):
    """Return once the helper on *path* has finished every change to *port_id*, including
    what an answered ovs_unplug still deletes: a read-only request for that port waits
    on the port's lock. (Tests wait with this, never with a sleep.)"""
    client.call(path, "ovs_port_status", {"port_id": port_id, "hybrid": True, "wait": 0}, 30)


def as_vdsm_script(host, script, timeout=120, check=True, at_default_path=True):
    """Run Python *script* as vdsm in the sandbox; its JSON output.

    *at_default_path*: the helper's socket is also at /run/quantum-vnic/helper.sock (as
    on a host, where the socket unit listens there), where after_* hooks look first.
    """
    box, workdir, config, helper = host
    path = os.path.join(workdir, "shared", "script-%s.py" % uuid.uuid4().hex[:8])
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(textwrap.dedent(script))
    os.chmod(path, 0o644)
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("QUANTUM_VNIC_CONF", None)
    done = as_vdsm.run_as_vdsm(workdir, [sys.executable, path], env=env, netns=box.name,
                               config=config, timeout=timeout,
                               helper_socket=helper.socket if at_default_path else None)
    if done.returncode == as_vdsm.CANNOT:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- every operation, through the helper and through sudo ---------------------------

# A value for each parameter name an operation may take; an operation is run with the
# ones it declares (so a changed signature needs no test change, a new parameter a value).
VALUES = {"port_id": PORT, "network_id": NETWORK, "mac": MAC, "vm_id": VM, "mtu": 1450,
          "wait": 0, "tap": naming.tap_name(PORT), "name": naming.tap_name(PORT),
          "bridge": naming.linux_bridge_name(NETWORK)}
# One life of a port that touches every operation; (operation, overrides).
SEQUENCE = [
    ("link_state", {}),
    ("ovs_host_identity", {}),
    ("ovs_hybrid_plug", {}),
    ("ovs_port_status", {"hybrid": True}),
    ("ovs_unplug", {}),
    ("ovs_attach_tap", {}),
    ("ovs_port_status", {"hybrid": False}),
    ("ovs_unplug", {}),
    ("link_state", {}),
    ("linux_bridge_plug", {}),
    ("link_state", {}),
    ("linux_bridge_unplug", {}),
    ("link_state", {}),
    ("cleanup_inventory", {}),
    ("cleanup_remove", {"qvo_port": None, "tap_port": None}),
]


def sequence_calls():
    calls = []
    for operation, overrides in SEQUENCE:
        params = privileged.OPERATIONS[operation].params
        missing = set(params) - set(VALUES) - set(overrides)
        assert not missing, "tests/test_helper.py: give VALUES for %s" % sorted(missing)
        calls.append((operation, dict({p: VALUES[p] for p in params if p in VALUES}, **overrides)))
    return calls


def run_sequence(host, mode):
    """SEQUENCE as vdsm through *mode* (``helper``: HelperHost that may not fall back;
    ``sudo``: SudoHost); the results, with what ovs-vswitchd sets at its own pace removed."""
    box, _, _, helper = host
    box.add_tap(naming.tap_name(PORT), mtu=1500, mac=MAC)  # what libvirt made
    results = as_vdsm_script(host, """
        import json
        from vnic_drivers.host import HelperHost, SudoHost, DEFAULT_PRIVILEGED_COMMAND

        class NoFallback:
            def call(self, operation, **args):
                raise AssertionError("the helper did not answer %%s" %% operation)

        sudo = SudoHost(DEFAULT_PRIVILEGED_COMMAND)
        host = HelperHost(%r, 10, NoFallback()) if %r == "helper" else sudo
        results = []
        for operation, args in %r:
            results.append(host.call(operation, **args))
        print(json.dumps(results))
    """ % (helper.socket, mode, sequence_calls()))
    for (operation, _), result in zip(SEQUENCE, results):
        if isinstance(result, dict):
            result.pop("ofport", None)
            if operation == "linux_bridge_plug":
                # Whether the MTU still had to change depends on whether ovs-vswitchd had
                # applied ovs_attach_tap's mtu_request to the tap before OVS let it go;
                # the link_state after it shows the MTU the tap ends with either way.
                result.pop("mtu", None)
    return results


def test_every_operation_gives_the_same_result_through_the_helper_and_sudo(host):
    assert {operation for operation, _ in SEQUENCE} == set(privileged.OPERATIONS)
    through_helper = run_sequence(host, "helper")
    through_sudo = run_sequence(host, "sudo")
    assert through_helper == through_sudo
    box, _, _, helper = host
    assert naming.tap_name(PORT) not in box.links()  # the sequence ends clean
    assert "uid %d: ovs_hybrid_plug" % as_vdsm.vdsm_uid() in helper.log()
    created = through_helper[2]["created"]
    assert naming.hybrid_names(PORT)[0] in created, through_helper[2]


def test_refused_input_is_the_same_error_through_the_helper(host):
    _, _, _, helper = host
    for args in ({"name": "lo; reboot"}, {"name": "x" * 16}, {"name": "lo", "extra": 1}, {}):
        with pytest.raises(Exception) as through_helper:
            client.call(helper.socket, "link_state", args, 10)
        with pytest.raises(Exception) as in_process:
            privileged.validate("link_state", args)
        assert type(through_helper.value) is type(in_process.value)
        assert str(through_helper.value) == str(in_process.value)
    from vnic_drivers.errors import InputError

    with pytest.raises(InputError, match="unknown privileged operation 'reboot'"):
        client.call(helper.socket, "reboot", {}, 10)


# --- ovs_unplug: answered once the port is cut off, its devices deleted after ------------

def device_group(box, name):
    """The device's group as ``ip`` shows it: "default" (0) or the number."""
    done = subprocess.run(["ip", "-n", box.name, "-j", "-d", "link", "show", name],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)[0]["group"]


def test_unplug_answers_before_deleting_and_ends_as_through_sudo(host):
    """Through the helper, ovs_unplug answers once the OVS port is gone and qvo is down
    (or already deleted), then deletes the devices; the end state and the result are
    the same as through sudo, where the unplug returns after the deletion."""
    box, _, _, helper = host
    port = str(uuid.uuid4())
    qbr, qvb, qvo = naming.hybrid_names(port)
    plug = {"port_id": port, "mac": MAC, "vm_id": None, "mtu": None}
    client.call(helper.socket, "ovs_hybrid_plug", plug, 30)
    result = client.call(helper.socket, "ovs_unplug", {"port_id": port}, 30)
    # At the answer (the deletion may have finished since, never the other way round)
    # the port is off br-int: nothing passes between it and the bridge. qvo is set down
    # too, but not checked here: ovs-vswitchd, applying the port's removal on its own
    # time, may restore the flags it found (up) after that (seen once on a loaded run).
    assert qvo not in box.ovs.vsctl("list-ports", "br-int").split()
    settled(helper.socket, port)
    through_helper = (result, [name for name in box.links() if name[3:] == port[:11]],
                      box.ovs.vsctl("list-ports", "br-int").split())
    assert "ovs_unplug port_id=\"%s\": after the answer: done" % port in helper.log()

    through_sudo = as_vdsm_script(host, """
        import json
        from vnic_drivers.host import SudoHost, DEFAULT_PRIVILEGED_COMMAND
        sudo = SudoHost(DEFAULT_PRIVILEGED_COMMAND)
        sudo.call("ovs_hybrid_plug", **%r)
        print(json.dumps(sudo.call("ovs_unplug", port_id=%r)))
    """ % (plug, port))
    assert through_helper == (through_sudo, [], box.ovs.vsctl("list-ports", "br-int").split())
    assert result == {"ports": [qvo], "devices": [qvo, qvb, qbr], "kept": []}


def test_a_port_restarted_right_after_its_unplug_ends_wired(host):
    """A VM restarted at once: ovs_hybrid_plug right after ovs_unplug's answer, through
    the helper, as vdsm. The plug waits on the port's lock until the deletion is done, so
    every time it makes the devices anew and the port ends fully wired."""
    box, _, _, helper = host
    port = str(uuid.uuid4())
    qbr, qvb, qvo = naming.hybrid_names(port)
    plugs = as_vdsm_script(host, """
        import json
        from vnic_drivers.helper import client
        plug = {"port_id": %r, "mac": %r, "vm_id": %r, "mtu": None}
        results = [client.call(%r, "ovs_hybrid_plug", plug, 30)]
        for _ in range(10):
            client.call(%r, "ovs_unplug", {"port_id": plug["port_id"]}, 30)
            results.append(client.call(%r, "ovs_hybrid_plug", plug, 30))
        print(json.dumps(results))
    """ % (port, MAC, VM, helper.socket, helper.socket, helper.socket))
    assert [result["created"] for result in plugs] == [[qbr, qvb]] * 11, plugs
    # In the helper's log, each plug comes after the deletion of the unplug before it.
    events = [("deleted" if "after the answer" in line else "unplug" if "ovs_unplug" in line
               else "plug") for line in helper.log().splitlines() if 'port_id="%s"' % port in line]
    assert events == ["plug"] + ["unplug", "deleted", "plug"] * 10, events
    links = box.links()
    assert all(links[name]["up"] for name in (qbr, qvb, qvo)), links
    assert links[qvb]["master"] == qbr
    assert [device_group(box, name) for name in (qbr, qvb, qvo)] == ["default"] * 3
    assert box.ovs.vsctl("get", "Interface", qvo, "external_ids:iface-id").strip().strip('"') == port
    assert box.ovs.vsctl("list-ports", "br-int").split().count(qvo) == 1
    client.call(helper.socket, "ovs_unplug", {"port_id": port}, 30)
    settled(helper.socket, port)
    assert not any(name[3:] == port[:11] for name in box.links())


# --- the hooks as VDSM runs them --------------------------------------------------------

def run_hooks(host, hook_point, vnics, at_default_path=True):
    """*hook_point* for each demo vNIC as vdsm, as VDSM runs it; [(exit code, stderr)]."""
    box, workdir, _, _ = host
    shared = os.path.join(workdir, "shared")
    calls = []
    for vnic in vnics:
        path = os.path.join(shared, "domxml-" + vnic.tap)
        with open(path, "wb") as stream:
            stream.write(vnic.xml)
        os.chown(path, as_vdsm.vdsm_uid(), as_vdsm.vdsm_uid())
        calls.append((os.path.join(REPO, "hooks", hook_point), path, vnic.properties))
    from vnic_drivers import demo

    results = as_vdsm_script(host, """
        import json, subprocess, sys
        from vnic_drivers.simulate import hook_environment
        results = []
        for hook, path, properties in %r:
            env = hook_environment(path, properties, {}, %r)
            env.pop("QUANTUM_VNIC_CONF", None)
            done = subprocess.run([sys.executable, hook], env=env, capture_output=True, text=True)
            results.append((done.returncode, done.stderr))
        print(json.dumps(results))
    """ % (calls, demo.VM_ID), at_default_path=at_default_path)
    for vnic, (_, path, _) in zip(vnics, calls):
        with open(path, "rb") as stream:
            vnic.xml = stream.read()
    return results


def vm_lifecycle(host, at_default_path=True):
    """Start and destroy one VM with a Linux Bridge and a hybrid OVS vNIC; what each hook
    said, and the host after the start."""
    from vnic_drivers import demo

    box = host[0]
    vnics = demo.demo_vnics()
    for vnic in vnics:
        if vnic.plugin == "OPEN_VSWITCH":
            vnic.properties["security_groups"] = "default"  # hybrid: devices before libvirt
    said = run_hooks(host, "before_device_create", vnics, at_default_path)
    for vnic in vnics:
        demo.libvirt_create(box, vnic)
    said += run_hooks(host, "after_device_create", vnics, at_default_path)
    links = box.links()
    ports = box.ovs.vsctl("list-ports", "br-int").split()
    for vnic in vnics:
        box.delete_link(vnic.tap)  # QEMU exits: libvirt's tap goes
    said += run_hooks(host, "after_device_destroy", vnics, at_default_path)
    for vnic in vnics:  # the helper deletes hybrid devices after its answer
        settled(host[3].socket, vnic.port)
    return vnics, said, links, ports


def test_hooks_as_vdsm_through_the_helper_and_through_sudo(host):
    box, _, config, helper = host
    vnics, said, links, ports = vm_lifecycle(host)
    lb, ovs = vnics
    assert all(code == 0 for code, _ in said), said
    assert not any("using sudo" in stderr for _, stderr in said), said
    assert links[lb.tap]["master"] == naming.linux_bridge_name(NETWORK)
    assert naming.hybrid_names(ovs.port)[2] in ports
    uid = as_vdsm.vdsm_uid()
    # after_* hooks: run whole by the helper (one run_hook each), before_* through its operations.
    assert "uid %d: run_hook" % uid in helper.log() and "uid %d: ovs_hybrid_plug" % uid in helper.log()

    # Only at the config's socket: the after_* hooks read the config and use the helper's operations.
    vnics, said_by_operations, links_by_operations, ports_by_operations = vm_lifecycle(host, at_default_path=False)
    assert said_by_operations == said, (said_by_operations, said)  # the same lines, word for word
    assert links_by_operations == links and ports_by_operations == ports
    assert "uid %d: linux_bridge_plug" % uid in helper.log()

    # The helper's socket absent: the same host through sudo, one warning line per hook.
    write_config(config, helper.socket + ".absent", box.ovs.remote)
    try:
        vnics, said_by_sudo, links_by_sudo, ports_by_sudo = vm_lifecycle(host, at_default_path=False)
    finally:
        write_config(config, helper.socket, box.ovs.remote)
    assert all(code == 0 for code, _ in said_by_sudo), said_by_sudo
    # Every run but the Linux Bridge XML-only before_device_create touches the host.
    for index, (_, stderr) in enumerate(said_by_sudo):
        warnings = [line for line in stderr.splitlines() if "using sudo instead" in line]
        assert len(warnings) == (0 if index == 0 else 1), stderr
        assert all("WARNING" in line and ".absent" in line for line in warnings), warnings
    assert links_by_sudo == links and ports_by_sudo == ports
    leftovers = [name for name in box.links() if name[3:] in (lb.port[:11], ovs.port[:11])]
    assert leftovers == []


# --- who may ask, and what may be asked ---------------------------------------------------

def test_a_caller_uid_not_allowed_is_refused_and_the_hook_side_falls_back(host):
    box, _, config, helper = host
    write_config(config, helper.socket, box.ovs.remote, allowed_users="root")
    helper.reload()  # SIGHUP
    try:
        result = as_vdsm_script(host, """
            import json, os
            from vnic_drivers.helper import client
            from vnic_drivers import config, host, log
            log.setup("test")
            try:
                client.call(%r, "link_state", {"name": "lo"}, 10)
                refused = None
            except client.Unavailable as err:
                refused = str(err)
            connection = host.connect(config=config.load())
            print(json.dumps({"uid": os.getuid(), "refused": refused, "mode": connection.mode,
                              "lo": connection.call("link_state", name="lo"),
                              "unavailable": connection.unavailable}))
        """ % helper.socket)
    finally:
        write_config(config, helper.socket, box.ovs.remote)
        helper.reload()
    assert "uid %d is not allowed" % result["uid"] in result["refused"]
    assert result["mode"] == "helper" and result["lo"]["exists"] is True  # through sudo
    assert "not allowed" in result["unavailable"]
    assert "refused a connection from uid %d" % result["uid"] in helper.log()


def raw_exchange(path, payload):
    """Send *payload* (bytes) as root; the answer line and whether the helper then closed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(path)
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it read everything: the answer is still there
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


@pytest.mark.parametrize("payload, needle", [
    (b'{"op": "link_state", "args": {"name": "' + b"x" * (protocol.MAX_REQUEST + 10) + b'"}}\n',
     "more than %d bytes" % protocol.MAX_REQUEST),
    (b"x" * (protocol.MAX_REQUEST * 4), "more than %d bytes" % protocol.MAX_REQUEST),  # no newline
    (b'{"op": "link_state", "args": {"name": ' + b"[" * 100000 + b"]" * 100000 + b"}}\n", "bytes"),
    (b'{"op": "link_state", "args": {"name": ' + b"[" * 5000 + b"]" * 5000 + b"}}\n", "nests deeper"),
    (b'{"op": "link_state", "args": {"name": [[[[["lo"]]]]]}}\n', "nests deeper"),
    (b"not json\n", "not JSON"),
    (b'["link_state"]\n', "JSON object"),
    (b'{"op": "link_state", "args": ["lo"]}\n', "JSON object"),
    (b"\xff\xfe\n", "UTF-8"),
])
def test_oversized_deep_and_malformed_requests_are_refused(host, payload, needle):
    helper = host[3]
    answers = raw_exchange(helper.socket, payload)
    assert len(answers) == 1, answers  # one refusal, then the helper closed the connection
    assert answers[0]["ok"] is False and answers[0]["kind"] == "refused"
    assert needle in answers[0]["error"]
    assert helper.ping()["uid"] == 0  # and it serves the next caller


def test_several_requests_on_one_connection(host):
    helper = host[3]
    request = protocol.encode({"op": "link_state", "args": {"name": "lo"}})
    answers = raw_exchange(helper.socket, request * 3)
    assert [answer["result"]["exists"] for answer in answers] == [True, True, True]


# --- failures under the helper ----------------------------------------------------------

def kill_helper_during(host, script, ready, config_text):
    """Run *script* (Python, as vdsm, the helper also at the default socket path), SIGKILL
    the helper once *ready()*, then put *config_text* back and restart the helper; the
    script's exit code and output."""
    box, workdir, config, helper = host
    victim = helper.pid()
    path = os.path.join(workdir, "shared", "killed-%s.py" % uuid.uuid4().hex[:8])
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(textwrap.dedent(script))
    os.chmod(path, 0o644)
    hook = subprocess.Popen(as_vdsm.command(workdir, [sys.executable, path], netns=box.name,
                                            config=config, helper_socket=helper.socket),
                            env=dict(os.environ, PYTHONPATH=REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not ready(victim):
            assert time.monotonic() < deadline and hook.poll() is None, hook.communicate()
            time.sleep(0.02)
        os.kill(victim, signal.SIGKILL)
        output, _ = hook.communicate(timeout=60)
    finally:
        if hook.poll() is None:
            hook.kill()
        with open(config, "w", encoding="utf-8") as stream:
            stream.write(config_text)
        helper.stop()
        helper.start()
    return hook.returncode, output


def test_helper_killed_mid_request_hook_falls_back_and_host_ends_plugged(host):
    """The hook's request dies with the helper: the hook runs it through sudo instead and
    the port ends fully plugged (no half-made port, exit 0, one warning line)."""
    box, workdir, config, helper = host
    port = str(uuid.uuid4())
    tap = naming.tap_name(port)
    box.add_tap(tap, mtu=1500, mac=MAC)
    # plug = hook with a wait: the helper adds the port, then waits for an agent that
    # never comes; it is killed during that wait.
    # after_device_create never reads the device file (VDSM passes it empty): the MAC
    # comes from the record before_device_create leaves in state_dir.
    state = os.path.join(workdir, "shared", "state")
    os.makedirs(state, exist_ok=True)
    os.chown(state, as_vdsm.vdsm_uid(), as_vdsm.vdsm_uid())
    text = open(config, encoding="utf-8").read().replace(
        "[openvswitch]\n", "[hook]\nstate_dir = %s\n[openvswitch]\nplug = hook\nwait_timeout = 4\n" % state)
    with open(config, "w", encoding="utf-8") as stream:
        stream.write(text)
    helper.reload()
    path = os.path.join(workdir, "shared", "domxml-killed")
    with open(path, "wb") as stream:
        stream.write(b"<interface type='ethernet'><mac address='%s'/><target dev='%s'/></interface>"
                     % (MAC.encode(), tap.encode()))
    os.chown(path, as_vdsm.vdsm_uid(), as_vdsm.vdsm_uid())
    # The helper's socket at the default path too: run_hook declines (plug mode hook needs
    # the MAC record, which is vdsm's), so the hook runs and asks for ovs_attach_tap itself.
    restored = text.replace("plug = hook\nwait_timeout = 4\n", "").replace("[hook]\nstate_dir = %s\n" % state, "")
    code, output = kill_helper_during(
        host, """
            import subprocess, sys
            from vnic_drivers.simulate import hook_environment
            env = hook_environment(%r, {"provider_type": "OPENSTACK_NETWORK", "vnic_id": %r,
                                        "plugin_type": "OPEN_VSWITCH"}, {}, %r)
            for hook in %r:
                done = subprocess.run([sys.executable, hook], env=env, capture_output=True, text=True)
                sys.stdout.write(done.stderr)
                if done.returncode:
                    break
            sys.exit(done.returncode)
        """ % (path, port, VM, [os.path.join(REPO, "hooks", point)
                                for point in ("before_device_create", "after_device_create")]),
        # the helper added the port and waits for an agent
        lambda _pid: tap in box.ovs.vsctl("list-ports", "br-int").split(), restored)
    declined = "declined: plugging needs the vNIC's MAC" in helper.log()
    assert code == 0, output
    warnings = [line for line in output.splitlines() if "using sudo instead" in line]
    assert len(warnings) == 1 and "closed the connection without answering" in warnings[0], output
    assert declined
    assert box.ovs.vsctl("get", "Interface", tap, "external_ids:iface-id").strip().strip('"') == port
    assert box.ovs.vsctl("list-ports", "br-int").split().count(tap) == 1
    box.ovs.vsctl("del-port", "br-int", tap)
    box.delete_link(tap)


def _threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def test_helper_killed_in_a_whole_hook_the_hook_runs_it_through_sudo(host):
    """run_hook: the helper took an after_device_create (plain OVS, waiting for the agent)
    and is killed; the hook says so in one warning line and does it through sudo, without
    waiting for the helper again."""
    box, workdir, config, helper = host
    port = str(uuid.uuid4())
    tap = naming.tap_name(port)
    box.add_tap(tap, mtu=1500, mac=MAC)
    # What libvirt does for <virtualport type='openvswitch'>; no agent ever tags it.
    box.ovs.vsctl("add-port", "br-int", tap, "--", "set", "Interface", tap,
                  "external_ids:iface-id=%s" % port, "external_ids:attached-mac=%s" % MAC)
    text = open(config, encoding="utf-8").read()
    with open(config, "w", encoding="utf-8") as stream:
        stream.write(text.replace("[openvswitch]\n", "[openvswitch]\nwait_timeout = 4\n"))
    helper.reload()
    seen = {"start": time.monotonic()}

    def in_the_wait(pid):
        # Idle: the fewest threads in the first 0.15 s (a ping's connection thread may
        # still be ending; the hook process needs longer than that to connect). Then the
        # hook's connection has a thread of its own: kill 0.5 s into its 4 s agent wait.
        now, threads = time.monotonic(), _threads(pid)
        if now - seen["start"] < 0.15:
            seen["idle"] = min(seen.get("idle", threads), threads)
            return False
        if "since" not in seen and threads > seen["idle"]:
            seen["since"] = now
        return "since" in seen and now - seen["since"] > 0.5

    code, output = kill_helper_during(host, """
            import os, subprocess, sys
            env = {"PATH": os.environ["PATH"], "PYTHONPATH": os.environ["PYTHONPATH"],
                   "_hook_domxml": "/dev/null", "vmId": %r,
                   "provider_type": "OPENSTACK_NETWORK", "vnic_id": %r, "plugin_type": "OPEN_VSWITCH"}
            done = subprocess.run([sys.executable, %r], env=env, capture_output=True, text=True)
            sys.stdout.write(done.stderr)
            sys.exit(done.returncode)
        """ % (VM, port, os.path.join(REPO, "hooks", "after_device_create")), in_the_wait, text)
    assert code == 0, output
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert any("closed the connection without answering; using sudo instead" in line
               for line in warnings), output
    # ... then the sudo run's own verdict: the port is there, no agent wired it.
    assert any("has not wired it within 4s" in line for line in warnings), output
    assert len(warnings) == 2, output
    box.ovs.vsctl("del-port", "br-int", tap)
    box.delete_link(tap)


def run_hook_exchange(path, args):
    """A run_hook request as a hook sends it, as root; the raw answer bytes."""
    from vnic_drivers import vnic as vnic_module
    from vnic_drivers.helper import hook_client

    vnic = vnic_module.from_environment(args)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(path)
        sock.sendall(hook_client.request("after_device_destroy", vnic))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_run_hook_request_is_json_and_answer_is_frames(host):
    """The hand-written request is what json.dumps would send; the answer: accepted,
    bound, exit code 0 and the hook's INFO line."""
    _, _, _, helper = host
    from vnic_drivers import vnic as vnic_module
    from vnic_drivers.helper import hook_client

    environ = {"provider_type": "OPENSTACK_NETWORK", "vnic_id": PORT.upper(), "plugin_type": "OPEN_VSWITCH",
               "network_id": NETWORK, "security_groups": "default, web", "mtu": "1450", "vmId": VM}
    line = hook_client.request("after_device_destroy", vnic_module.from_environment(environ))
    assert json.loads(line) == {"op": "run_hook", "args": {
        "hook_point": "after_device_destroy", "port_id": PORT, "plugin_type": "OPEN_VSWITCH",
        "network_id": NETWORK, "security_groups": "default,web", "mtu": "1450", "vm_id": VM}}
    answer = run_hook_exchange(helper.socket, environ)
    assert answer[:1] == protocol.ACCEPTED
    (seconds,) = protocol.BOUND.unpack_from(answer, 1)
    code, length = protocol.RESULT.unpack_from(answer, 1 + protocol.BOUND.size)
    text = answer[1 + protocol.BOUND.size + protocol.RESULT.size:].decode()
    assert seconds >= 10 and code == 0 and len(text.encode()) == length
    assert text == ("quantum-vnic after_device_destroy: INFO: port %s unplugged (OVS ports removed: "
                    "none; devices removed: none)\n" % PORT), text


def test_run_hook_unplug_answers_the_hook_then_deletes_the_devices(host):
    """A whole after_device_destroy of a hybrid vNIC through run_hook: the hook gets its
    exit code and log once the OVS port is gone and qvo is down; the helper deletes the
    devices after that answer, under the port's lock."""
    box, _, _, helper = host
    port = str(uuid.uuid4())
    qbr, qvb, qvo = naming.hybrid_names(port)
    client.call(helper.socket, "ovs_hybrid_plug", {"port_id": port, "mac": MAC, "vm_id": None,
                                                   "mtu": None}, 30)
    environ = {"provider_type": "OPENSTACK_NETWORK", "vnic_id": port, "plugin_type": "OPEN_VSWITCH",
               "security_groups": "default", "vmId": VM}
    answer = run_hook_exchange(helper.socket, environ)
    code, _ = protocol.RESULT.unpack_from(answer, 1 + protocol.BOUND.size)
    text = answer[1 + protocol.BOUND.size + protocol.RESULT.size:].decode()
    assert code == 0 and "devices removed: %s, %s, %s" % (qvo, qvb, qbr) in text, text
    settled(helper.socket, port)
    assert not any(name[3:] == port[:11] for name in box.links())
    assert qvo not in box.ovs.vsctl("list-ports", "br-int").split()
    lines = [line for line in helper.log().splitlines() if "run_hook" in line and port in line]
    assert [("after the answer: done" in line, ": exit 0 (" in line) for line in lines] == \
        [(False, True), (True, False)], lines


@pytest.mark.parametrize("args, why", [
    ({"hook_point": "before_device_create", "port_id": PORT, "plugin_type": "OPEN_VSWITCH"},
     "not one the helper runs"),
    ({"hook_point": "after_device_destroy", "port_id": "../../etc", "plugin_type": "OPEN_VSWITCH"},
     "is not a UUID"),
    ({"hook_point": "after_device_destroy", "port_id": PORT, "plugin_type": "OPEN_VSWITCH", "shell": "x"},
     "unknown arguments shell"),
    ({"hook_point": "after_device_destroy", "port_id": PORT, "plugin_type": "OPEN_VSWITCH", "mtu": 9000},
     "mtu is not a string"),
])
def test_run_hook_declines_what_a_hook_does_not_send(host, args, why):
    _, _, _, helper = host
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(helper.socket)
        sock.sendall(protocol.encode({"op": "run_hook", "args": args}))
        assert sock.recv(16) == protocol.DECLINED
        assert sock.recv(16) == b""  # and closes
    assert "run_hook" in helper.log() and why in helper.log()


def test_ovsdb_restarted_under_the_helper(host):
    box, _, _, helper = host
    before = client.call(helper.socket, "ovs_host_identity", {}, 20)
    pid = helper.pid()
    box.ovs.stop("ovsdb-server")
    box.ovs.start_ovsdb_server()
    # The helper's connection is broken now: it reconnects and retries, the caller sees nothing.
    assert client.call(helper.socket, "ovs_host_identity", {}, 20) == before
    status = client.call(helper.socket, "ovs_port_status",
                         {"port_id": PORT, "hybrid": True, "wait": 0}, 20)
    assert status["exists"] is False
    assert helper.pid() == pid


def test_ovsdb_down_is_a_host_error_not_a_fallback(host):
    box, _, config, helper = host
    write_config(config, helper.socket, "unix:/nonexistent/db.sock")
    helper.reload()
    try:
        with pytest.raises(Exception) as failed:
            client.call(helper.socket, "ovs_host_identity", {}, 20)
    finally:
        write_config(config, helper.socket, box.ovs.remote)
        helper.reload()
    assert type(failed.value).__name__ == "HostError"
    assert "unreachable" in str(failed.value)


# --- concurrency -------------------------------------------------------------------------

def test_100_concurrent_clients_and_a_wait_blocks_nobody(host):
    box, _, _, helper = host
    waiter = str(uuid.uuid4())
    tap = naming.tap_name(waiter)
    # A port on the dead VLAN: ovs_port_status with a wait waits for an agent that never comes.
    box.ovs.vsctl("add-port", "br-int", tap, "tag=4095", "--", "set", "Interface", tap,
                  "type=internal", "external_ids:iface-id=%s" % waiter)
    try:
        result = as_vdsm_script(host, """
            import json, threading, time
            from vnic_drivers.helper import client
            path = %r
            done, errors = [], []
            def call(operation, args, timeout=30):
                try:
                    client.call(path, operation, args, timeout)
                    done.append((operation, time.monotonic()))
                except Exception as err:
                    errors.append("%%s: %%s: %%s" %% (operation, type(err).__name__, err))
            threads = [threading.Thread(target=call, args=("ovs_port_status",
                       {"port_id": %r, "hybrid": False, "wait": 4}))]
            threads[0].start()
            time.sleep(0.3)
            for i in range(100):
                operation, args = [("link_state", {"name": "lo"}), ("ovs_host_identity", {}),
                                   ("ovs_port_status", {"port_id": %r, "hybrid": True, "wait": 0})][i %% 3]
                threads.append(threading.Thread(target=call, args=(operation, args)))
            for thread in threads[1:]:
                thread.start()
            for thread in threads:
                thread.join()
            print(json.dumps({"done": done, "errors": errors}))
        """ % (helper.socket, waiter, PORT))
    finally:
        box.ovs.vsctl("del-port", "br-int", tap)
    assert result["errors"] == []
    assert len(result["done"]) == 101
    assert result["done"][-1][0] == "ovs_port_status"  # the waiter finished last
    waited_until = result["done"][-1][1]
    assert all(finished < waited_until for _, finished in result["done"][:-1])


def test_conflicting_changes_to_one_port_are_serialised(host):
    box, _, _, helper = host
    port = str(uuid.uuid4())
    result = as_vdsm_script(host, """
        import json, threading
        from vnic_drivers.helper import client
        results = []
        def plug():
            try:
                results.append(client.call(%r, "ovs_hybrid_plug",
                                           {"port_id": %r, "mac": %r, "vm_id": None, "mtu": None}, 30))
            except Exception as err:
                results.append("%%s: %%s" %% (type(err).__name__, err))
        threads = [threading.Thread(target=plug) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(json.dumps(results))
    """ % (helper.socket, port, MAC))
    assert all(isinstance(r, dict) for r in result), result
    # One of them made the devices; the others found them made.
    assert [bool(r["created"]) for r in result].count(True) == 1, result
    assert box.ovs.vsctl("list-ports", "br-int").split().count(naming.hybrid_names(port)[2]) == 1
    client.call(helper.socket, "ovs_unplug", {"port_id": port}, 30)
    settled(helper.socket, port)
    assert not any(name[3:] == port[:11] for name in box.links())


# --- lifetime -----------------------------------------------------------------------------

def test_sigterm_finishes_the_deletion_of_an_answered_unplug(host):
    box, workdir, _, _ = host
    config = os.path.join(workdir, "shared", "term.conf")
    term = Helper(workdir, box.name, config, name="term")
    write_config(config, term.socket, box.ovs.remote)
    term.start()
    port = str(uuid.uuid4())
    try:
        client.call(term.socket, "ovs_hybrid_plug", {"port_id": port, "mac": MAC, "vm_id": None,
                                                     "mtu": None}, 30)
        pid = term.pid()
        client.call(term.socket, "ovs_unplug", {"port_id": port}, 30)
        os.kill(pid, signal.SIGTERM)  # while the deletion runs, or just after
        term.process.wait(timeout=30)
    finally:
        term.stop()
    assert not any(name[3:] == port[:11] for name in box.links())
    assert 'ovs_unplug port_id="%s": after the answer: done' % port in term.log()


def test_exits_when_idle(host):
    """... and not before an answered unplug's deletion is done."""
    box, workdir, _, _ = host
    config = os.path.join(workdir, "shared", "idle.conf")
    idle = Helper(workdir, box.name, config, name="idle")
    write_config(config, idle.socket, box.ovs.remote, idle_timeout="1")
    idle.start()
    port = str(uuid.uuid4())
    try:
        assert idle.ping()["uid"] == 0
        client.call(idle.socket, "ovs_hybrid_plug", {"port_id": port, "mac": MAC, "vm_id": None,
                                                     "mtu": None}, 30)
        client.call(idle.socket, "ovs_unplug", {"port_id": port}, 30)
        deadline = time.monotonic() + 20
        while "idle for 1s: exiting" not in idle.log():
            assert time.monotonic() < deadline, idle.log()
            time.sleep(0.1)
        with pytest.raises(client.Unavailable):  # systemd would start it again; this stand-in does not
            client.call(idle.socket, "ping", {}, 2)
    finally:
        idle.stop()
    assert not any(name[3:] == port[:11] for name in box.links())
    log = idle.log()
    assert log.index('ovs_unplug port_id="%s": after the answer: done' % port) < log.index("exiting")


def test_doctor_checks_the_helper(host):
    """ok at the default socket path; at another path a warning: after_* hooks look at
    the default path before they read the config."""
    box, workdir, config, helper = host
    from vnic_drivers.helper import DEFAULT_SOCKET

    at_default = os.path.join(workdir, "shared", "default-socket.conf")
    with open(config, encoding="utf-8") as stream:
        text = stream.read()
    with open(at_default, "w", encoding="utf-8") as stream:
        stream.write(text.replace("socket = %s\n" % helper.socket, "socket = %s\n" % DEFAULT_SOCKET))
    os.chmod(at_default, 0o644)
    results = {}
    for name, path in (("private", config), ("default", at_default)):
        done = as_vdsm.run_as_vdsm(workdir, [sys.executable, "-c", textwrap.dedent("""
            import argparse, json, sys
            sys.path.insert(0, %r)
            from vnic_drivers import doctor
            parser = argparse.ArgumentParser()
            doctor.add_arguments(parser)
            ctx = doctor.Context(parser.parse_args(["--config", %r]))
            result = doctor.check_helper(ctx)
            print(json.dumps(result.as_dict("helper")))
        """ % (REPO, path))], netns=box.name, as_root=True, config=path, helper_socket=helper.socket)
        assert done.returncode == 0, done.stderr
        results[name] = json.loads(done.stdout)
    assert results["default"]["status"] == "ok", results
    assert "answers vdsm on %s" % DEFAULT_SOCKET in results["default"]["message"]
    assert results["private"]["status"] == "warn", results
    assert "look for it at %s before they read the config" % DEFAULT_SOCKET in results["private"]["message"]


def test_sighup_with_a_bad_config_keeps_the_running_one(host):
    box, _, config, helper = host
    with open(config, encoding="utf-8") as stream:
        good = stream.read()
    with open(config, "w", encoding="utf-8") as stream:
        stream.write(good + "[helper]\nno_such_option = 1\n")
    try:
        before = helper.log().count("reload refused")
        os.kill(helper.pid(), signal.SIGHUP)
        deadline = time.monotonic() + 10
        while helper.log().count("reload refused") == before:
            assert time.monotonic() < deadline, helper.log()[-2000:]
            time.sleep(0.05)
        # Operations still take the OVSDB remote from the config that was running.
        assert client.call(helper.socket, "ovs_port_status",
                           {"port_id": PORT, "hybrid": True, "wait": 0}, 20)["exists"] is False
    finally:
        with open(config, "w", encoding="utf-8") as stream:
            stream.write(good)
        helper.reload()

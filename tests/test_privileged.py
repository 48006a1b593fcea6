"""The privileged entry point: the only way into the kernel and OVSDB, trusting nothing.

The entry point runs as its own process exactly as sudo starts it: an operation name in
argv, a JSON object on stdin; it must refuse (exit 2, one line, nothing on stdout, no
host access) unknown operations and every malformed argument, and an OVSDB remote or a
bridge from the caller (those come from its own config). Then the real sudo path: a
process of the user ``vdsm`` under the packaged sudoers drop-in (``tests/as_vdsm.py``)
reaches the entry point, and nothing else, and cannot pass its environment through: the
root process reads its config at ``/etc/vdsm/quantum_vnic.conf`` whatever vdsm sets.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests import as_vdsm
from tests.conftest import PORT_ID
from tests.vdsm import REPO
from vnic_drivers.errors import InputError
from vnic_drivers.host import privileged

ENTRY = [sys.executable, "-m", "vnic_drivers.host.privileged"]

# The first of these an argument's validator accepts is its well-formed sample; this
# works for validators added later without a table to keep up to date.
CANDIDATES = [PORT_ID, "tap0a1b2c3d-4e", "brq7c9d1e2f-3a", "qbr0a1b2c3d-4e", "qvb0a1b2c3d-4e",
              "qvo0a1b2c3d-4e", "br-int", "00:1a:4a:16:01:51", 1500, 0, False]
# Values every argument of every operation must refuse.
HOSTILE = ["", "tap0; reboot", "$(reboot)", "../../etc/passwd", "a\nb", "x" * 5000,
           {}, [], 10 ** 9]
BAD_NAMES = ["", "x" * 16, "tap0; reboot", "../../etc", "eth0\n", " eth0", "-rf", "eth0/1",
             "ta p", "é0", ";vdsmdummy;", 5, None, ["lo"], {"name": "lo"}]
BAD_IDS = ["0a1b2c3d", PORT_ID + "0", PORT_ID.replace("-", ""), PORT_ID[:-1] + "z",
           "' or 1=1 --", PORT_ID + ";reboot", 42, None]


# The entry point with *config* selected in-process, as a hook running as root selects
# its --config for the privileged side; the installed entry point takes no config at all
# (through sudo it reads /etc/vdsm/quantum_vnic.conf, whatever the caller's argv or env).
ENTRY_WITH_CONFIG = [sys.executable, "-c", "import sys; from vnic_drivers import config; "
                     "config.select(sys.argv.pop(1)); from vnic_drivers.host.privileged import main; "
                     "sys.exit(main())"]


def entry(argv, stdin="{}", netns=None, config=None):
    """Run the entry point as a process (in *netns*, reading *config*);
    (exit code, stdout, stderr lines)."""
    command = ENTRY + list(argv) if not config else ENTRY_WITH_CONFIG + [config] + list(argv)
    command = (["ip", "netns", "exec", netns] if netns else []) + command
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run(command, input=stdin, env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    return done.returncode, done.stdout, done.stderr.strip().splitlines()


def assert_refused(result, *needles):
    code, stdout, lines = result
    assert code == 2, result
    assert stdout == "", result
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    for needle in needles:
        assert needle in lines[0], lines[0]


def sample(validate, param):
    for candidate in CANDIDATES:
        try:
            validate(candidate, param)
        except InputError:
            continue
        return candidate
    raise AssertionError("no well-formed sample for %s; add one to CANDIDATES" % param)


def good_args(name):
    return {param: sample(validate, param)
            for param, validate in privileged.OPERATIONS[name].params.items()}


def accepts(validate, value, param="value"):
    try:
        validate(value, param)
    except InputError:
        return False
    return True


def params_of_kind(value):
    """(operation, param) pairs whose validator accepts *value*."""
    return [(name, param) for name, operation in sorted(privileged.OPERATIONS.items())
            for param, validate in operation.params.items() if accepts(validate, value)]


ALL_PARAMS = [(name, param) for name, op in sorted(privileged.OPERATIONS.items()) for param in op.params]


@pytest.mark.parametrize("operation", ["no_such_op", "", "LINK_STATE", "link_state;id",
                                       "link_state ", "__class__", "../privileged", "run", "main"])
def test_unknown_operations_are_refused(operation):
    assert_refused(entry([operation]), "unknown privileged operation", "known:")


@pytest.mark.parametrize("argv,stdin,needle", [
    ([], "{}", "usage"),
    (["link_state", "extra"], "{}", "usage"),
    (["link_state"], "not json", "not JSON"),
    (["link_state"], '["lo"]', "must be a JSON object"),
    (["link_state"], '"lo"', "must be a JSON object"),
    (["link_state"], '{"name": "lo", "netns": "/proc/1/ns/net"}', "unknown argument netns"),
    (["link_state"], "{}", "argument name is missing"),
    (["link_state"], "[" * 5000 + "]" * 5000, "nest deeper than 64 levels"),
    (["link_state"], '{"name": ' + "[" * 20000 + "]" * 20000 + "}", "nest deeper than 64 levels"),
    (["link_state"], '{"name": "lo", "pad": "' + "x" * (2 << 20) + '"}', "larger than 65536 bytes"),
], ids=lambda value: repr(value)[:40])  # short: pytest puts the id in every child's environment
def test_protocol_errors_are_refused(argv, stdin, needle):
    assert_refused(entry(argv, stdin), needle)


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_entry_point_refuses_malformed_device_names(name):
    assert_refused(entry(["link_state"], json.dumps({"name": name})), "name=")


@pytest.mark.parametrize("operation,param", params_of_kind(PORT_ID))
def test_entry_point_refuses_malformed_ids(operation, param):
    optional = accepts(privileged.OPERATIONS[operation].params[param], None)
    for bad in BAD_IDS:
        if bad is None and optional:
            continue  # an optional id may be absent
        args = dict(good_args(operation), **{param: bad})
        assert_refused(entry([operation], json.dumps(args)), param)


@pytest.mark.parametrize("operation,param", ALL_PARAMS)
def test_every_argument_refuses_hostile_values(operation, param):
    args = good_args(operation)
    privileged.OPERATIONS[operation].validate(operation, args)
    for bad in HOSTILE:
        with pytest.raises(InputError) as caught:
            privileged.OPERATIONS[operation].validate(operation, dict(args, **{param: bad}))
        assert param in str(caught.value) and "\n" not in str(caught.value)


CONFIGURED = [name for name, op in sorted(privileged.OPERATIONS.items()) if op.configured]


def test_ovs_operations_take_remote_and_bridge_from_config_only():
    assert CONFIGURED == ["cleanup_inventory", "cleanup_remove", "linux_bridge_plug", "ovs_attach_tap",
                          "ovs_host_identity", "ovs_hybrid_plug", "ovs_port_status", "ovs_unplug"]
    assert privileged.OPERATIONS["linux_bridge_plug"].configured \
        == {"dummy_bridge": ("linux_bridge", "dummy_bridge")}
    for name in CONFIGURED:
        if name == "linux_bridge_plug":
            continue
        operation = privileged.OPERATIONS[name]
        assert not {"ovsdb_remote", "bridge"} & set(operation.params), name
        assert operation.configured["ovsdb_remote"] == ("openvswitch", "ovsdb")
        assert operation.configured.get("bridge", ("openvswitch", "integration_bridge")) \
            == ("openvswitch", "integration_bridge")


@pytest.mark.parametrize("operation", CONFIGURED)
@pytest.mark.parametrize("param,value", [("ovsdb_remote", "unix:/var/run/openvswitch/db.sock"),
                                         ("ovsdb_remote", "tcp:127.0.0.1:6640"),
                                         ("bridge", "br-int"), ("bridge", "br-ex"),
                                         ("dummy_bridge", "br-host"), ("tap", "tap0")])
def test_caller_cannot_choose_the_remote_or_the_bridge(operation, param, value):
    """Even well-formed: which OVSDB root talks to, which bridge it plugs into or takes a
    tap off, which device it touches, is not an argument."""
    args = dict(good_args(operation), **{param: value})
    assert_refused(entry([operation], json.dumps(args)), "unknown argument %s" % param)


def test_config_that_does_not_load_is_one_line(tmp_path):
    broken = tmp_path / "quantum_vnic.conf"
    broken.write_text("[openvswitch]\novsdb = file:/etc/passwd\n")
    code, stdout, lines = entry(["ovs_host_identity"], config=str(broken))
    assert (code, stdout) == (1, "")  # the host's config, not the caller's input
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert lines[0].startswith("privileged side: config %s: [openvswitch] ovsdb" % broken), lines[0]
    # Input is refused before the config is read; operations without config never read it.
    assert_refused(entry(["ovs_unplug"], '{"port_id": "x"}', config=str(broken)), "port_id=")
    assert entry(["link_state"], '{"name": "lo"}', config=str(broken))[0] == 0


def test_refusal_happens_before_any_host_access():
    """No implementation module (pyroute2, ovs) is even imported for refused input."""
    script = textwrap.dedent("""
        import json, sys
        from vnic_drivers.errors import InputError
        from vnic_drivers.host import privileged
        cases = json.loads(sys.stdin.read())
        for operation, args in cases:
            try:
                privileged.run(operation, args)
            except InputError:
                continue
            sys.exit("ran %s with %r" % (operation, args))
        loaded = [m for m in sys.modules if m.split(".")[0] in ("pyroute2", "ovs")
                  or m.startswith(("vnic_drivers.host.netlink", "vnic_drivers.host.ovsdb"))]
        print(json.dumps(loaded))
    """)
    cases = [("no_such_op", {})]
    for operation, param in ALL_PARAMS:
        cases += [(operation, dict(good_args(operation), **{param: bad})) for bad in HOSTILE]
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(cases),
                          env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_well_formed_call_runs(netns):
    code, stdout, lines = entry(["link_state"], '{"name": "lo"}', netns=netns)
    assert (code, lines) == (0, [])
    assert json.loads(stdout)["exists"] is True
    code, stdout, _ = entry(["link_state"], '{"name": "tap0a1b2c3d-4e"}', netns=netns)
    assert code == 0 and json.loads(stdout) == {"name": "tap0a1b2c3d-4e", "exists": False}


# --- the real sudo boundary, as the user vdsm ------------------------------------------

def run_as_vdsm(workdir, script, env=None, netns=None, config=None):
    """Run the Python *script* as vdsm with this checkout importable; returns its JSON.

    *config* is what the root process finds at /etc/vdsm/quantum_vnic.conf (default:
    an OVSDB remote where nothing listens).
    """
    path = os.path.join(workdir, "shared", "script.py")
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(textwrap.dedent(script))
    os.chmod(path, 0o644)
    env = dict(env or os.environ, PYTHONPATH=REPO)
    done = as_vdsm.run_as_vdsm(workdir, [sys.executable, path], env=env, netns=netns, config=config)
    if done.returncode == as_vdsm.CANNOT:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_hook_side_reaches_the_entry_point_through_sudo(vdsm_workdir, netns):
    result = run_as_vdsm(vdsm_workdir, """
        import json, os
        from vnic_drivers import host
        from vnic_drivers.errors import InputError
        connection = host.connect()
        try:
            connection.call("link_state", name="lo; reboot")
            refused = None
        except InputError as err:
            refused = str(err)
        print(json.dumps({"uid": os.getuid(), "mode": connection.mode,
                          "lo": connection.call("link_state", name="lo"), "refused": refused}))
    """, netns=netns)
    assert result["uid"] != 0
    assert result["mode"] == "sudo"
    assert result["lo"]["exists"] is True
    assert "name=" in result["refused"]


def test_sudo_allows_the_entry_point_and_nothing_else(vdsm_workdir):
    result = run_as_vdsm(vdsm_workdir, """
        import json, subprocess
        PRIVILEGED = %r
        def rc(argv, stdin="{}"):
            done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
            return [done.returncode, done.stderr.strip().splitlines()[-1:]]
        print(json.dumps({
            "other command": rc(["sudo", "-n", "/usr/bin/id"]),
            "a shell": rc(["sudo", "-n", "/bin/sh", "-c", "id"]),
            "other user": rc(["sudo", "-n", "-u", "nobody", PRIVILEGED, "link_state"]),
            "set env": rc(["sudo", "-n", "PYTHONPATH=/tmp", PRIVILEGED, "link_state"]),
            "preserve env": rc(["sudo", "-n", "-E", PRIVILEGED, "link_state"]),
            "unknown operation": rc(["sudo", "-n", PRIVILEGED, "reboot"]),
            "bad name": rc(["sudo", "-n", PRIVILEGED, "link_state"], '{"name": "lo; reboot"}'),
            "own remote": rc(["sudo", "-n", PRIVILEGED, "ovs_host_identity"],
                             '{"ovsdb_remote": "unix:/run/user/36/evil.sock"}'),
            "own bridge": rc(["sudo", "-n", PRIVILEGED, "ovs_unplug"],
                             '{"port_id": "%s", "bridge": "br-ex"}'),
            "deep json": rc(["sudo", "-n", PRIVILEGED, "link_state"], "[" * 10000 + "]" * 10000),
            "huge json": rc(["sudo", "-n", PRIVILEGED, "link_state"], " " * (1 << 20) + "{}"),
            "listed": subprocess.run(["sudo", "-n", "-l"], capture_output=True, text=True).stdout,
        }))
    """ % (as_vdsm.PRIVILEGED, PORT_ID))
    for refused_by_sudo in ("other command", "a shell", "other user", "set env", "preserve env"):
        code, message = result[refused_by_sudo]
        assert code not in (0, 2) and message[0].startswith("sudo:"), (refused_by_sudo, message)
    # These reached the entry point, which refused them itself (exit 2).
    assert result["unknown operation"][0] == 2, result["unknown operation"]
    assert result["bad name"][0] == 2 and "name=" in result["bad name"][1][0]
    assert result["own remote"] == [2, ["operation ovs_host_identity: unknown argument ovsdb_remote"]]
    assert result["own bridge"] == [2, ["operation ovs_unplug: unknown argument bridge"]]
    assert result["deep json"][0] == 2 and "nest deeper than 64" in result["deep json"][1][0]
    assert result["huge json"] == [2, ["quantum-vnic-privileged: arguments are larger than 65536 "
                                       "bytes: refused"]]
    listed = result["listed"].split("may run the following commands", 1)[1].splitlines()[1:]
    commands = [line.strip() for line in listed if line.strip()]
    assert commands == ["(root) NOPASSWD: %s" % as_vdsm.PRIVILEGED], result["listed"]


def test_caller_environment_does_not_reach_the_root_process(vdsm_workdir, netns):
    """A PYTHONPATH with a sitecustomize runs in vdsm's processes, never in root's."""
    evil = os.path.join(vdsm_workdir, "evil")
    os.mkdir(evil)
    marker = os.path.join(vdsm_workdir, "shared", "ran-as")
    with open(os.path.join(evil, "sitecustomize.py"), "w", encoding="utf-8") as stream:
        stream.write("import os\nwith open(%r, 'a') as f:\n    f.write('%%d\\n' %% os.getuid())\n" % marker)
    os.chmod(evil, 0o755)
    result = run_as_vdsm(vdsm_workdir, """
        import json, os, subprocess, sys
        env = dict(os.environ, PYTHONPATH=%r + os.pathsep + os.environ["PYTHONPATH"])
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        done = subprocess.run(["sudo", "-n", %r, "link_state"], input='{"name": "lo"}',
                              env=env, capture_output=True, text=True)
        print(json.dumps({"rc": done.returncode, "stdout": done.stdout, "uid": os.getuid()}))
    """ % (evil, as_vdsm.PRIVILEGED), netns=netns)
    assert result["rc"] == 0 and json.loads(result["stdout"])["exists"] is True
    with open(marker, encoding="utf-8") as stream:
        ran_as = stream.read().split()
    assert ran_as == [str(result["uid"])]  # the control ran it; the root process did not


def write_config(path, text):
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.chmod(path, 0o644)  # the hooks (vdsm) read it too
    return path


def test_root_process_reads_its_own_config_not_the_callers(vdsm_workdir):
    """Through sudo, OVSDB is the one in root's /etc/vdsm/quantum_vnic.conf, whatever vdsm sets."""
    from tests import ovs_fixture

    reason = ovs_fixture.skip_reason(vswitchd=False)
    if reason:
        pytest.skip(reason)
    shared = os.path.join(vdsm_workdir, "shared")
    system_id = "5a2c0e3e-8c3d-4f5e-9a1b-2c3d4e5f6a7b"
    os.mkdir(os.path.join(vdsm_workdir, "ovs"))
    with ovs_fixture.private_ovs(os.path.join(vdsm_workdir, "ovs"), vswitchd=False) as ovs:
        ovs.vsctl("set", "Open_vSwitch", ".", "external_ids:system-id=" + system_id)
        root_config = write_config(os.path.join(vdsm_workdir, "root.conf"),
                                   "[openvswitch]\novsdb = %s\n" % ovs.remote)
        callers = write_config(os.path.join(shared, "callers.conf"),
                               "[openvswitch]\novsdb = unix:%s/callers.sock\n" % shared)
        script = """
            import json, os, subprocess
            def identity(env):
                done = subprocess.run(["sudo", "-n", %r, "ovs_host_identity"], input="{}",
                                      env=env, capture_output=True, text=True)
                return [done.returncode, done.stdout, done.stderr.strip()]
            print(json.dumps({"own": identity(dict(os.environ, QUANTUM_VNIC_CONF=%r)),
                              "plain": identity(dict(os.environ))}))
        """ % (as_vdsm.PRIVILEGED, callers)
        result = run_as_vdsm(vdsm_workdir, script, config=root_config)
        # Without a config of the test's, the harness's names a socket where nothing listens.
        unconfigured = run_as_vdsm(vdsm_workdir, script)
    for answer in result.values():
        assert answer[0] == 0 and json.loads(answer[1]) == {"system-id": system_id}, answer
    assert unconfigured["own"] == unconfigured["plain"]  # the caller's file changes nothing
    code, stdout, stderr = unconfigured["plain"]
    assert (code, stdout) == (1, "") and as_vdsm.NO_OVSDB in stderr and "unreachable" in stderr
    assert "/var/run/openvswitch" not in stderr


def test_hooks_run_as_vdsm_wire_both_plugins_through_sudo(vdsm_workdir):
    """The real hooks as VDSM runs them (user vdsm) change the host only through sudo."""
    from vnic_drivers import demo, sandbox
    from vnic_drivers.naming import linux_bridge_name

    if "linux_bridge_plug" not in privileged.OPERATIONS:
        pytest.skip("needs the Linux Bridge plug operation (branch lb)")
    reason = sandbox.missing_requirements()
    if reason:
        pytest.skip(reason)
    shared = os.path.join(vdsm_workdir, "shared")
    with sandbox.Sandbox("qvnic-sudo") as box:
        box.start_ovs()
        box.add_bridge(";vdsmdummy;")
        box.add_bridge(linux_bridge_name(demo.NETWORK_ID))
        # /etc/vdsm/quantum_vnic.conf for both sides, as on a host: the hooks (vdsm) read
        # it for the XML, the root process for the OVSDB remote and the bridge.
        config = write_config(os.path.join(shared, "quantum_vnic.conf"),
                              "[openvswitch]\novsdb = %s\n" % box.ovs.remote)
        vnics = demo.demo_vnics()

        def hooks_as_vdsm(hook_point):
            """Run *hook_point* for every vNIC as vdsm; [(exit code, stderr)]."""
            calls = []
            for vnic in vnics:
                path = os.path.join(shared, "domxml-" + vnic.tap)
                with open(path, "wb") as stream:
                    stream.write(vnic.xml)
                os.chown(path, as_vdsm.vdsm_uid(), as_vdsm.vdsm_uid())  # VDSM's own temp file
                calls.append((os.path.join(REPO, "hooks", hook_point), path, vnic.properties))
            results = run_as_vdsm(vdsm_workdir, """
                import json, os, subprocess, sys
                from vnic_drivers.simulate import hook_environment
                results = []
                for hook, path, properties in %r:
                    env = hook_environment(path, properties, {}, %r)
                    env.pop("QUANTUM_VNIC_CONF", None)  # VDSM sets none: /etc/vdsm/quantum_vnic.conf
                    done = subprocess.run([sys.executable, hook], env=env, capture_output=True, text=True)
                    results.append((done.returncode, done.stderr))
                print(json.dumps({"uid": os.getuid(), "results": results}))
            """ % (calls, demo.VM_ID), netns=box.name, config=config)
            assert results["uid"] != 0
            for vnic, (code, stderr) in zip(vnics, results["results"]):
                assert code == 0, (hook_point, vnic.plugin, stderr)
            for vnic, (_, path, _) in zip(vnics, calls):  # VDSM reads the device back
                with open(path, "rb") as stream:
                    vnic.xml = stream.read()

        hooks_as_vdsm("before_device_create")
        for vnic in vnics:
            demo.libvirt_create(box, vnic)
        hooks_as_vdsm("after_device_create")
        links = box.links()
        lb, ovs = vnics
        assert links[lb.tap]["master"] == linux_bridge_name(demo.NETWORK_ID)  # moved off ;vdsmdummy;
        assert ovs.tap in box.ovs.vsctl("list-ports", "br-int").split()

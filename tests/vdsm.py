"""A stand-in for the part of VDSM that runs a device hook (used by the tests only).

It passes what VDSM (``../shared/vdsm/README.md``) passes: the device XML in a temp file
named by ``_hook_domxml``, **an empty file** at ``after_device_create`` and (for a VM
started on this host, whose NIC was never hot-plugged or updated) ``after_device_destroy``;
an environment made of VDSM's own, then the device's custom properties, then the VM's
over them, then ``vmId`` and ``_hook_domxml``; the hook executable as its own process with
no argument of VDSM's (optionally inside a network namespace, as it would run in the
host's), and the file read back afterwards.

What VDSM does not pass, and a test needs, goes where a custom property cannot reach it:
the hook's argv. *config* (ini text) becomes a file given as ``--config FILE``; it gets
``[hook] state_dir`` (this test process's own temp dir), ``libvirt_uri = test:///default``
and ``agent_config_root`` (an empty dir) unless it sets them, so no test reads or writes
the machine's ``/run/vdsm``, libvirt or Neutron config. *dry_run* adds ``--dry-run``.
"""

import atexit
import configparser
import io
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOKS_DIR = os.path.join(REPO, "hooks")
EXAMPLE_VM_ID = "d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de"

# Hook points where VDSM passes no device XML (an empty file) for a VM it started.
EMPTY_FILE_HOOK_POINTS = ("after_device_create", "after_device_destroy")

_SCRATCH = tempfile.mkdtemp(prefix="qvnic-vdsm-")
atexit.register(shutil.rmtree, _SCRATCH, True)
# Records the before_* points leave for the after_* ones, shared by the test process.
STATE_DIR = os.path.join(_SCRATCH, "state")
NO_AGENT_CONFIG = os.path.join(_SCRATCH, "agent-root")
os.mkdir(NO_AGENT_CONFIG)
TEST_DEFAULTS = {"state_dir": STATE_DIR, "libvirt_uri": "test:///default",
                 "agent_config_root": NO_AGENT_CONFIG}


class HookRun:
    def __init__(self, returncode, stderr, before, after):
        self.returncode = returncode
        self.stderr = stderr
        self.before = before
        self.after = after

    @property
    def changed(self):
        return self.before != self.after

    def __repr__(self):
        return "HookRun(rc=%d, stderr=%r)" % (self.returncode, self.stderr)


def test_config(config=None):
    """*config* (ini text, or None) with this suite's [hook] defaults added where unset."""
    parser = configparser.ConfigParser(interpolation=None, default_section="__no_default__")
    try:
        parser.read_string(config or "")
    except configparser.Error:
        return config  # a test of a broken file: the hook must see it as it is
    if not parser.has_section("hook"):
        parser.add_section("hook")
    for option, value in TEST_DEFAULTS.items():
        if not parser.has_option("hook", option):
            parser.set("hook", option, value)
    text = io.StringIO()
    parser.write(text)
    return text.getvalue()


def hook_argv(config_path, dry_run=False):
    """The hook's own controls, as arguments (never the environment: see hook_main.Options)."""
    return ["--config", config_path] + (["--dry-run"] if dry_run else [])


def vdsm_environment(properties, vm_properties, vm_id, path, variable="_hook_domxml", base=None):
    """The environment VDSM builds: its own, device properties, VM properties, vmId, file."""
    env = {key: value for key, value in (os.environ if base is None else base).items()
           if not key.startswith("_hook_")}
    env.update(properties)
    env.update(vm_properties or {})
    if vm_id:
        env["vmId"] = vm_id
    env[variable] = path
    return env


def run_hook(hook_point, xml, properties, vm_properties=None, vm_id=EXAMPLE_VM_ID,
             config=None, netns=None, extra_env=None, timeout=120, variable="_hook_domxml",
             dry_run=False, device_xml_known=False, hook_args=None):
    """Run ``hooks/<hook_point>`` on *xml* (bytes or str) as VDSM would.

    *variable* names the file for the hook: ``_hook_json`` for JSON hook points such as
    ``after_get_caps`` (*xml* is then the JSON text). At ``after_device_create`` and
    ``after_device_destroy`` the file is empty, as VDSM leaves it, unless
    *device_xml_known* (``after_device_destroy`` of a hot-plugged or updated NIC).
    *extra_env* is part of VDSM's own environment (custom properties go over it).
    *hook_args* replaces the ``--config``/``--dry-run`` arguments.
    """
    if xml is None or (hook_point in EMPTY_FILE_HOOK_POINTS and not device_xml_known):
        xml = b""
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    base = dict(os.environ)
    base.update(extra_env or {})
    # Import the package from this checkout, whatever is installed.
    base["PYTHONPATH"] = REPO + os.pathsep + base.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="vdsm-hook-") as workdir:
        path = os.path.join(workdir, "domxml")
        with open(path, "wb") as stream:
            stream.write(xml)
        env = vdsm_environment(properties, vm_properties, vm_id, path, variable, base)
        config_path = os.path.join(workdir, "quantum_vnic.conf")
        with open(config_path, "w", encoding="utf-8") as stream:
            stream.write(test_config(config))
        argv = [sys.executable, os.path.join(HOOKS_DIR, hook_point)]
        argv += hook_argv(config_path, dry_run) if hook_args is None else list(hook_args)
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        with open(path, "rb") as stream:
            after = stream.read()
    return HookRun(done.returncode, done.stderr, xml, after)

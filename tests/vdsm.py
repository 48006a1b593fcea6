"""A stand-in for the part of VDSM that runs a device hook (used by the tests only).

Like VDSM: the device XML goes to a temp file named by ``_hook_domxml``, the custom
properties into the environment (VM properties override device ones), ``vmId`` is set,
the hook executable runs as its own process (optionally inside a network namespace, as
it would run in the host's), and the file is read back afterwards.
"""

import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOKS_DIR = os.path.join(REPO, "hooks")
EXAMPLE_VM_ID = "d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de"


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


def run_hook(hook_point, xml, properties, vm_properties=None, vm_id=EXAMPLE_VM_ID,
             config=None, netns=None, extra_env=None, timeout=120, variable="_hook_domxml"):
    """Run ``hooks/<hook_point>`` on *xml* (bytes or str) as VDSM would.

    *variable* names the file for the hook: ``_hook_json`` for JSON hook points such as
    ``after_get_caps`` (*xml* is then the JSON text).
    """
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("_hook_")}
    env.pop("QUANTUM_VNIC_CONF", None)
    with tempfile.TemporaryDirectory(prefix="vdsm-hook-") as workdir:
        path = os.path.join(workdir, "domxml")
        with open(path, "wb") as stream:
            stream.write(xml)
        env.update(properties)
        env.update(vm_properties or {})
        env["vmId"] = vm_id
        env[variable] = path
        if config is not None:
            config_path = os.path.join(workdir, "quantum_vnic.conf")
            with open(config_path, "w", encoding="utf-8") as stream:
                stream.write(config)
            env["QUANTUM_VNIC_CONF"] = config_path
        # Import the package from this checkout, whatever is installed.
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        env.update(extra_env or {})
        argv = [sys.executable, os.path.join(HOOKS_DIR, hook_point)]
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        with open(path, "rb") as stream:
            after = stream.read()
    return HookRun(done.returncode, done.stderr, xml, after)

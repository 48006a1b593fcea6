"""``quantum-vnic simulate``: runs a hook as VDSM would and reports what it did."""

import os
import subprocess
import sys

from tests.vdsm import REPO

EXAMPLE = os.path.join(REPO, "examples", "linux_bridge_vnic.xml")
PROPS = ["-p", "provider_type=OPENSTACK_NETWORK", "-p", "plugin_type=LINUX_BRIDGE",
         "-p", "vnic_id=0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"]


def simulate(*args):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "vnic_drivers.cli", "simulate"] + list(args),
                          capture_output=True, text=True, env=env, cwd=REPO)


def test_prints_rewritten_xml_and_exit_code():
    with open(EXAMPLE, "rb") as stream:
        original = stream.read()
    done = simulate("before_device_create", "--domxml", EXAMPLE, "--dry-run", *PROPS)
    assert done.returncode == 0, done.stderr
    assert '<target dev="tap0a1b2c3d-4e"/>' in done.stdout
    assert "exit 0 (success); device XML rewritten" in done.stderr
    with open(EXAMPLE, "rb") as stream:
        assert stream.read() == original  # the admin's file is never touched


def test_vm_property_overrides_and_failure_code_passes_through():
    done = simulate("before_device_create", "--domxml", EXAMPLE, "--dry-run", *PROPS,
                    "--vm-property", "plugin_type=NOPE")
    assert done.returncode == 2
    assert "plugin_type='NOPE' is not supported" in done.stderr
    assert "exit 2 (failed, VDSM stops); device XML unchanged" in done.stderr


def test_config_option_is_used(tmp_path):
    config = tmp_path / "q.conf"
    # state_dir: the MAC record of a real (not dry) run stays in the test's directory.
    config.write_text("[linux_bridge]\nmode = ethernet\n[hook]\nstate_dir = %s\n" % (tmp_path / "state"))
    done = simulate("before_device_create", "--domxml", EXAMPLE, "--config", str(config), *PROPS)
    assert done.returncode == 0, done.stderr
    assert '<interface type="ethernet">' in done.stdout


def test_bad_arguments_are_one_line_errors(tmp_path):
    done = simulate("before_device_create", "--domxml", EXAMPLE, "-p", "novalue")
    assert done.returncode != 0 and "expected KEY=VALUE" in done.stderr
    done = simulate("before_device_create", "--domxml", str(tmp_path / "missing.xml"), *PROPS)
    assert done.returncode == 2 and "cannot read" in done.stderr and "Traceback" not in done.stderr

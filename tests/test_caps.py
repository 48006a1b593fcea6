"""``after_get_caps``: the binding host ids the agents bind ports by, from real config files.

The hook runs as VDSM runs it (the capabilities JSON in the file named by
``$_hook_json``, read back afterwards); the agents' config files are real files in the
layouts Neutron and Quantum install, below a temp dir given as ``[hook] agent_config_root``.
No OVS is needed: the value is the agents' ``host``, not anything in OVSDB.
"""

import json
import os
import socket

import pytest

from tests.vdsm import run_hook
from vnic_drivers import binding_host, config as config_module

KEY = "openstack_binding_host_ids"
CAPS = {"kvmEnabled": "true", "cpuCores": "2", KEY: {"OVN": "5a2c0e3e-8c3d-4f5e-9a1b-2c3d4e5f6a7b"}}
HOSTNAME = socket.gethostname()

OVS_INI = "etc/neutron/plugins/ml2/openvswitch_agent.ini"
LB_INI = "etc/neutron/plugins/ml2/linuxbridge_agent.ini"


def write(root, relative, text):
    path = os.path.join(str(root), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(text)
    return path


def get_caps(root, caps=None, extra_config=""):
    text = json.dumps(CAPS if caps is None else caps)
    run = run_hook("after_get_caps", text, {}, config="[hook]\nagent_config_root = %s\n%s" % (root, extra_config),
                   variable="_hook_json")
    return run, json.loads(run.after) if run.after.strip().startswith(b"{") else None


def ids(root, **extra):
    config = config_module._build({"hook": dict(agent_config_root=str(root), **extra)}, "/etc/vdsm/quantum_vnic.conf")
    return {plugin: binding_host.binding_host_id(config, plugin) for plugin in ("LINUX_BRIDGE", "OPEN_VSWITCH")}


def test_hostname_without_agent_config(tmp_path):
    run, caps = get_caps(tmp_path)
    assert (run.returncode, run.stderr) == (0, "")
    assert caps[KEY] == {"OVN": CAPS[KEY]["OVN"], "LINUX_BRIDGE": HOSTNAME, "OPEN_VSWITCH": HOSTNAME}
    assert {key: caps[key] for key in ("kvmEnabled", "cpuCores")} == {"kvmEnabled": "true", "cpuCores": "2"}
    assert ids(tmp_path)["OPEN_VSWITCH"] == (HOSTNAME, "socket.gethostname()")


def test_no_binding_ids_yet(tmp_path):
    run, caps = get_caps(tmp_path, {"kvmEnabled": "true"})
    assert run.returncode == 0, run.stderr
    assert caps == {"kvmEnabled": "true", KEY: {"LINUX_BRIDGE": HOSTNAME, "OPEN_VSWITCH": HOSTNAME}}


def test_agent_host_option_later_files_win(tmp_path):
    neutron = write(tmp_path, "etc/neutron/neutron.conf", "[DEFAULT]\nhost = compute-7\ncore_plugin = ml2\n")
    ovs = write(tmp_path, OVS_INI, "[DEFAULT]\nhost = compute-7-ovs\n[ovs]\nintegration_bridge = br-int\n")
    write(tmp_path, LB_INI, "[linux_bridge]\nphysical_interface_mappings = physnet1:eth1\n")
    run, caps = get_caps(tmp_path)
    assert (run.returncode, run.stderr) == (0, "")
    assert caps[KEY] == {"OVN": CAPS[KEY]["OVN"], "LINUX_BRIDGE": "compute-7", "OPEN_VSWITCH": "compute-7-ovs"}
    assert ids(tmp_path) == {"LINUX_BRIDGE": ("compute-7", "host in %s" % neutron),
                             "OPEN_VSWITCH": ("compute-7-ovs", "host in %s" % ovs)}


def test_rdo_conf_d_and_dist_conf(tmp_path):
    write(tmp_path, "usr/share/neutron/neutron-dist.conf", "[DEFAULT]\nhost = from-dist\n")
    assert ids(tmp_path)["OPEN_VSWITCH"][0] == "from-dist"
    conf_d = write(tmp_path, "etc/neutron/conf.d/neutron-openvswitch-agent/10-host.conf", "[DEFAULT]\nhost = from-conf-d\n")
    assert ids(tmp_path) == {"LINUX_BRIDGE": ("from-dist", "host in %s" % os.path.join(str(tmp_path), "usr/share/neutron/neutron-dist.conf")),
                             "OPEN_VSWITCH": ("from-conf-d", "host in %s" % conf_d)}


def test_grizzly_quantum_layout(tmp_path):
    write(tmp_path, "etc/quantum/quantum.conf", "[DEFAULT]\nhost = grizzly-host\n")
    lb = write(tmp_path, "etc/quantum/plugins/linuxbridge/linuxbridge_conf.ini", "[DEFAULT]\nhost = grizzly-lb\n")
    assert ids(tmp_path)["LINUX_BRIDGE"] == ("grizzly-lb", "host in %s" % lb)
    assert ids(tmp_path)["OPEN_VSWITCH"][0] == "grizzly-host"


def test_empty_host_option_means_the_default(tmp_path):
    write(tmp_path, "etc/neutron/neutron.conf", "[DEFAULT]\nhost =\n")
    assert ids(tmp_path)["OPEN_VSWITCH"] == (HOSTNAME, "socket.gethostname()")


def test_config_override_wins(tmp_path):
    write(tmp_path, OVS_INI, "[DEFAULT]\nhost = compute-7-ovs\n")
    run, caps = get_caps(tmp_path, extra_config="binding_host_id = rack3-node9.example.com\n")
    assert run.returncode == 0, run.stderr
    assert caps[KEY]["OPEN_VSWITCH"] == caps[KEY]["LINUX_BRIDGE"] == "rack3-node9.example.com"
    assert ids(tmp_path, binding_host_id="node9")["LINUX_BRIDGE"] == (
        "node9", "[hook] binding_host_id in /etc/vdsm/quantum_vnic.conf")


def test_bad_override_is_a_config_error(tmp_path):
    run, _ = get_caps(tmp_path, extra_config="binding_host_id = two words\n")
    assert run.returncode == 1 and not run.changed
    assert len(run.stderr.splitlines()) == 1 and "binding_host_id" in run.stderr


def test_unreadable_agent_config_one_warning(tmp_path):
    write(tmp_path, "etc/neutron/neutron.conf", "host = no-section\n")
    run, caps = get_caps(tmp_path)
    assert run.returncode == 0
    lines = run.stderr.splitlines()
    assert lines and all("WARNING" in line and "neutron.conf" in line for line in lines), run.stderr
    assert "Traceback" not in run.stderr
    assert caps[KEY]["OPEN_VSWITCH"] == HOSTNAME


def test_already_reported_leaves_the_file_alone(tmp_path):
    caps = {KEY: {"LINUX_BRIDGE": HOSTNAME, "OPEN_VSWITCH": HOSTNAME}}
    run, _ = get_caps(tmp_path, caps)
    assert (run.returncode, run.stderr, run.changed) == (0, "", False)


@pytest.mark.parametrize("text,needle", [("not json", "not JSON"), ("[1, 2]", "expected an object")])
def test_malformed_caps_one_line(tmp_path, text, needle):
    run = run_hook("after_get_caps", text, {}, config="[hook]\nagent_config_root = %s\n" % tmp_path,
                   variable="_hook_json")
    assert run.returncode == 1 and not run.changed
    assert len(run.stderr.splitlines()) == 1 and needle in run.stderr

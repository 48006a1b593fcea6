"""Golden tests: the hook executables rewrite device XML exactly as expected.

Each case runs the real hook process as VDSM would (temp file, environment) and compares
the file with ``tests/golden/<case>.xml``; a second run on the output must change nothing.
Set ``UPDATE_GOLDEN=1`` to rewrite the golden files after checking the diff by eye.
"""

import os

import pytest

from tests.conftest import NETWORK_ID, quantum_properties
from tests.vdsm import REPO, run_hook

EXAMPLES = os.path.join(REPO, "examples")
GOLDEN = os.path.join(REPO, "tests", "golden")

OVS_WITH_OLD_VIRTUALPORT = b"""<interface type="bridge">
  <mac address="00:1a:4a:16:01:54"/>
  <source bridge="ovirtmgmt"/>
  <virtualport type="802.1Qbh"><parameters profileid="finance"/></virtualport>
  <target dev="vnet7"/>
  <model type="virtio"/>
</interface>
"""

LB_ETHERNET_CONFIG = "[linux_bridge]\nmode = ethernet\n"
OVS_BRIDGE_CONFIG = "[openvswitch]\nintegration_bridge = br-custom\n[hook]\nmtu = 9000\n"
OVS_HOOK_PLUG_CONFIG = "[openvswitch]\nplug = hook\n"
OVS_NO_FIREWALL_CONFIG = "[openvswitch]\nfirewall = none\n"
SECURITY_GROUPS = "sg-web,sg-ssh"

# case -> (hook point, input XML, properties, config)
CASES = {
    "ovs_create": ("before_device_create", "ovs_vnic.xml", quantum_properties("OPEN_VSWITCH"), None),
    "ovs_create_mtu": ("before_device_create", "ovs_vnic.xml",
                       quantum_properties("OPEN_VSWITCH", mtu="1450"), None),
    "ovs_config_bridge_mtu": ("before_device_create", "ovs_vnic.xml",
                              quantum_properties("OPEN_VSWITCH"), OVS_BRIDGE_CONFIG),
    "ovs_hotplug": ("before_nic_hotplug", "hotplug_vnic.xml", quantum_properties("OPEN_VSWITCH"), None),
    "ovs_replaces_virtualport": ("before_device_create", OVS_WITH_OLD_VIRTUALPORT,
                                 quantum_properties("OPEN_VSWITCH"), None),
    "ovs_hybrid": ("before_device_create", "ovs_vnic.xml",
                   quantum_properties("OPEN_VSWITCH", security_groups=SECURITY_GROUPS), None),
    "ovs_hybrid_hotplug_mtu": ("before_nic_hotplug", "hotplug_vnic.xml",
                               quantum_properties("OPEN_VSWITCH", security_groups=SECURITY_GROUPS,
                                                  mtu="1450"), None),
    "ovs_hybrid_from_virtualport": ("before_device_create", OVS_WITH_OLD_VIRTUALPORT,
                                    quantum_properties("OPEN_VSWITCH", security_groups=SECURITY_GROUPS),
                                    OVS_HOOK_PLUG_CONFIG),
    "ovs_firewall_none": ("before_device_create", "ovs_vnic.xml",
                          quantum_properties("OPEN_VSWITCH", security_groups=SECURITY_GROUPS),
                          OVS_NO_FIREWALL_CONFIG),
    "ovs_hook_plug": ("before_device_create", "ovs_vnic.xml", quantum_properties("OPEN_VSWITCH"),
                      OVS_HOOK_PLUG_CONFIG),
    "ovs_hook_plug_from_virtualport": ("before_device_create", OVS_WITH_OLD_VIRTUALPORT,
                                       quantum_properties("OPEN_VSWITCH", mtu="1450"), OVS_HOOK_PLUG_CONFIG),
    "lb_create": ("before_device_create", "linux_bridge_vnic.xml",
                  quantum_properties("LINUX_BRIDGE", network_id=NETWORK_ID), None),
    "lb_hotplug_mtu": ("before_nic_hotplug", "hotplug_vnic.xml",
                       quantum_properties("LINUX_BRIDGE", mtu="1400"), None),
    "lb_ethernet": ("before_device_create", "linux_bridge_vnic.xml",
                    quantum_properties("LINUX_BRIDGE"), LB_ETHERNET_CONFIG),
    "lb_from_ovs_device": ("before_device_create", OVS_WITH_OLD_VIRTUALPORT,
                           quantum_properties("LINUX_BRIDGE"), None),
}


def _input(source):
    if isinstance(source, bytes):
        return source
    with open(os.path.join(EXAMPLES, source), "rb") as stream:
        return stream.read()


# The XML is what is compared here: host changes (hybrid devices) are printed, not made
# (dry_run: the hook's --dry-run argument).
def rewritten(case):
    hook_point, source, properties, config = CASES[case]
    run = run_hook(hook_point, _input(source), properties, config=config, dry_run=True)
    assert run.returncode == 0, run.stderr
    return run


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_golden(case):
    run = rewritten(case)
    golden_path = os.path.join(GOLDEN, case + ".xml")
    if os.environ.get("UPDATE_GOLDEN"):
        with open(golden_path, "wb") as stream:
            stream.write(run.after)
    with open(golden_path, "rb") as stream:
        assert run.after.decode() == stream.read().decode()


@pytest.mark.parametrize("case", sorted(CASES))
def test_second_run_changes_nothing(case):
    hook_point, _, properties, config = CASES[case]
    first = rewritten(case)
    second = run_hook(hook_point, first.after, properties, config=config, dry_run=True)
    assert second.returncode == 0, second.stderr
    assert second.after == first.after


def test_unrelated_elements_and_attributes_kept():
    from lxml import etree

    run = rewritten("ovs_create")
    before = etree.fromstring(run.before)
    after = etree.fromstring(run.after)
    for tag in ("address", "mac", "model", "filterref", "link", "boot", "bandwidth", "alias"):
        assert etree.tostring(after.find(tag)) == etree.tostring(before.find(tag)), tag


@pytest.mark.parametrize("provider", [None, "EXTERNAL", "openstack_network"])
def test_other_devices_left_alone(provider):
    properties = quantum_properties("OPEN_VSWITCH")
    if provider is None:
        del properties["provider_type"]
    else:
        properties["provider_type"] = provider
    run = run_hook("before_device_create", _input("ovs_vnic.xml"), properties)
    assert (run.returncode, run.stderr, run.changed) == (0, "", False)


def test_vm_property_overrides_device_property():
    run = run_hook("before_device_create", _input("ovs_vnic.xml"),
                   quantum_properties("OPEN_VSWITCH", mtu="1450"), vm_properties={"mtu": "1280"})
    assert run.returncode == 0, run.stderr
    assert b'<mtu size="1280"/>' in run.after

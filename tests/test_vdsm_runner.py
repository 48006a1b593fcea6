"""The hooks driven by VDSM's own hook runner, with the calls and arguments of VDSM's vm.py.

``tests/vdsm_runner.py`` lays the hooks out as the RPM does and points VDSM's
``vdsm.common.hooks`` (from ``../shared/vdsm``) at them. Each test then calls the runner
as VDSM does (``../shared/vdsm/README.md``): ``before_device_create(xml)``, then
``after_device_create(None)`` (an empty file), hot-plug with the NIC XML, a NIC update
whose ``<source bridge>`` VDSM reset to the engine's network name, the migration
destination's order, ``after_device_destroy(None)``, ``after_get_caps``. libvirt's part
(taps, the OVS port of a virtualport) is played from the XML the hooks left, in a test
network namespace with a private Open vSwitch; nothing of the machine's is touched.
"""

import json
import os
import socket
import uuid

import pytest
from lxml import etree

from tests import vdsm_runner
from tests.conftest import NETWORK_ID, quantum_properties
from vnic_drivers import naming, sandbox

VM_ID = "d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de"
MAC = "00:1a:4a:16:01:51"
ENGINE_NETWORK = "quantum-net"  # what VDSM puts back in <source bridge> on an update

# The NIC as the engine's domain XML has it at VM start (VDSM pretty-prints it).
DEVICE = """<interface type="bridge">
    <mac address="{mac}" />
    <model type="virtio" />
    <source bridge="{network}" />
    <filterref filter="vdsm-no-mac-spoofing" />
    <link state="up" />
    <alias name="ua-3b1f5c52-7a8e-4f0e-9d41-6c2b8e4b2a11" />
</interface>
"""

# mode -> (plugin_type, extra properties, hook config)
MODES = {
    "lb-bridge": ("LINUX_BRIDGE", {"network_id": NETWORK_ID}, {}),
    "lb-ethernet": ("LINUX_BRIDGE", {"network_id": NETWORK_ID}, {"linux_bridge": {"mode": "ethernet"}}),
    "ovs-virtualport": ("OPEN_VSWITCH", {}, {}),
    "ovs-hybrid": ("OPEN_VSWITCH", {"security_groups": "sg-web"}, {}),
    "ovs-hook": ("OPEN_VSWITCH", {}, {"openvswitch": {"plug": "hook"}}),
}


def ini(sections):
    return "".join("[%s]\n%s" % (name, "".join("%s = %s\n" % item for item in options.items()))
                   for name, options in sections.items())
# The hooks' own controls that used to come from the environment.
CONTROL_NAMES = ("QUANTUM_VNIC_CONF", "QUANTUM_VNIC_DRY_RUN", "QUANTUM_VNIC_PRIVILEGED")


def _skip_reason():
    return vdsm_runner.skip_reason() or sandbox.missing_requirements()


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


@pytest.fixture(scope="module")
def box():
    """A test network namespace: private OVS with br-int, ;vdsmdummy;, the agent's brq bridge."""
    with sandbox.Sandbox("qvnic-runner") as running:
        running.start_ovs()
        running.add_bridge(naming.VDSM_DUMMY_BRIDGE)
        running.add_bridge(naming.linux_bridge_name(NETWORK_ID))
        yield running


class Vm:
    """One VM with one Quantum vNIC on the box, as VDSM sees it."""

    def __init__(self, box, tmp_path, mode, vm_properties=None, **options):
        plugin, extra, config = MODES[mode]
        self.box, self.mode = box, mode
        self.port = str(uuid.uuid4())
        self.tap = naming.tap_name(self.port)
        self.properties = quantum_properties(plugin, port_id=self.port, **extra)
        self.vmconf = {"vmId": VM_ID, "custom": dict(vm_properties or {})}
        self.xml = DEVICE.format(mac=MAC, network=ENGINE_NETWORK)
        self.state_dir = str(tmp_path / "state")
        self.config = {"openvswitch": {"ovsdb": box.ovs.remote}, "hook": {"state_dir": self.state_dir},
                       "linux_bridge": {}}
        for section, values in list(config.items()) + list(options.items()):
            self.config[section].update(values)
        self.tree = vdsm_runner.HookTree(str(tmp_path), netns=box.name, config=ini(self.config))

    def call(self, name, data, *, expect=0):
        """Run VDSM's ``hooks.<name>(data, vmconf, custom)``; the data it returns."""
        with self.tree.installed() as hooks:
            value, runs = self.tree.results(getattr(hooks, name), data, self.vmconf, self.properties)
        assert [rc for _, rc, _ in runs] == [expect], (name, runs)
        self.stderr = runs[0][2]
        return value

    # libvirt's part, from the XML the hooks left

    def libvirt_creates(self, xml):
        iface = etree.fromstring(xml.encode())
        target = iface.find("target").get("dev")
        source = iface.find("source")
        virtualport = iface.find("virtualport")
        if virtualport is not None:
            self.box.add_tap(target, mac=MAC)
            # The transaction libvirt runs for <virtualport type='openvswitch'>.
            self.box.ovs.vsctl(
                "--", "add-port", source.get("bridge"), target,
                "--", "set", "Interface", target, "external-ids:attached-mac=%s" % MAC,
                "external-ids:iface-id=%s" % virtualport.find("parameters").get("interfaceid"),
                "external-ids:vm-id=%s" % VM_ID, "external-ids:iface-status=active")
        elif iface.get("type") == "bridge":
            self.box.add_tap(target, master=source.get("bridge"), mac=MAC)
        else:
            self.box.add_tap(target, mac=MAC)

    def libvirt_destroys(self):
        self.box.delete_link(self.tap)
        if self.mode == "ovs-virtualport":
            self.box.ovs.vsctl("--if-exists", "del-port", self.tap)

    # what the agents will find

    def assert_wired(self):
        links = self.box.links()
        assert self.tap in links, links
        if self.mode.startswith("lb-"):
            assert links[self.tap]["master"] == naming.linux_bridge_name(NETWORK_ID), links[self.tap]
            return
        qbr, _, qvo = naming.hybrid_names(self.port)
        name = qvo if self.mode == "ovs-hybrid" else self.tap
        if self.mode == "ovs-hybrid":
            assert links[self.tap]["master"] == qbr
        assert name in self.box.ovs.vsctl("list-ports", "br-int").split()
        ids = self.box.ovs.vsctl("get", "Interface", name, "external_ids")
        assert 'iface-id="%s"' % self.port in ids and 'attached-mac="%s"' % MAC in ids, ids

    def assert_gone(self):
        links = self.box.links()
        names = (self.tap,) + naming.hybrid_names(self.port)
        assert not set(names) & set(links), links
        assert not set(names) & set(self.box.ovs.vsctl("list-ports", "br-int").split())
        assert not os.path.exists(os.path.join(self.state_dir, self.port + ".json"))

    def hotplug_and_unplug(self, xml):
        """libvirt attaches *xml* (what before_nic_hotplug returned), after_nic_hotplug
        wires it, libvirt detaches it, after_nic_hotunplug leaves nothing behind."""
        self.libvirt_creates(xml)
        try:
            self.call("after_nic_hotplug", xml)
            self.assert_wired()
        finally:
            self.libvirt_destroys()
        self.call("after_nic_hotunplug", xml)
        self.assert_gone()


def wiring(xml):
    """What makes the NIC Quantum's: type, source, virtualport, target (as text)."""
    iface = etree.fromstring(xml.encode())
    parts = [iface.get("type")]
    for tag in ("source", "virtualport", "target"):
        element = iface.find(tag)
        parts.append(None if element is None else etree.tostring(element).strip())
    return parts


@pytest.mark.parametrize("mode", sorted(MODES))
def test_vm_start_update_destroy_as_vdsm_calls_them(box, tmp_path, mode):
    vm = Vm(box, tmp_path, mode)
    # VM start: the device XML in, the hooks' XML back (VDSM builds the domain from it).
    created = vm.call("before_device_create", vm.xml)
    assert ENGINE_NETWORK not in created
    vm.libvirt_creates(created)
    try:
        # VDSM >= 4.40: dev._deviceXML is None for devices of the engine's domain XML.
        assert vm.call("after_device_create", None) == ""
        vm.assert_wired()

        # Link down: VDSM resets <source bridge> to the engine's network name.
        live = etree.fromstring(created.encode())
        live.set("type", "bridge")
        source = live.find("source")
        if source is None:
            source = etree.SubElement(live, "source")
        source.set("bridge", ENGINE_NETWORK)
        live.find("link").set("state", "down")
        update = etree.tostring(live).decode()
        updated = vm.call("before_update_device", update)
        assert wiring(updated) == wiring(created)  # back on its Quantum wiring
        updated_iface = etree.fromstring(updated.encode())
        assert updated_iface.find("link").get("state") == "down"  # what the update changed
        assert updated_iface.find("filterref").get("filter") == "vdsm-no-mac-spoofing"
        vm.call("after_update_device", updated)
        vm.assert_wired()
        vm.call("after_update_device_fail", updated)  # libvirt refused: nothing changes
        vm.assert_wired()
    finally:
        vm.libvirt_destroys()
    # The VM was started here and its NIC never hot-plugged: VDSM passes no XML.
    vm.call("after_device_destroy", None)
    vm.assert_gone()
    vm.call("after_device_destroy", None)  # idempotent


@pytest.mark.parametrize("mode", ["ovs-hook", "ovs-hybrid", "lb-bridge"])
def test_hotplug_and_unplug(box, tmp_path, mode):
    vm = Vm(box, tmp_path, mode)
    plugged = vm.call("before_nic_hotplug", vm.xml)
    vm.hotplug_and_unplug(plugged)


def test_failed_hotplug_rolls_back(box, tmp_path):
    vm = Vm(box, tmp_path, "ovs-hybrid")
    plugged = vm.call("before_nic_hotplug", vm.xml)
    assert naming.hybrid_names(vm.port)[0] in box.links()
    vm.call("after_nic_hotplug_fail", plugged)  # libvirt never made the tap
    vm.assert_gone()


@pytest.mark.parametrize("mode", ["ovs-hybrid", "ovs-hook", "lb-ethernet"])
def test_migration_destination_in_vdsm_order(box, tmp_path, mode):
    """The source's live device XML, the incoming domain, then the destination's after_*."""
    vm = Vm(box, tmp_path, mode)
    # What the source's domain has for the device: the hooks' rewrite of it there.
    source_xml = vdsm_runner_rewrite(vm)
    discarded = vm.call("before_device_migrate_destination", source_xml)
    assert discarded is not None  # VDSM drops it: the device is the source's
    vm.libvirt_creates(source_xml)  # the incoming domain
    try:
        vm.call("after_device_migrate_destination", source_xml)
        vm.assert_wired()
    finally:
        vm.libvirt_destroys()
    vm.call("after_device_destroy", None)
    vm.assert_gone()


def vdsm_runner_rewrite(vm):
    """The device XML the source host's before_device_create made (no record kept here)."""
    xml = vm.call("before_device_create", vm.xml)
    vm.call("after_device_destroy", None)  # the "source" forgets it: this host starts clean
    vm.assert_gone()
    return xml


def test_plug_mode_hook_without_a_record_asks_libvirt(box, tmp_path):
    """A VM started before the package was installed: the MAC comes from libvirt."""
    node = tmp_path / "node.xml"
    vm = Vm(box, tmp_path, "ovs-hook")
    # libvirt's test driver with this VM running (read-only connection, as on a host).
    node.write_text("""<node><domain type="test"><name>vm1</name><uuid>%s</uuid>
        <memory>65536</memory><os><type>hvm</type></os><devices>
        <interface type="ethernet"><mac address="%s"/><target dev="%s"/></interface>
        </devices></domain></node>""" % (VM_ID, MAC, vm.tap))
    vm.config["hook"]["libvirt_uri"] = "test://%s" % node
    vm.tree.write_config(ini(vm.config))
    box.add_tap(vm.tap, mac=MAC)
    try:
        vm.call("after_device_create", None)
        vm.assert_wired()
    finally:
        vm.libvirt_destroys()
    vm.call("after_device_destroy", None)
    vm.assert_gone()


def test_plug_mode_hook_with_no_source_is_one_line(box, tmp_path):
    vm = Vm(box, tmp_path, "ovs-hook")  # no record, and libvirt (test:///default) has no such VM
    box.add_tap(vm.tap, mac=MAC)
    try:
        vm.call("after_device_create", None, expect=1)
    finally:
        vm.libvirt_destroys()
    lines = vm.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in vm.stderr, vm.stderr
    assert "no record" in lines[0] and "libvirt at test:///default" in lines[0], lines[0]
    assert vm.tap not in box.ovs.vsctl("list-ports", "br-int").split()


@pytest.mark.parametrize("where", ["vm", "device"])
def test_custom_properties_named_like_the_controls_change_nothing(box, tmp_path, where):
    """VDSM turns every custom property into an environment variable, whatever its name:
    each control the hooks once read from the environment, set as a VM or a device
    property, must not change the config, turn on a dry run, or replace the entry point."""
    evil = tmp_path / "evil.conf"
    evil.write_text("[openvswitch]\nfirewall = none\nintegration_bridge = br-evil\n[hook]\nlog_level = DEBUG\n")
    forged = {"QUANTUM_VNIC_CONF": str(evil), "QUANTUM_VNIC_DRY_RUN": "1",
              "QUANTUM_VNIC_PRIVILEGED": "/bin/false"}
    assert set(forged) == set(CONTROL_NAMES)
    vm = Vm(box, tmp_path, "ovs-hybrid", vm_properties=forged if where == "vm" else None)
    if where == "device":
        vm.properties.update(forged)
    created = vm.call("before_nic_hotplug", vm.xml)
    qbr = naming.hybrid_names(vm.port)[0]
    assert 'bridge="%s"' % qbr in created  # the config is the tree's, not evil.conf
    assert qbr in box.links()  # not a dry run
    assert "dry-run" not in vm.stderr and "DEBUG" not in vm.stderr
    vm.hotplug_and_unplug(created)


def test_after_get_caps(box, tmp_path):
    tree = vdsm_runner.HookTree(str(tmp_path))
    caps = {"cpuCores": "2", "openstack_binding_host_ids": {"OVN": "5a2c0e3e-8c3d-4f5e-9a1b-2c3d4e5f6a7b"}}
    with tree.installed() as hooks:
        returned, runs = tree.results(hooks.after_get_caps, caps)
    assert [(rc, err) for _, rc, err in runs] == [(0, "")]
    host = socket.gethostname()
    assert returned == {"cpuCores": "2", "openstack_binding_host_ids": {
        "OVN": "5a2c0e3e-8c3d-4f5e-9a1b-2c3d4e5f6a7b", "LINUX_BRIDGE": host, "OPEN_VSWITCH": host}}
    json.dumps(returned)


def test_devices_of_another_provider_are_left_alone(tmp_path):
    tree = vdsm_runner.HookTree(str(tmp_path))
    xml = DEVICE.format(mac=MAC, network="ovirtmgmt")
    with tree.installed() as hooks:
        assert hooks.before_device_create(xml, {"vmId": VM_ID, "custom": {}}, {"provider_type": "EXTERNAL"}) == xml
        _, runs = tree.results(hooks.after_device_create, None, {"vmId": VM_ID}, {"some": "property"})
    assert [(rc, err) for _, rc, err in runs] == [(0, "")]

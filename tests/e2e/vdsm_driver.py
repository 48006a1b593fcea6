"""A VDSM stand-in for the e2e suite: our hooks around real libvirt calls, as VDSM runs them.

What VDSM does, and so this does, for each step of a VM's life (device hooks run only
for devices that carry custom properties; each hook point runs only if installed, i.e.
``hooks/<point>`` exists, as VDSM runs whatever is in its hook directory):

- start: ``before_device_create`` per device (its XML in a temp file, device then VM
  properties in the environment, ``vmId``; see :func:`tests.vdsm.run_hook`), the domain
  XML assembled from the devices as the hooks left them, ``createXML`` (VDSM's VMs are
  transient), then ``after_device_create`` per device;
- hot-plug: ``before_nic_hotplug``, ``attachDevice`` with the XML the hook produced,
  then ``after_nic_hotplug`` (or ``after_nic_hotplug_fail`` if libvirt refused);
- destroy: ``destroy``, then ``after_device_destroy`` per device;
- live migration (:meth:`Vdsm.migrate`, VDSM's ``migrationCreate`` on the destination and
  ``MigrationSourceThread`` on the source): on the destination
  ``before_device_migrate_destination`` per device with the device's XML as the source's
  live domain has it (VDSM discards what the hook leaves), libvirt's peer-to-peer live
  migration (``migrateToURI3`` with ``VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_LIVE``, as VDSM
  calls it), then ``after_device_migrate_destination`` per device with that same XML;
  on the source ``after_device_destroy`` per device with an empty file (VDSM's
  ``dev._deviceXML`` is ``None`` for a device that was never hot-plugged or updated).

A failing ``before_*`` hook with exit code 2 aborts the operation (:class:`HookAborted`),
like VDSM; every other failure is recorded in :attr:`Vdsm.failures` (VDSM would log it),
so that tests can insist there were none.
"""

import os
import time
import uuid

from tests.vdsm import HOOKS_DIR, run_hook

DEVICE_XML = """<interface type="bridge">
    <mac address="{mac}" />
    <model type="virtio" />
    <source bridge=";vdsmdummy;" />
    <link state="up" />
    <alias name="ua-{alias}" />
</interface>"""

# Tiny, disk-less, TCG (no KVM needed); ACPI so that PCI hot-plug works.
DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>
  <features><acpi/></features>
  <devices>
    <emulator>{emulator}</emulator>
{devices}
  </devices>
</domain>"""

EXIT_STOP = 2


class HookAborted(Exception):
    """A ``before_*`` hook exited 2: VDSM would abort the VM start or hot-plug."""


class Nic:
    """A vNIC as the engine sends it: MAC and device custom properties."""

    def __init__(self, mac, properties):
        self.mac = mac
        self.properties = dict(properties)
        self.alias = str(uuid.uuid4())
        self.xml = DEVICE_XML.format(mac=mac, alias=self.alias)  # what the hooks rewrite

    def __repr__(self):
        return "Nic(%s, %r)" % (self.mac, self.properties)


class Vm:
    """A VM definition: its vNICs and VM custom properties."""

    def __init__(self, name, nics, properties=None):
        self.name = name
        self.uuid = str(uuid.uuid4())
        self.nics = list(nics)
        self.properties = dict(properties or {})
        self.domain = None  # the libvirt domain while it runs

    def domain_xml(self, emulator):
        return DOMAIN_XML.format(
            name=self.name, uuid=self.uuid, emulator=emulator,
            devices="\n".join(_strip_declaration(nic.xml) for nic in self.nics),
        )


class Vdsm:
    """Runs the VM life-cycle against one libvirt connection and one hook configuration."""

    def __init__(self, conn, netns, emulator, hook_config=None):
        self.conn = conn
        self.netns = netns
        self.emulator = emulator
        self.hook_config = hook_config
        self.runs = []  # (hook point, nic, HookRun) of every hook run, in order
        self.failures = []
        self.running = []  # VMs started and not destroyed yet

    def start(self, vm):
        for nic in vm.nics:
            self._device_hook("before_device_create", vm, nic)
        vm.domain = self.conn.createXML(vm.domain_xml(self.emulator), 0)
        self.running.append(vm)
        for nic in vm.nics:
            self._device_hook("after_device_create", vm, nic)

    def hotplug_nic(self, vm, nic):
        import libvirt

        self._device_hook("before_nic_hotplug", vm, nic)
        try:
            vm.domain.attachDevice(_strip_declaration(nic.xml))
        except libvirt.libvirtError:
            self._device_hook("after_nic_hotplug_fail", vm, nic)
            raise
        vm.nics.append(nic)
        self._device_hook("after_nic_hotplug", vm, nic)

    def destroy(self, vm):
        vm.domain.destroy()
        vm.domain = None
        self.running.remove(vm)
        for nic in vm.nics:
            self._device_hook("after_device_destroy", vm, nic)

    def migrate(self, vm, destination, destination_uri, migration_uri):
        """Live-migrate running *vm* to the host that *destination* (another :class:`Vdsm`)
        drives. *destination_uri* is how this host's libvirtd reaches the destination's
        (peer to peer), *migration_uri* where QEMU sends the guest's state. Returns how long
        libvirt's migration took, in seconds.

        If libvirt fails, the destination's hooks undo their preparation
        (``after_device_destroy``, as VDSM's destination does when the incoming VM dies)
        and the guest keeps running here.
        """
        import libvirt

        source_xml = live_device_xml(vm.domain)
        for nic in vm.nics:
            destination._device_hook("before_device_migrate_destination", vm, nic,
                                     xml=source_xml[nic.mac], keep=False)
        started = time.monotonic()
        try:
            vm.domain.migrateToURI3(destination_uri, {libvirt.VIR_MIGRATE_PARAM_URI: migration_uri, libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 10000},
                                    libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER)
        except libvirt.libvirtError:
            for nic in vm.nics:
                destination._device_hook("after_device_destroy", vm, nic, xml=source_xml[nic.mac])
            raise
        took = time.monotonic() - started
        self.running.remove(vm)
        vm.domain = destination.conn.lookupByUUIDString(vm.uuid)
        destination.running.append(vm)
        for nic in vm.nics:
            nic.xml = source_xml[nic.mac]  # the destination's dev._deviceXML from now on
            destination._device_hook("after_device_migrate_destination", vm, nic)
        for nic in vm.nics:
            self._device_hook("after_device_destroy", vm, nic, xml="", keep=False)
        return took

    def _device_hook(self, hook_point, vm, nic, xml=None, keep=True):
        """Run one device hook point for *nic* on *xml* (default: the NIC's current XML);
        with *keep*, the NIC's XML is what the hook left, as VDSM does."""
        if not nic.properties or not os.path.exists(os.path.join(HOOKS_DIR, hook_point)):
            return
        run = run_hook(hook_point, nic.xml if xml is None else xml, nic.properties, vm_properties=vm.properties,
                       vm_id=vm.uuid, config=self.hook_config, netns=self.netns)
        self.runs.append((hook_point, nic, run))
        if run.returncode != 0:
            self.failures.append((hook_point, nic, run))
            if hook_point.startswith("before_") and run.returncode == EXIT_STOP:
                raise HookAborted("%s for %r: %s" % (hook_point, nic, run.stderr.strip()))
        if keep:
            nic.xml = run.after.decode("utf-8")


def live_device_xml(domain):
    """{MAC: the ``<interface>`` XML} of a running domain, as libvirt reports it now."""
    from lxml import etree

    root = etree.fromstring(domain.XMLDesc(0).encode("utf-8"))
    return {iface.find("mac").get("address"): etree.tostring(iface, encoding="unicode").strip()
            for iface in root.iterfind("devices/interface")}


def _strip_declaration(xml):
    """The device XML without its ``<?xml ...?>`` line, to embed it in a domain."""
    xml = xml.strip()
    return xml.split("?>", 1)[1].strip() if xml.startswith("<?xml") else xml

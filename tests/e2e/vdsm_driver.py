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
- destroy: ``destroy``, then ``after_device_destroy`` per device.

A failing ``before_*`` hook with exit code 2 aborts the operation (:class:`HookAborted`),
like VDSM; every other failure is recorded in :attr:`Vdsm.failures` (VDSM would log it),
so that tests can insist there were none.
"""

import os
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

    def _device_hook(self, hook_point, vm, nic):
        """Run one device hook point for *nic*; keep the XML it leaves, as VDSM does."""
        if not nic.properties or not os.path.exists(os.path.join(HOOKS_DIR, hook_point)):
            return
        run = run_hook(hook_point, nic.xml, nic.properties, vm_properties=vm.properties,
                       vm_id=vm.uuid, config=self.hook_config, netns=self.netns)
        self.runs.append((hook_point, nic, run))
        if run.returncode != 0:
            self.failures.append((hook_point, nic, run))
            if hook_point.startswith("before_") and run.returncode == EXIT_STOP:
                raise HookAborted("%s for %r: %s" % (hook_point, nic, run.stderr.strip()))
        nic.xml = run.after.decode("utf-8")


def _strip_declaration(xml):
    """The device XML without its ``<?xml ...?>`` line, to embed it in a domain."""
    xml = xml.strip()
    return xml.split("?>", 1)[1].strip() if xml.startswith("<?xml") else xml

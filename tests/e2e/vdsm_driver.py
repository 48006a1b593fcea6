"""A VDSM stand-in for the e2e suite: our hooks around real libvirt calls, as VDSM runs them.

The hooks run through VDSM's own hook runner (``../shared/vdsm``, ``vdsm.common.hooks``)
over a hook tree laid out as the RPM installs it (:class:`tests.vdsm_runner.HookTree`: one
``<hook_point>/50_quantum_vnic`` per ``hooks/<hook_point>``, the host's config as the
hook's argument). VDSM's runner makes the temp file (empty for ``None``), the environment
(device custom properties, the VM's over them, ``vmId``, ``_hook_domxml``) and decides on
the exit codes.

VDSM runs in its host's network namespace, and so does the runner here: every call into
it is made from a worker thread that entered the test host's namespace (``setns`` is per
thread, and the hook processes the runner starts inherit the thread's namespace). So the
scripts need not enter it themselves, which would cost each hook process an import of
pyroute2 (about as long as the rest of a hook run).

What VDSM's ``vm.py`` does, and so this does, with the same arguments (device hooks run
only for devices that carry custom properties; ``vmconf`` is ``{"vmId", "custom": VM
custom properties}``; ``dev._deviceXML``, VDSM's own XML of a device, is
:attr:`Nic.device_xml`: ``None`` for a device built from the engine's domain XML):

- start: ``before_device_create(device XML)`` per device, the domain XML assembled from
  the devices as the hooks left them, ``createXML`` (VDSM's VMs are transient), then
  ``after_device_create(dev._deviceXML)`` per device: ``None``, an empty file;
- hot-plug (``hotplugNic``): ``before_nic_hotplug``, ``attachDevice`` with the XML the hook
  produced, then ``after_nic_hotplug`` (or ``after_nic_hotplug_fail`` if libvirt refused);
  that XML is the device's ``_deviceXML`` from then on;
- NIC update (:meth:`Vdsm.update_nic`, ``setLinkAndNetwork``): the NIC's XML as VDSM builds
  it, ``<source bridge>`` set to the engine's network name and the new ``<link state>``,
  ``before_update_device``, ``updateDeviceFlags(VIR_DOMAIN_AFFECT_LIVE)`` with what the
  hook left, then ``after_update_device`` (or ``after_update_device_fail``) on that XML,
  which becomes the device's ``_deviceXML``;
- live migration (:meth:`Vdsm.migrate`: ``migrationCreate`` on the destination,
  ``MigrationSourceThread`` on the source): on the destination
  ``before_device_migrate_destination`` per device with the device's XML as the source's
  live domain has it (VDSM discards what the hook leaves), libvirt's peer-to-peer live
  migration (``migrateToURI3``, ``VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER``, as VDSM
  calls it), ``after_device_migrate_destination`` per device with that same XML (the
  device's ``_deviceXML`` there); on the source ``after_device_destroy(dev._deviceXML)``.
  When libvirt fails, the destination's ``before_device_destroy`` and
  ``after_device_destroy`` with that XML (VDSM destroys the incoming VM), none here;
- destroy: ``destroy``, then ``after_device_destroy(dev._deviceXML)`` per device.

A ``before_*`` hook that fails makes VDSM's runner raise ``HookError``: VDSM aborts the
operation, and so does this (:class:`HookAborted`). A failing ``after_*`` hook is only
logged by VDSM; here every failure is also recorded in :attr:`Vdsm.failures`, so that
tests can insist there were none.
"""

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.vdsm_runner import HookTree, vdsm_hooks

# The engine's XML of a vNIC (what VDSM puts in the domain XML, and what it builds again
# for a NIC update): on the engine's network, which for a Quantum vNIC is no bridge here.
ENGINE_NETWORK = "quantum-net"
DEVICE_XML = """<interface type="bridge">
    <mac address="{mac}" />
    <model type="virtio" />
    <source bridge="{bridge}" />{target}
    <link state="{link}" />
    <alias name="ua-{alias}" />
</interface>"""
# What VDSM puts in the domain XML at VM start: VDSM's placeholder bridge.
START_BRIDGE = ";vdsmdummy;"

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


class HookAborted(Exception):
    """A ``before_*`` hook failed: VDSM would abort the VM start, hot-plug or update."""


class HookRun:
    """One hook point run through VDSM's runner: its input, its output, and the hook's
    exit code and stderr (``None`` and '' when no script ran)."""

    def __init__(self, before, after, returncode, stderr):
        self.before = before
        self.after = after
        self.returncode = returncode
        self.stderr = stderr

    def __repr__(self):
        return "HookRun(rc=%s, stderr=%r)" % (self.returncode, self.stderr)


class Nic:
    """A vNIC as the engine sends it: MAC and device custom properties."""

    def __init__(self, mac, properties):
        self.mac = mac
        self.properties = dict(properties)
        self.alias = str(uuid.uuid4())
        self.xml = engine_xml(self, START_BRIDGE)  # for the domain XML; the hooks rewrite it
        self.device_xml = None  # VDSM's dev._deviceXML

    def __repr__(self):
        return "Nic(%s, %r)" % (self.mac, self.properties)


def engine_xml(nic, bridge, link="up", tap=None):
    """The NIC's XML as VDSM builds it from the engine's data."""
    target = '\n    <target dev="%s" />' % tap if tap else ""
    return DEVICE_XML.format(mac=nic.mac, alias=nic.alias, bridge=bridge, link=link, target=target)


class Vm:
    """A VM definition: its vNICs and VM custom properties."""

    def __init__(self, name, nics, properties=None):
        self.name = name
        self.uuid = str(uuid.uuid4())
        self.nics = list(nics)
        self.properties = dict(properties or {})
        self.domain = None  # the libvirt domain while it runs

    @property
    def vmconf(self):
        """What VDSM hands its hook runner about the VM."""
        return {"vmId": self.uuid, "custom": dict(self.properties)}

    def domain_xml(self, emulator):
        return DOMAIN_XML.format(
            name=self.name, uuid=self.uuid, emulator=emulator,
            devices="\n".join(_strip_declaration(nic.xml) for nic in self.nics),
        )


class Vdsm:
    """Runs the VM life-cycle against one libvirt connection and one hook configuration,
    the hooks installed in a hook tree of its own (removed by :meth:`close`)."""

    def __init__(self, conn, netns, emulator, hook_config=None):
        self.conn = conn
        self.netns = netns
        self.emulator = emulator
        self._directory = tempfile.mkdtemp(prefix="qvnic-vdsm-")
        self.tree = HookTree(self._directory, config=hook_config)
        # Threads in the host's netns that call VDSM's runner (several: VMs start at once).
        self._in_netns = ThreadPoolExecutor(4, thread_name_prefix="vdsm-" + netns,
                                            initializer=_enter_netns, initargs=(netns,))
        self.runs = []  # (hook point, nic, HookRun) of every hook run, in order
        self.failures = []
        self.running = []  # VMs started and not destroyed yet

    @property
    def hook_config(self):
        with open(self.tree.config_path, encoding="utf-8") as stream:
            return stream.read()

    @hook_config.setter
    def hook_config(self, config):
        self.tree.write_config(config)

    def close(self):
        """End the threads (and so their hold on the netns); remove the hook tree."""
        self._in_netns.shutdown()
        shutil.rmtree(self._directory, ignore_errors=True)

    def start(self, vm):
        for nic in vm.nics:
            nic.xml = self._device_hook("before_device_create", vm, nic, nic.xml)
        vm.domain = self.conn.createXML(vm.domain_xml(self.emulator), 0)
        self.running.append(vm)
        for nic in vm.nics:
            self._device_hook("after_device_create", vm, nic, nic.device_xml)

    def hotplug_nic(self, vm, nic):
        import libvirt

        xml = self._device_hook("before_nic_hotplug", vm, nic, nic.xml)
        try:
            vm.domain.attachDevice(_strip_declaration(xml))
        except libvirt.libvirtError:
            self._device_hook("after_nic_hotplug_fail", vm, nic, xml)
            raise
        nic.xml = nic.device_xml = xml
        vm.nics.append(nic)
        self._device_hook("after_nic_hotplug", vm, nic, xml)

    def update_nic(self, vm, nic, link):
        """Set the link of running *nic* to *link* ('up' or 'down') as VDSM's
        ``setLinkAndNetwork`` does (the network stays the engine's)."""
        import libvirt

        tap = live_interfaces(vm.domain)[nic.mac]["tap"]
        xml = self._device_hook("before_update_device", vm, nic, engine_xml(nic, ENGINE_NETWORK, link, tap))
        try:
            vm.domain.updateDeviceFlags(_strip_declaration(xml), libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError:
            self._device_hook("after_update_device_fail", vm, nic, xml)
            raise
        nic.device_xml = xml
        self._device_hook("after_update_device", vm, nic, xml)

    def migrate(self, vm, destination, destination_uri, migration_uri):
        """Live-migrate running *vm* to the host that *destination* (another :class:`Vdsm`)
        drives. *destination_uri* is how this host's libvirtd reaches the destination's
        (peer to peer), *migration_uri* where QEMU sends the guest's state. Returns how long
        libvirt's migration took, in seconds.

        If libvirt fails, the guest keeps running here (VDSM's ``SourceThread._recover``
        runs no device hook on the source) and the destination undoes its preparation as
        VDSM's does: the source asks it to destroy the incoming VM, whose ``doDestroy``
        runs ``before_device_destroy`` and ``releaseVm`` ``after_device_destroy``, each per
        device with ``dev._deviceXML``, which on a destination is the source's live device
        XML (what ``before_device_migrate_destination`` got).
        """
        import libvirt

        source_xml = {mac: found["xml"] for mac, found in live_interfaces(vm.domain).items()}
        for nic in vm.nics:
            destination._device_hook("before_device_migrate_destination", vm, nic, source_xml[nic.mac])
        started = time.monotonic()
        try:
            vm.domain.migrateToURI3(destination_uri, {
                libvirt.VIR_MIGRATE_PARAM_URI: migration_uri,
                libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 10000,  # MiB/s: no throttling
            }, libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER)
        except libvirt.libvirtError:
            for hook_point in ("before_device_destroy", "after_device_destroy"):
                for nic in vm.nics:
                    destination._device_hook(hook_point, vm, nic, source_xml[nic.mac])
            raise
        took = time.monotonic() - started
        self.running.remove(vm)
        vm.domain = destination.conn.lookupByUUIDString(vm.uuid)
        destination.running.append(vm)
        source_device_xml = {nic.mac: nic.device_xml for nic in vm.nics}
        for nic in vm.nics:
            nic.device_xml = source_xml[nic.mac]
            destination._device_hook("after_device_migrate_destination", vm, nic, nic.device_xml)
        for nic in vm.nics:
            self._device_hook("after_device_destroy", vm, nic, source_device_xml[nic.mac])
        return took

    def destroy(self, vm):
        vm.domain.destroy()
        vm.domain = None
        self.running.remove(vm)
        for nic in vm.nics:
            self._device_hook("after_device_destroy", vm, nic, nic.device_xml)

    def _device_hook(self, hook_point, vm, nic, xml):
        """``vdsm.common.hooks.<hook_point>(xml, vmconf, custom)`` for *nic*, if it has
        custom properties (VDSM runs no device hook otherwise); returns the XML the hooks
        left (*xml* when none ran)."""
        if not nic.properties:
            return xml
        return self._in_netns.submit(self._run_device_hook, hook_point, vm, nic, xml).result()

    def _run_device_hook(self, hook_point, vm, nic, xml):
        with _installed(self.tree) as hooks, _ScriptRuns() as scripts:
            from vdsm.common.exception import HookError

            try:
                after = getattr(hooks, hook_point)(xml, vm.vmconf, dict(nic.properties))
            except HookError:
                after = None
        for _script, returncode, stderr in scripts:
            run = HookRun(xml, after, returncode, stderr)
            self.runs.append((hook_point, nic, run))
            if returncode != 0:
                self.failures.append((hook_point, nic, run))
                if after is None:  # VDSM's runner raised: VDSM aborts
                    raise HookAborted("%s for %r: %s" % (hook_point, nic, stderr.strip()))
        return after


def _enter_netns(netns):
    """Move the calling thread into network namespace *netns* (never create it), and
    make sure it is there: a hook run elsewhere would change the machine's own network."""
    from pyroute2 import netns as pyroute2_netns

    pyroute2_netns.setns(netns, flags=0)
    if os.stat("/proc/thread-self/ns/net").st_ino != os.stat("/run/netns/" + netns).st_ino:
        raise RuntimeError("thread %s is not in network namespace %s" % (threading.get_ident(), netns))


# VDSM's runner finds the hooks under its module-level P_VDSM_HOOKS and logs each run at
# INFO on the root logger: both process-wide. Threads may run the hooks of one tree at
# once (VMs start in parallel, as in VDSM); another tree (the other host of a migration)
# waits until no call uses the first. Both are restored when the last call ends.
_TREE_LOCK = threading.Condition()
_tree_in_use = {"tree": None, "calls": 0, "saved": None}


@contextlib.contextmanager
def _installed(tree):
    """VDSM's hooks module pointed at *tree*, its INFO lines logged, for one call."""
    hooks = vdsm_hooks()
    state = _tree_in_use
    root = logging.getLogger()
    with _TREE_LOCK:
        _TREE_LOCK.wait_for(lambda: state["calls"] == 0 or state["tree"] is tree)
        if state["calls"] == 0:
            state["tree"], state["saved"] = tree, (hooks.P_VDSM_HOOKS, root.level)
            hooks.P_VDSM_HOOKS = tree.directory + "/"
            root.setLevel(min(root.level, logging.INFO))
        state["calls"] += 1
    try:
        yield hooks
    finally:
        with _TREE_LOCK:
            state["calls"] -= 1
            if state["calls"] == 0:
                hooks.P_VDSM_HOOKS, level = state["saved"]
                root.setLevel(level)
                state["tree"] = None
                _TREE_LOCK.notify_all()


class _ScriptRuns(logging.Handler):
    """``[(script, rc, stderr)]`` of the scripts VDSM's runner ran in this thread, read
    from the line it logs for each (``"%s: rc=%s err=%s"``, the only place an ``after_*``
    failure shows). Unlike ``HookTree.results``, only this thread's: VMs start in parallel."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.thread = threading.get_ident()
        self.runs = []

    def emit(self, record):
        if record.thread == self.thread and record.msg == "%s: rc=%s err=%s":
            script, returncode, stderr = record.args
            self.runs.append((script, returncode, stderr.decode("utf-8", "replace")
                              if isinstance(stderr, bytes) else stderr))

    def __enter__(self):
        logging.getLogger().addHandler(self)
        return self.runs

    def __exit__(self, *exc_info):
        logging.getLogger().removeHandler(self)


def live_interfaces(domain):
    """{mac: {'type', 'bridge', 'tap', 'mtu', 'link', 'xml'}} of a running domain's vNICs,
    as libvirt runs them."""
    from lxml import etree

    root = etree.fromstring(domain.XMLDesc(0).encode("utf-8"))
    found = {}
    for iface in root.iterfind("devices/interface"):
        found[iface.find("mac").get("address")] = {
            "type": iface.get("type"),
            "bridge": _attribute(iface, "source", "bridge"),
            "tap": _attribute(iface, "target", "dev"),
            "mtu": _attribute(iface, "mtu", "size"),
            "link": _attribute(iface, "link", "state") or "up",
            "xml": etree.tostring(iface, encoding="unicode").strip(),
        }
    return found


def _attribute(element, child, name):
    found = element.find(child)
    return None if found is None else found.get(name)


def _strip_declaration(xml):
    """The device XML without its ``<?xml ...?>`` line, to embed it in a domain."""
    xml = xml.strip()
    return xml.split("?>", 1)[1].strip() if xml.startswith("<?xml") else xml

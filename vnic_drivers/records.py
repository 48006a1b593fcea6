"""Where an ``after_*`` hook point finds the vNIC's MAC: a record, else libvirt.

VDSM hands ``after_device_create`` and ``after_device_destroy`` an empty file (the
device was built from the engine's domain XML, so VDSM has no XML of its own for it),
and the ``after_*`` points must work without the file anyway. The one value a later step
needs that only the XML had is the MAC: OVS plug mode ``hook`` writes it as the port's
``attached-mac``, which the OVS agent requires.

- Every ``before_*`` point that reads the XML (``before_device_create``,
  ``before_nic_hotplug``, ``before_device_migrate_destination``, ``before_update_device``)
  records ``{"mac", "vm_id"}`` in ``[hook] state_dir``/``PORT_ID.json`` (default
  ``/run/vdsm/quantum-vnic``: written by vdsm, gone at reboot with the VMs). Unplug
  removes it. A record that cannot be written is a warning, not a failure: the fallback
  still works.
- Without a record (a VM started before the package was installed, a wiped ``/run``) the
  MAC is asked of libvirt: a read-only connection to ``[hook] libvirt_uri`` (default
  ``qemu:///system``), the domain by ``vmId``, the interface by its target device. libvirt
  is imported only on that path.

The record comes first because it costs a file read, where libvirt costs an import, a
connection and the whole domain XML; libvirt is the source that is always there.
"""

import os

from . import naming
from .errors import HookError, HostError, InputError


def _path(config, port_id):
    # port_id is a validated UUID: the name cannot leave the directory.
    return os.path.join(config.get("hook", "state_dir"), port_id + ".json")


def save(config, vnic, logger):
    """Record *vnic*'s MAC (and VM) for the ``after_*`` points; a warning when impossible."""
    from .hooking import replace_file

    if vnic.mac is None:
        return
    path = _path(config, vnic.port_id)
    directory = os.path.dirname(path)
    # Both values are validated (hex digits, ':' and '-' only), so this is the JSON that
    # json.dumps would write, without its import on a path that has no other use for it.
    data = ('{"mac": "%s", "vm_id": %s}' % (
        vnic.mac, "null" if vnic.vm_id is None else '"%s"' % vnic.vm_id)).encode("ascii")
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        replace_file(path, data, 0o644)
    except OSError as err:
        logger.warning("cannot record the MAC of port %s in %s (%s): after_* hook points will "
                       "ask libvirt instead; make [hook] state_dir writable by vdsm",
                       vnic.port_id, directory, err.strerror)


def remove(config, vnic, logger):
    """Forget *vnic*'s record; nothing to do when there is none.

    The helper runs this as root for the ``after_*`` hooks it runs (helper/hook_runner.py)
    in vdsm's directory: the directory is opened without following a symlink in its
    place, and only ``PORT_ID.json`` in it is removed.
    """
    path = _path(config, vnic.port_id)
    directory, name = os.path.split(path)
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as err:
        logger.warning("cannot remove %s: %s", path, err.strerror)
        return
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as err:
        logger.warning("cannot remove %s: %s", path, err.strerror)
    finally:
        os.close(dir_fd)


def recorded(config):
    """Every record in ``[hook] state_dir``: ``{port id: {"vm_id", "age"}}``, *age* in
    seconds since the record was written (its mtime); HostError when the directory
    cannot be read.

    For ``quantum-vnic cleanup``: a ``before_*`` point writes the record, so a fresh one
    marks a vNIC whose VM may be between ``before_device_create`` and libvirt's start
    (no domain runs yet). Only regular files named ``PORT_ID.json`` count; one whose
    content does not parse counts too, by its mtime, with no VM (``vm_id`` None).
    """
    import stat
    import time

    directory = config.get("hook", "state_dir")
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return {}  # no before_* point ran since /run was made
    except OSError as err:
        raise HostError("cannot list the MAC records in %s: %s" % (directory, err.strerror)) from None
    now = time.time()
    found = {}
    for name in names:
        port_id = name[:-len(".json")]
        if not name.endswith(".json") or _uuid_or_none(port_id) != port_id:
            continue
        path = os.path.join(directory, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue  # removed meanwhile (an unplug)
        if not stat.S_ISREG(info.st_mode):
            continue
        record = _read(path)
        vm_id = record.get("vm_id") if record is not None else None
        found[port_id] = {"vm_id": _uuid_or_none(vm_id), "age": now - info.st_mtime}
    return found


def _uuid_or_none(text):
    try:
        return naming.uuid(text, "id") if isinstance(text, str) else None
    except InputError:
        return None


def _read(path):
    """The record at *path* as a dict, or None (none there, unreadable, not a record)."""
    from . import hooking

    # The same guards as VDSM's files (a regular file, small, JSON of bounded depth): the
    # state dir is vdsm's, and a record is a few dozen bytes.
    try:
        record = hooking.load_json(hooking.read_bytes(path, limit=4096), "MAC record")
    except HookError:
        return None
    return record if isinstance(record, dict) else None


def recorded_mac(config, vnic):
    """The MAC a ``before_*`` point recorded for *vnic*'s port in this VM, or None."""
    record = _read(_path(config, vnic.port_id))  # None: libvirt decides
    if record is None or record.get("vm_id") != vnic.vm_id:
        return None  # another VM's (a port moved between VMs): not trusted
    mac = record.get("mac")
    try:
        return naming.mac(mac, "recorded MAC") if isinstance(mac, str) else None
    except InputError:
        return None


def mac_for(config, vnic):
    """*vnic*'s MAC: the record, else libvirt's live domain; a one-line error when neither."""
    return recorded_mac(config, vnic) or live_mac(config.get("hook", "libvirt_uri"), vnic)


def live_mac(uri, vnic):
    """The MAC of the interface with target *vnic.tap* in the running domain *vnic.vm_id*."""
    what = "no record of port %s's MAC in [hook] state_dir, and libvirt" % vnic.port_id
    if vnic.vm_id is None:
        raise InputError("%s cannot be asked: vmId is not set (VDSM always sets it)" % what)
    try:
        import libvirt
    except ImportError:
        raise HostError("%s cannot be asked: the libvirt Python module is missing "
                        "(dnf install python3-libvirt)" % what) from None
    # libvirt prints every error on stderr by default; ours are reported in one line.
    libvirt.registerErrorHandler(lambda _context, _error: None, None)
    try:
        conn = libvirt.openReadOnly(uri)
        try:
            domain_xml = conn.lookupByUUIDString(vnic.vm_id).XMLDesc(0)
        finally:
            conn.close()
    except libvirt.libvirtError as err:
        raise HostError("%s at %s has no answer: %s" % (what, uri, err.get_error_message())) from None
    mac = _interface_mac(domain_xml, vnic.tap)
    if mac is None:
        raise HostError("%s at %s has no interface with target dev %s in VM %s; was the "
                        "device created?" % (what, uri, vnic.tap, vnic.vm_id))
    return mac


def _interface_mac(domain_xml, tap):
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(domain_xml.encode("utf-8"), parser)
    for iface in root.iterfind("devices/interface"):
        target, mac = iface.find("target"), iface.find("mac")
        if target is not None and target.get("dev") == tap and mac is not None:
            return mac.get("address")
    return None

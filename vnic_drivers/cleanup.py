"""``quantum-vnic cleanup``: remove what this project made on the host that no running VM uses.

After a crash (a hook killed half-way, QEMU gone without libvirt's teardown, VDSM
restarted mid-destroy) a host can keep ``qbr``/``qvb``/``qvo`` devices, ``tap``
devices and OVS ports with an ``iface-id`` on the integration bridge. This command:

1. asks libvirt (read-only, ``[hook] libvirt_uri`` or ``--libvirt-uri``) which
   devices every running domain's interfaces use: target devices, source bridges and
   ``virtualport`` interface ids. libvirt is the only source of "in use": when it
   cannot be asked, nothing is touched (exit 3);
2. lists, through the privileged ``cleanup_inventory`` operation, the devices and OVS
   ports whose names this project derives (``tap``/``qbr``/``qvb``/``qvo`` + a port
   id's first 11 characters; never an agent's ``brq…`` bridge, never another name);
3. holds back the vNICs a VM being started may own (:func:`hold_back`): a VM between
   VDSM's ``before_device_create`` hook and libvirt's start is no running domain yet,
   but that hook left a MAC record (:func:`vnic_drivers.records.recorded`, ``[hook]
   state_dir``). A vNIC whose record is younger than :data:`RECORD_GRACE` (10 minutes)
   or names a VM libvirt knows (defined, not running) is skipped, and the report says
   why; ``--force`` removes it anyway, and so does any run once the record is older;
4. per vNIC left, asks libvirt and reads the records once more, then runs the
   privileged ``cleanup_remove``, which re-checks every name, kind and OVSDB row.

Exit codes: 0 done (or nothing to do, or ``--dry-run``); 1 something could not be
removed or OVSDB could not be read; 2 bad usage or config; 3 refused: libvirt (or the
MAC records) could not be asked, nothing was touched. A skipped vNIC is no error.
"""

import json
import sys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3

# Seconds a MAC record marks its vNIC as possibly a starting VM's. VDSM starts a VM's
# domain within seconds of before_device_create; 10 minutes covers a slow start on a
# loaded host (storage preparation, many vNICs) with a wide margin.
RECORD_GRACE = 600


class Refused(Exception):
    """libvirt cannot say what is in use: cleanup must not touch anything."""


def add_arguments(parser):
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed; change nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON object for tools")
    parser.add_argument("--force", action="store_true",
                        help="also remove vNICs a VM being started may own (a MAC record younger "
                             "than %d s, or naming a VM libvirt knows)" % RECORD_GRACE)
    parser.add_argument("--config", metavar="FILE",
                        help="config file instead of /etc/vdsm/quantum_vnic.conf")
    parser.add_argument("--libvirt-uri", metavar="URI",
                        help="libvirt to ask which devices running VMs use "
                             "(default: [hook] libvirt_uri, qemu:///system)")


# --- what is in use: libvirt, and nothing else --------------------------------------


def in_use(uri):
    """``{"domains": N, "ids": {port id prefixes}, "devices": {device names}}`` of the
    running domains at *uri*, and ``"known"``: the UUIDs of every domain libvirt has,
    running or not; :class:`Refused` when libvirt cannot be asked."""
    try:
        import libvirt
    except ImportError:
        raise Refused("libvirt-python is not installed (dnf install python3-libvirt): "
                      "cannot tell which devices running VMs use") from None
    # libvirt prints every error on stderr by default; ours is the one line below.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as err:
        raise Refused("cannot ask libvirt at %s which devices running VMs use (%s); is "
                      "libvirtd running? nothing was touched" % (uri, _message(err))) from None
    try:
        found = {"domains": 0, "ids": set(), "devices": set(), "known": set()}
        for domain in conn.listAllDomains(0):
            try:
                found["known"].add(domain.UUIDString().lower())
                if not domain.isActive():
                    continue  # defined only: VDSM defines a VM's domain before starting it
                xml = domain.XMLDesc(0)
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue  # stopped meanwhile: not running, uses nothing
                raise
            found["domains"] += 1
            _add_interfaces(xml, found)
        return found
    except libvirt.libvirtError as err:
        raise Refused("libvirt at %s failed while listing running domains (%s); nothing "
                      "was touched" % (uri, _message(err))) from None
    finally:
        conn.close()


def _message(err):
    return (err.get_error_message() or str(err)).strip().splitlines()[0]


def _add_interfaces(xml, found):
    from lxml import etree

    from .host.leftovers import split

    for iface in etree.fromstring(xml.encode("utf-8")).iterfind("devices/interface"):
        names = [element.get(attribute) for element, attribute in (
            (iface.find("target"), "dev"), (iface.find("source"), "bridge"),
            (iface.find("source"), "dev"))
            if element is not None and element.get(attribute)]
        found["devices"].update(names)
        for name in names:
            if split(name):
                found["ids"].add(split(name)[1])
        params = iface.find("virtualport/parameters")
        if params is not None and params.get("interfaceid"):
            found["ids"].add(params.get("interfaceid").lower()[:11])


# --- what is left over ----------------------------------------------------------------


def leftovers(inventory, used):
    """The vNICs of *inventory* no running domain uses: [{"id", "devices", "ports"}].

    Devices of another kind than ours and ports whose iface-id is not this port id's are
    not this project's and are never listed.
    """
    from .host.leftovers import KINDS, split

    vnics = {}

    def vnic(port_id):
        return vnics.setdefault(port_id, {"id": port_id, "devices": [], "ports": []})

    for device in inventory["devices"]:
        prefix, port_id = split(device["name"])
        if device["kind"] == KINDS[prefix] and not _used(device["name"], port_id, used):
            vnic(port_id)["devices"].append({"name": device["name"], "kind": device["kind"]})
    for port in inventory["ports"]:
        _, port_id = split(port["name"])
        if port["iface_id"].lower().startswith(port_id) and not _used(port["name"], port_id, used):
            vnic(port_id)["ports"].append(port)
    return [vnics[key] for key in sorted(vnics)]


def _used(name, port_id, used):
    return name in used["devices"] or port_id in used["ids"]


def hold_back(vnics, records, used):
    """(the *vnics* cleanup may remove, the others each with its ``reason``).

    A vNIC whose MAC record (*records*: :func:`vnic_drivers.records.recorded`) is younger
    than :data:`RECORD_GRACE`, or names a VM libvirt knows (*used*: :func:`in_use`), may
    be a VM's that VDSM is starting: its ``before_*`` hook ran, libvirt has not started it.
    """
    todo, skipped = [], []
    for vnic in vnics:
        reason = _starting(vnic["id"], records, used["known"])
        if reason:
            skipped.append(dict(vnic, reason=reason))
        else:
            todo.append(vnic)
    return todo, skipped


def _starting(id_prefix, records, known):
    for port_id, record in sorted(records.items()):
        if not port_id.startswith(id_prefix):
            continue
        vm_id = record["vm_id"] or "unknown"
        if vm_id in known:
            return ("the MAC record of port %s names VM %s, which libvirt knows but does not run: "
                    "VDSM may be starting it" % (port_id, vm_id))
        if record["age"] < RECORD_GRACE:
            return ("the MAC record of port %s (VM %s) was written %ds ago, less than %ds: its VM "
                    "may be starting; --force removes it" % (
                        port_id, vm_id, max(record["age"], 0), RECORD_GRACE))
    return None


def scan(config, uri):
    """``{"in_use", "inventory", "leftovers"}``; Refused before reading the host when
    libvirt cannot be asked."""
    from . import host

    used = in_use(uri)
    del config  # the privileged side reads its own config (OVSDB remote, br-int)
    inventory = host.connect(dry_run=False).call("cleanup_inventory")
    return {"in_use": used, "inventory": inventory, "leftovers": leftovers(inventory, used)}


def _records(config, force):
    """The MAC records (none with *force*); Refused when they cannot be read."""
    from . import records
    from .errors import HostError

    if force:
        return {}
    try:
        return records.recorded(config)
    except HostError as err:
        raise Refused("%s: cannot tell which vNICs belong to VMs being started; nothing was "
                      "touched (--force ignores the records)" % err) from None


def describe(vnic):
    parts = ["%s (%s)" % (device["name"], device["kind"]) for device in vnic["devices"]]
    parts += ["OVS port %s (iface-id %s)" % (port["name"], port["iface_id"]) for port in vnic["ports"]]
    return ", ".join(parts)


# --- the command -----------------------------------------------------------------------


def run(args):
    from . import config as config_module
    from . import host
    from .errors import HookError, InputError
    from .log import one_line

    def fail(code, message):
        sys.stderr.write(one_line("quantum-vnic cleanup: ERROR: %s" % message) + "\n")
        return code

    if args.config:
        # As doctor: the privileged side, in-process as root, reads this same file.
        config_module.select(args.config)
    try:
        config = config_module.load(args.config)
        uri = args.libvirt_uri or config.get("hook", "libvirt_uri")
        if args.libvirt_uri:
            config_module.SCHEMA["hook"]["libvirt_uri"][0](uri, "--libvirt-uri")
    except InputError as err:
        return fail(EXIT_USAGE, err)
    try:
        found = scan(config, uri)
        todo, skipped = hold_back(found["leftovers"], _records(config, args.force), found["in_use"])
        if todo and not args.dry_run:
            # Again, right before touching anything: a VM may have started meanwhile.
            used = in_use(uri)
            todo = [vnic for vnic in todo
                    if not any(_used(item["name"], vnic["id"], used) for item in vnic["devices"] + vnic["ports"])]
            todo, later = hold_back(todo, _records(config, args.force), used)
            skipped += later
    except Refused as err:
        return fail(EXIT_REFUSED, err)
    except HookError as err:
        return fail(EXIT_FAILED, "cannot list this host's devices: %s" % err)

    report = {"libvirt_uri": uri, "dry_run": args.dry_run,
              "running_domains": found["in_use"]["domains"],
              "in_use": sorted(found["in_use"]["ids"]),
              "ovs_error": found["inventory"]["ovs_error"],
              "leftovers": found["leftovers"], "removed": [], "kept": [], "errors": [],
              "skipped": skipped}
    lines = ["skipped: %s: %s" % (describe(vnic), vnic["reason"]) for vnic in skipped]
    connection = host.connect(dry_run=False)
    for vnic in todo:
        if args.dry_run:
            lines.append("would remove: %s" % describe(vnic))
            continue
        ports = {port["name"][:3]: port["uuid"] for port in vnic["ports"]}
        name = (vnic["devices"] + vnic["ports"])[0]["name"]
        try:
            done = connection.call("cleanup_remove", name=name, qvo_port=ports.get("qvo"),
                                   tap_port=ports.get("tap"))
        except HookError as err:
            report["errors"].append(str(err))
            lines.append("failed: %s: %s" % (describe(vnic), err))
            continue
        removed = done["devices"] + ["OVS port %s" % port for port in done["ports"]]
        kept = done["devices_kept"] + ["OVS port %s" % port for port in done["ports_kept"]]
        report["removed"] += removed
        report["kept"] += kept
        if removed:
            lines.append("removed: %s" % ", ".join(removed))
        if kept:
            lines.append("kept (changed since the scan or not ours): %s" % ", ".join(kept))
    if report["ovs_error"]:
        report["errors"].append("OVS ports not checked: %s" % report["ovs_error"])
    code = EXIT_FAILED if report["errors"] else EXIT_OK
    if args.json:
        json.dump(report, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        for line in lines:
            sys.stdout.write(one_line(line) + "\n")
        sys.stdout.write(one_line(_summary(report, found)) + "\n")
    if report["errors"] and not args.json:
        for error in report["errors"]:
            sys.stderr.write(one_line("quantum-vnic cleanup: ERROR: %s" % error) + "\n")
    return code


def _summary(report, found):
    domains = "%d running VM(s) at %s" % (report["running_domains"], report["libvirt_uri"])
    skipped = ("; %d skipped: a VM may be starting (see above)" % len(report["skipped"])
               if report["skipped"] else "")
    if not report["leftovers"]:
        return "nothing to clean up (%s)" % domains
    if report["dry_run"]:
        return "%d vNIC(s) left behind that no VM uses (%s)%s; run without --dry-run to remove them" % (
            len(report["leftovers"]), domains, skipped)
    return "removed %d item(s) of %d vNIC(s) no VM uses (%s)%s%s" % (
        len(report["removed"]), len(report["leftovers"]), domains, skipped,
        "; %d error(s)" % len(report["errors"]) if report["errors"] else "")

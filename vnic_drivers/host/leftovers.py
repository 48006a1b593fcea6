"""The privileged side of ``quantum-vnic cleanup``: list and remove what a vNIC left behind.

Only names this project derives are ever seen or touched: ``tap``/``qbr``/``qvb``/``qvo``
followed by the first 11 characters of a port UUID (:data:`DERIVED`). Which of them are
still in use is not decided here (root does not ask libvirt): :mod:`vnic_drivers.cleanup`
asks libvirt and names one vNIC at a time by one of its device names; this side derives
the vNIC's other names from it, checks kinds again (a bridge for qbr, veth for qvb/qvo,
tun/tap for tap) and removes an OVS port only when it is still the row the caller saw and
still carries an ``iface-id`` of that port. ``brq…`` bridges never match.
"""

import re

from .. import naming
from ..errors import HostError

# prefix + port_id[:11]: 8 hex digits, '-', 2 hex digits (naming.uuid lower-cases ids).
PREFIXES = (naming.TAP_PREFIX, naming.HYBRID_BRIDGE_PREFIX,
            naming.HYBRID_VETH_BRIDGE_SIDE_PREFIX, naming.HYBRID_VETH_OVS_SIDE_PREFIX)
DERIVED = re.compile(r"^(%s)([0-9a-f]{8}-[0-9a-f]{2})$" % "|".join(PREFIXES))
# What each derived device must be for it to be ours.
KINDS = {naming.TAP_PREFIX: "tun", naming.HYBRID_BRIDGE_PREFIX: "bridge",
         naming.HYBRID_VETH_BRIDGE_SIDE_PREFIX: "veth", naming.HYBRID_VETH_OVS_SIDE_PREFIX: "veth"}
OVS_PREFIXES = (naming.HYBRID_VETH_OVS_SIDE_PREFIX, naming.TAP_PREFIX)


def split(name):
    """(prefix, port id prefix) of a derived device name, or None."""
    match = DERIVED.match(name) if isinstance(name, str) else None
    return match.groups() if match else None


def names_of(id_prefix):
    """{device prefix: device name} of the vNIC whose port id starts with *id_prefix*."""
    return {prefix: prefix + id_prefix for prefix in PREFIXES}


def inventory(ovsdb_remote, bridge):
    """Every derived device and every derived OVS port with an iface-id on *bridge*.

    ``{"devices": [{"name", "kind", "master"}], "ports": [{"name", "uuid", "iface_id"}],
    "ovs_error": None or one line}``. The kernel part is read even when OVSDB is down.
    """
    from . import netlink

    with netlink._netlink("list devices") as ipr:
        raw = ipr.get_links()
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in raw}
        devices = []
        for link in raw:
            name = link.get_attr("IFLA_IFNAME")
            if split(name):
                info = link.get_attr("IFLA_LINKINFO")
                devices.append({"name": name, "kind": info.get_attr("IFLA_INFO_KIND") if info else None,
                                "master": names.get(link.get_attr("IFLA_MASTER"))})
    devices.sort(key=lambda device: device["name"])
    ports, problem = [], None
    try:
        # None: the caller knows OVSDB is not to be asked (doctor, when its check failed).
        ports = _ovs_ports(ovsdb_remote, bridge) if ovsdb_remote is not None else []
    except HostError as err:
        problem = str(err)
    return {"devices": devices, "ports": ports, "ovs_error": problem}


def _ovs_ports(ovsdb_remote, bridge):
    from . import ovsdb

    with ovsdb.connect(ovsdb_remote) as db:
        return ovsdb.iface_ports(db, bridge, lambda name: (split(name) or ("",))[0] in OVS_PREFIXES)


def remove(ovsdb_remote, bridge, name, qvo_port, tap_port):
    """Remove the vNIC that device *name* belongs to: its OVS ports, then its devices.

    *qvo_port* / *tap_port* are the Port rows (UUIDs) the caller's scan found, or None:
    a port is removed only if it is still that row, on *bridge*, with an iface-id of
    this port id; a port re-created meanwhile (a VM starting) is kept. Devices are
    removed only when of the kind this project makes.
    """
    parts = split(name)
    if parts is None:  # privileged.py validated it already; never act on anything else
        raise HostError("%s is not a device name quantum-vnic derives" % name)
    names = names_of(parts[1])
    result = {"ports": [], "ports_kept": [], "devices": [], "devices_kept": []}
    expected = {names[naming.HYBRID_VETH_OVS_SIDE_PREFIX]: qvo_port, names[naming.TAP_PREFIX]: tap_port}
    expected = {port: uuid for port, uuid in expected.items() if uuid}
    if expected:
        from . import ovsdb

        with ovsdb.connect(ovsdb_remote) as db:
            for port, uuid in sorted(expected.items()):
                done = ovsdb.delete_port_if(db, bridge, port, uuid, parts[1])
                result["ports" if done else "ports_kept"].append(port)
    result.update(_remove_devices(names))
    return result


def _remove_devices(names):
    from . import netlink

    # qvo, qvb, tap, then the bridge; all in one kernel batch where netlink.prepare_removal can.
    order = [naming.HYBRID_VETH_OVS_SIDE_PREFIX, naming.HYBRID_VETH_BRIDGE_SIDE_PREFIX,
             naming.TAP_PREFIX, naming.HYBRID_BRIDGE_PREFIX]
    removal = netlink.prepare_removal((names[prefix], KINDS[prefix]) for prefix in order)
    removal.finish()  # a veth end takes its peer along: that is fine
    return {"devices": removal.names, "devices_kept": removal.kept}

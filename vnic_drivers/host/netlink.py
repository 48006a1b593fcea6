"""The only module that touches network links: pyroute2 (netlink), no ip/brctl processes.

Runs in the privileged process (or in-process when root). Every function takes names
already validated by :mod:`vnic_drivers.host.privileged` and works in the network
namespace of the calling process.
"""

from ..errors import HostError


def _ipr():
    from pyroute2 import IPRoute

    return IPRoute()


def _lookup(ipr, name):
    """The link index of *name*, or None."""
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _link_name(ipr, index):
    links = ipr.get_links(index)
    return links[0].get_attr("IFLA_IFNAME") if links else None


def link_state(name):
    """{'exists', 'master', 'up', 'mtu', 'kind'} of device *name* (read-only)."""
    try:
        with _ipr() as ipr:
            index = _lookup(ipr, name)
            if index is None:
                return {"name": name, "exists": False}
            link = ipr.get_links(index)[0]
            master = link.get_attr("IFLA_MASTER")
            info = link.get_attr("IFLA_LINKINFO")
            return {
                "name": name,
                "exists": True,
                "master": _link_name(ipr, master) if master else None,
                "up": bool(link["flags"] & 1),
                "mtu": link.get_attr("IFLA_MTU"),
                "kind": info.get_attr("IFLA_INFO_KIND") if info else None,
            }
    except OSError as err:
        raise HostError("netlink: cannot read device %s: %s" % (name, err)) from None


# --- Hybrid plugging (OVS security groups) ---
# qbr (a Linux bridge, where iptables can filter the tap) joined to br-int by the veth
# pair qvb (in qbr) / qvo (on br-int), as the Quantum OVS agent's hybrid firewall expects.


def _netlink_error():
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError


def _kind(ipr, index):
    info = ipr.get_links(index)[0].get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info else None


def _ensure_bridge(ipr, name, created):
    """*name* as a bridge with STP off and no forward delay; created or reused."""
    index = _lookup(ipr, name)
    if index is None:
        ipr.link("add", ifname=name, kind="bridge", br_stp_state=0, br_forward_delay=0)
        created.append(name)
        return _lookup(ipr, name)
    if _kind(ipr, index) != "bridge":
        raise HostError("device %s exists and is not a bridge (kind %s); it is not ours: "
                        "remove it" % (name, _kind(ipr, index)))
    # Reused (a re-run, or a migration retry): make sure it forwards at once.
    ipr.link("set", index=index, kind="bridge", br_stp_state=0, br_forward_delay=0)
    return index


def _ensure_veth(ipr, name, peer, created):
    """The veth pair *name* / *peer*; created, or reused when it is exactly that pair."""
    index, peer_index = _lookup(ipr, name), _lookup(ipr, peer)
    if index is None and peer_index is None:
        ipr.link("add", ifname=name, kind="veth", peer=peer)
        created.append(name)  # deleting one end deletes the pair
        return _lookup(ipr, name), _lookup(ipr, peer)
    if index is not None and peer_index is not None and _kind(ipr, index) == "veth" \
            and ipr.get_links(index)[0].get_attr("IFLA_LINK") == peer_index:
        return index, peer_index
    raise HostError("device %s exists and is not one end of a veth pair %s/%s; it is not "
                    "ours: remove it" % (name if index is not None else peer, name, peer))


def hybrid_create(bridge, veth_bridge_side, veth_ovs_side, mtu=None):
    """Create (or reuse) *bridge* and the veth pair, the bridge side in the bridge, all up.

    Returns the devices this call created, in creation order, for the caller to undo if
    a later step fails. On its own failure it removes them itself and raises HostError.
    """
    created = []
    step = "open netlink"
    try:
        with _ipr() as ipr:
            step = "create bridge %s" % bridge
            bridge_index = _ensure_bridge(ipr, bridge, created)
            step = "create veth pair %s/%s" % (veth_bridge_side, veth_ovs_side)
            inner, outer = _ensure_veth(ipr, veth_bridge_side, veth_ovs_side, created)
            step = "attach %s to %s" % (veth_bridge_side, bridge)
            ipr.link("set", index=inner, master=bridge_index)
            for index, name in ((inner, veth_bridge_side), (outer, veth_ovs_side), (bridge_index, bridge)):
                step = "set %s%s up" % (name, "" if mtu is None else " mtu %d" % mtu)
                if mtu is None:
                    ipr.link("set", index=index, state="up")
                else:
                    ipr.link("set", index=index, state="up", mtu=mtu)
    except (OSError, _netlink_error()) as err:
        raise HostError("netlink: cannot %s: %s%s" % (step, err, undo_links(created))) from None
    except HostError as err:
        raise HostError("%s%s" % (err, undo_links(created))) from None
    except BaseException:
        undo_links(created)
        raise
    return created


def undo_links(created):
    """Delete what a failed call created, newest first; '' or what went wrong, for the error."""
    try:
        delete_links(reversed(created))
    except (HostError, OSError, _netlink_error()) as err:
        return "; removing %s again failed too: %s" % (", ".join(created), err)
    return ""


def delete_links(names):
    """Delete each device of *names* that exists (a veth end takes its peer along)."""
    with _ipr() as ipr:
        _delete(ipr, names)


def _delete(ipr, names):
    import errno

    for name in names:
        index = _lookup(ipr, name)
        if index is None:
            continue
        try:
            ipr.link("del", index=index)
        except _netlink_error() as err:
            if err.code != errno.ENODEV:  # gone meanwhile, as wanted
                raise HostError("netlink: cannot delete %s: %s" % (name, err)) from None


def link_exists(name):
    """Whether device *name* exists in this namespace: one ioctl, no pyroute2 import.

    The cheap check lets paths that usually find nothing (unplug of a plain vNIC) or
    only need existence (the tap in plug mode ``hook``) skip pyroute2's start-up cost,
    the largest part of a hook process's time.
    """
    import socket

    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def hybrid_delete(bridge, veth_bridge_side, veth_ovs_side):
    """Remove the hybrid devices that exist and are of the kind we create; idempotent.

    Returns ``{"deleted": [...], "kept": [...]}``; a device with one of these names but
    another kind was not made by this project and is kept.
    """
    expected = ((veth_ovs_side, "veth"), (veth_bridge_side, "veth"), (bridge, "bridge"))
    ours, kept = [], []
    if not any(link_exists(name) for name, _ in expected):
        return {"deleted": ours, "kept": kept}
    try:
        with _ipr() as ipr:
            for name, kind in expected:
                index = _lookup(ipr, name)
                if index is not None:
                    (ours if _kind(ipr, index) == kind else kept).append(name)
            _delete(ipr, ours)
        return {"deleted": ours, "kept": kept}
    except (OSError, _netlink_error()) as err:
        raise HostError("netlink: cannot remove %s: %s" % ("/".join(n for n, _ in expected), err)) from None

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

"""The only module that touches network links: pyroute2 (netlink), no ip/brctl processes.

Runs in the privileged process (or in-process when root). Every function takes names
already validated by :mod:`vnic_drivers.host.privileged` and works in the network
namespace of the calling process.
"""

import contextlib
import errno
import os

from ..errors import HostError
from ..naming import LINUX_BRIDGE_PREFIX

IFF_UP = 1  # net/if.h: the administrative up flag in a link's flags


def _ipr():
    if _POOL is not None:
        return _POOL.lease()
    from pyroute2 import IPRoute

    return IPRoute()


class _Pool:
    """Netlink sockets kept open by a resident process (the helper, see :func:`keep_open`).

    An IPRoute is not safe to use from two threads at once, so each operation leases one
    for its duration; usually one socket serves every request, more only while requests
    overlap (e.g. one waiting for an agent)."""

    KEEP = 4  # idle sockets kept; beyond that a returned one is closed

    def __init__(self):
        import threading

        self._lock = threading.Lock()
        self._idle = []

    @contextlib.contextmanager
    def lease(self):
        with self._lock:
            ipr = self._idle.pop() if self._idle else None
        if ipr is None:
            from pyroute2 import IPRoute

            ipr = IPRoute()
        broken = True
        try:
            yield ipr
            broken = False
        except Exception as err:
            # A refusal (NetlinkError) leaves the socket usable; an OS error may not.
            from pyroute2 import NetlinkError

            broken = not isinstance(err, NetlinkError) and not isinstance(err, HostError)
            raise
        finally:
            with self._lock:
                if not broken and len(self._idle) < self.KEEP:
                    self._idle.append(ipr)
                    ipr = None
            if ipr is not None:
                ipr.close()

    def close(self):
        with self._lock:
            idle, self._idle = self._idle, []
        for ipr in idle:
            ipr.close()


_POOL = None


def keep_open():
    """From now on reuse netlink sockets between operations (a resident process)."""
    global _POOL
    if _POOL is None:
        _POOL = _Pool()
    return _POOL


def _lookup(ipr, name):
    """The link index of *name*, or None."""
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _link_name(ipr, index):
    links = ipr.get_links(index)
    return links[0].get_attr("IFLA_IFNAME") if links else None


@contextlib.contextmanager
def _netlink(what):
    """An IPRoute socket; netlink and OS errors become one-line HostErrors naming *what*."""
    try:
        from pyroute2 import NetlinkError
    except ImportError:
        raise HostError("netlink: pyroute2 is not installed; install python3-pyroute2") from None
    try:
        with _ipr() as ipr:
            yield ipr
    except (OSError, NetlinkError) as err:
        raise HostError("netlink: cannot %s: %s" % (what, _strerror(err))) from None


def _strerror(err):
    code = getattr(err, "code", None) or getattr(err, "errno", None)
    return "%s (errno %s)" % (os.strerror(code), code) if code else str(err)


def _read_link(ipr, index):
    """(master name or None, is up, MTU, kind) of link *index*; None when it is gone."""
    links = ipr.get_links(index) if index is not None else []
    if not links:
        return None
    link = links[0]
    master = link.get_attr("IFLA_MASTER")
    info = link.get_attr("IFLA_LINKINFO")
    return (
        _link_name(ipr, master) if master else None,
        bool(link["flags"] & IFF_UP),
        link.get_attr("IFLA_MTU"),
        info.get_attr("IFLA_INFO_KIND") if info else None,
    )


def link_state(name):
    """{'exists', 'master', 'up', 'mtu', 'kind'} of device *name* (read-only)."""
    with _netlink("read device %s" % name) as ipr:
        state = _read_link(ipr, _lookup(ipr, name))
    if state is None:
        return {"name": name, "exists": False}
    master, up, mtu, kind = state
    return {"name": name, "exists": True, "master": master, "up": up, "mtu": mtu, "kind": kind}


# --- Linux Bridge operations ---
# One coarse operation per hook point, so the sudo path costs one process.

# How often the optional wait re-reads the tap: short enough that a guest is not held
# noticeably longer than the agent takes, long enough to cost nothing.
POLL_INTERVAL = 0.2


def _is_home(master, bridge):
    """True when *master* is where the tap belongs: *bridge* if the network is known,
    else any ``brq…`` bridge (the agent's, which only the agent can tell right)."""
    if master is None:
        return False
    return master == bridge if bridge else master.startswith(LINUX_BRIDGE_PREFIX)


def linux_bridge_plug(tap, bridge, mtu, wait):
    """Wire *tap* for the Quantum Linux Bridge agent; idempotent.

    Takes the tap off any bridge that is not its home (VDSM's ``;vdsmdummy;`` above
    all: the agent's ``add_tap_interface`` cannot enslave a tap that has a master),
    sets *mtu* when given, and when *bridge* (``brq``+network[:11]) exists enslaves the
    tap to it and brings it up; otherwise leaves it unattached for the agent. With
    *wait* > 0, polls until the tap is on its home bridge, at most *wait* seconds.

    Returns what it found and did: ``tap``, ``master`` (at the end), ``detached_from``,
    ``attached_to``, ``mtu`` ([old, new] when changed), ``up`` (brought up),
    ``bridge_missing``, ``wired`` (on its home bridge at the end) and ``waited``
    (seconds spent waiting, ``timed_out`` when the wait ran out).
    """
    with _netlink("wire %s" % tap) as ipr:
        index = _lookup(ipr, tap)
        state = _read_link(ipr, index)
        if state is None:
            raise HostError(
                "tap %s does not exist: libvirt did not create it (or the VM is already "
                "gone); check the device's <target dev> in the domain XML" % tap
            )
        master, up, current_mtu, _kind = state
        bridge_index = _lookup(ipr, bridge) if bridge else None
        result = {"tap": tap, "detached_from": None, "attached_to": None, "mtu": None,
                  "up": False, "bridge_missing": bool(bridge) and bridge_index is None}
        if mtu is not None and current_mtu != mtu:
            # First: the kernel may refuse the value, and then nothing else has changed.
            _set_link(ipr, index, "set the MTU of %s to %d" % (tap, mtu), mtu=mtu)
            result["mtu"] = [current_mtu, mtu]
        if master is not None and not _is_home(master, bridge):
            _set_link(ipr, index, "take %s off %s" % (tap, master), master=0)
            result["detached_from"], master = master, None
        if bridge_index is not None:
            if master != bridge:
                _set_link(ipr, index, "enslave %s to %s" % (tap, bridge), master=bridge_index)
                result["attached_to"] = master = bridge
            if not up:
                _set_link(ipr, index, "bring %s up" % tap, state="up")
                result["up"] = True
        result.update(_wait_for_agent(ipr, index, tap, bridge, master, wait))
    return result


def _set_link(ipr, index, action, **changes):
    """One ``link set``; a refusal names the step, e.g. the MTU the kernel rejected."""
    from pyroute2 import NetlinkError

    try:
        ipr.link("set", index=index, **changes)
    except NetlinkError as err:
        raise HostError("netlink: cannot %s: %s" % (action, _strerror(err))) from None


def _wait_for_agent(ipr, index, tap, bridge, master, wait):
    """Poll until the tap is on its home bridge or *wait* seconds passed; never longer."""
    import time

    outcome = {"master": master, "wired": _is_home(master, bridge), "waited": 0.0,
               "timed_out": False}
    if outcome["wired"] or wait <= 0:
        return outcome
    start = time.monotonic()
    deadline = start + wait
    while not outcome["wired"]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            outcome["timed_out"] = True
            break
        time.sleep(min(POLL_INTERVAL, remaining))
        state = _read_link(ipr, index)
        if state is None:
            raise HostError("tap %s disappeared while waiting for the agent to wire it" % tap)
        outcome["master"] = state[0]
        outcome["wired"] = _is_home(state[0], bridge)
    outcome["waited"] = round(time.monotonic() - start, 3)
    return outcome


def linux_bridge_unplug(tap):
    """Delete *tap* if it lingers after its device is gone; a no-op when it is gone.

    libvirt deletes the taps it creates; one that outlives its VM or hot-unplug (a
    persistent tap, a crashed QEMU) would otherwise stay on the agent's bridge. Only a
    tun/tap device is deleted: anything else of that name is not ours and is left.
    Returns ``tap``, ``existed``, ``deleted``, ``master`` (before deletion), ``kind``.
    """
    result = {"tap": tap, "existed": False, "deleted": False, "master": None, "kind": None}
    # The usual case: libvirt already deleted the tap. Tell without importing pyroute2.
    if not link_exists(tap):
        return result
    from pyroute2 import NetlinkError

    with _netlink("remove %s" % tap) as ipr:
        index = _lookup(ipr, tap)
        state = _read_link(ipr, index)
        result["existed"] = state is not None
        if state is None:
            return result
        result["master"], result["kind"] = state[0], state[3]
        if state[3] != "tun":
            return result
        try:
            ipr.link("del", index=index)
        except NetlinkError as err:
            if err.code != errno.ENODEV:  # gone in between: what we wanted
                raise
        else:
            result["deleted"] = True
    return result


# --- end of Linux Bridge operations ---


# --- Hybrid plugging (OVS security groups) ---
# qbr (a Linux bridge, where iptables can filter the tap) joined to br-int by the veth
# pair qvb (in qbr) / qvo (on br-int), as the Quantum OVS agent's hybrid firewall expects.


def _kind(ipr, index):
    state = _read_link(ipr, index)
    return state[3] if state else None


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


class _Step:
    """The step under way, for the message :func:`_netlink` formats when one fails."""

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text


def hybrid_create(bridge, veth_bridge_side, veth_ovs_side, mtu=None):
    """Create (or reuse) *bridge* and the veth pair, the bridge side in the bridge, all up.

    Returns the devices this call created, in creation order, for the caller to undo if
    a later step fails. On its own failure it removes them itself and raises HostError.
    """
    created = []
    step = _Step("open netlink")
    try:
        with _netlink(step) as ipr:
            step.text = "create bridge %s" % bridge
            bridge_index = _ensure_bridge(ipr, bridge, created)
            step.text = "create veth pair %s/%s" % (veth_bridge_side, veth_ovs_side)
            inner, outer = _ensure_veth(ipr, veth_bridge_side, veth_ovs_side, created)
            step.text = "attach %s to %s" % (veth_bridge_side, bridge)
            ipr.link("set", index=inner, master=bridge_index)
            for index, name in ((inner, veth_bridge_side), (outer, veth_ovs_side), (bridge_index, bridge)):
                step.text = "set %s%s up" % (name, "" if mtu is None else " mtu %d" % mtu)
                if mtu is None:
                    ipr.link("set", index=index, state="up")
                else:
                    ipr.link("set", index=index, state="up", mtu=mtu)
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
    except HostError as err:
        return "; removing %s again failed too: %s" % (", ".join(created), err)
    return ""


def delete_links(names):
    """Delete each device of *names* that exists (a veth end takes its peer along)."""
    names = list(names)
    with _netlink("delete %s" % ", ".join(names)) as ipr:
        _delete(ipr, names)


def _delete(ipr, names):
    from pyroute2 import NetlinkError

    for name in names:
        index = _lookup(ipr, name)
        if index is None:
            continue
        try:
            ipr.link("del", index=index)
        except NetlinkError as err:
            if err.code != errno.ENODEV:  # gone meanwhile (a veth's peer): as wanted
                raise


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
    with _netlink("remove %s" % "/".join(name for name, _ in expected)) as ipr:
        for name, kind in expected:
            found = _kind(ipr, _lookup(ipr, name))
            if found is not None:
                (ours if found == kind else kept).append(name)
        _delete(ipr, ours)
    return {"deleted": ours, "kept": kept}

"""The only module that touches network links: pyroute2 (netlink), no ip/brctl processes.

Runs in the privileged process (or in-process when root). Every function takes values
already validated by :mod:`vnic_drivers.host.privileged` (the Linux Bridge operations
take ids and derive the device names themselves) and works in the network namespace of
the calling process.
"""

import contextlib
import errno
import os
import re

from .. import naming
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
    """The link index of *name* in this process's namespace (that of *ipr*), or None.

    One ioctl (``if_nametoindex``), not a netlink request: pyroute2 takes ~1 ms to build
    and parse one, and a plug looks up five names.
    """
    import socket

    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None


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
# One coarse operation per hook point, so the sudo path costs one process. Through sudo
# the caller names a port (and a network), never a device: the tap and the bridge are
# derived here, and a device of that name is touched only when it is what the name says.

# How often the optional wait re-reads the tap: short enough that a guest is not held
# noticeably longer than the agent takes, long enough to cost nothing.
POLL_INTERVAL = 0.2

# What the Linux Bridge agent names a network's bridge (naming.linux_bridge_name): a tap
# may be taken off such a bridge, never off any other bridge a name merely starts "brq".
_AGENT_BRIDGE_RE = re.compile(r"^%s[0-9a-f]{8}-[0-9a-f]{2}$" % LINUX_BRIDGE_PREFIX)


def _is_agent_bridge(name):
    return name is not None and bool(_AGENT_BRIDGE_RE.match(name))


def _is_home(master, bridge):
    """True when *master* is where the tap belongs: *bridge* if the network is known,
    else any agent ``brq…`` bridge (the agent's, which only the agent can tell right)."""
    if master is None:
        return False
    return master == bridge if bridge else _is_agent_bridge(master)


def _require_tap(tap, kind):
    """Refuse a device that bears a vNIC tap's name but is not a tun/tap device."""
    if kind != "tun":
        raise HostError(
            "%s is a %s device, not a tun/tap: it is not a vNIC's tap, left alone; find "
            "out what created it (ip -d link show %s)" % (tap, kind or "plain", tap)
        )


def _plan_detach(ipr, tap, master, bridge, bridge_index, dummy_bridge):
    """Whether the tap must leave *master*; HostError when it is not ours to move.

    A tap leaves only VDSM's dummy bridge (the config's, not the caller's) or, when the
    network id names another existing agent bridge, the agent bridge it is on. Any other
    master (a host bridge, OVS, a bond) means the device is someone else's.
    """
    if master is None or _is_home(master, bridge):
        return False
    if master == dummy_bridge:
        return True
    if _is_agent_bridge(master) and _kind(ipr, _lookup(ipr, master)) == "bridge":
        # Another network's bridge: moved only straight onto the one the network id
        # names, never left unattached because that bridge is not there (yet).
        return bridge_index is not None
    raise HostError(
        "%s is on %s, which is neither the dummy bridge %s nor a Linux Bridge agent "
        "brq bridge: not a tap quantum-vnic may move, left alone; check which VM or "
        "service uses it" % (tap, master, dummy_bridge)
    )


def linux_bridge_plug(port_id, network_id, mtu, wait, dummy_bridge):
    """Wire the tap of *port_id* for the Quantum Linux Bridge agent; idempotent.

    The tap is ``tap``+port[:11], the network's bridge ``brq``+network[:11] (none when
    *network_id* is None). Only a tun/tap device is touched, and every check passes
    before anything changes. Takes the tap off *dummy_bridge* (VDSM's ``;vdsmdummy;``:
    the agent's ``add_tap_interface`` cannot enslave a tap that has a master) or off
    another network's agent bridge when the network's own bridge exists; sets *mtu* when
    given; when the network's bridge exists enslaves the tap to it and brings it up;
    otherwise leaves it for the agent. With *wait* > 0, polls until the tap is on its
    home bridge, at most *wait* seconds.

    Returns what it found and did: ``tap``, ``bridge``, ``master`` (at the end),
    ``detached_from``, ``attached_to``, ``mtu`` ([old, new] when changed), ``up``
    (brought up), ``bridge_missing``, ``wired`` (on its home bridge at the end) and
    ``waited`` (seconds spent waiting, ``timed_out`` when the wait ran out).
    """
    tap = naming.tap_name(port_id)
    bridge = None if network_id is None else naming.linux_bridge_name(network_id)
    with _netlink("wire %s" % tap) as ipr:
        index = _lookup(ipr, tap)
        state = _read_link(ipr, index)
        if state is None:
            raise HostError(
                "tap %s does not exist: libvirt did not create it (or the VM is already "
                "gone); check the device's <target dev> in the domain XML" % tap
            )
        master, up, current_mtu, kind = state
        _require_tap(tap, kind)
        bridge_index = _lookup(ipr, bridge) if bridge else None
        if bridge_index is not None and _kind(ipr, bridge_index) != "bridge":
            raise HostError("%s exists and is not a bridge (kind %s): it is not the Linux "
                            "Bridge agent's; %s left alone" % (bridge, _kind(ipr, bridge_index), tap))
        detach = _plan_detach(ipr, tap, master, bridge, bridge_index, dummy_bridge)
        result = {"tap": tap, "bridge": bridge, "detached_from": None, "attached_to": None,
                  "mtu": None, "up": False,
                  "bridge_missing": bool(bridge) and bridge_index is None}
        if mtu is not None and current_mtu != mtu:
            # First: the kernel may refuse the value, and then nothing else has changed.
            _set_link(ipr, index, "set the MTU of %s to %d" % (tap, mtu), mtu=mtu)
            result["mtu"] = [current_mtu, mtu]
        if detach:
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


def linux_bridge_unplug(port_id):
    """Delete the tap of *port_id* if it lingers after its device is gone; else a no-op.

    libvirt deletes the taps it creates; one that outlives its VM or hot-unplug (a
    persistent tap, a crashed QEMU) would otherwise stay on the agent's bridge. Only a
    tun/tap device named ``tap``+port[:11] is deleted: anything else of that name is not
    ours and is left. Returns ``tap``, ``existed``, ``deleted``, ``master`` (before
    deletion), ``kind``.
    """
    tap = naming.tap_name(port_id)
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
                # group 0: a device reused from an unplug that died between marking it
                # for removal and deleting it (see prepare_removal) leaves the removal group.
                if mtu is None:
                    ipr.link("set", index=index, state="up", group=0)
                else:
                    ipr.link("set", index=index, state="up", mtu=mtu, group=0)
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
    """Delete each device of *names* that exists (a veth end takes its peer along), in
    one kernel batch where :func:`prepare_removal` can; only for devices this call made."""
    prepare_removal([(name, None) for name in names]).finish()


# --- Deleting several devices at once ---
# Deleting a netdev waits for RCU grace periods, once per deletion request: the veth pair
# qvo/qvb and the bridge qbr deleted one after the other cost two such waits (~50 ms on
# the 2-core development VM), deleted in one batch one (~35-40 ms; bench/unplug.py). The
# kernel deletes in one batch (one unregister_netdevice_many) only when asked to delete
# a device *group*: RTM_DELLINK with IFLA_GROUP and no device deletes EVERY device of the
# namespace whose group (IFLA_GROUP, 0 by default) is that number. So a group is used
# only like this:
#
# - the numbers: REMOVAL_GROUP_BASE | the port id's first 6 hex digits, i.e. groups
#   0x51000000-0x51ffffff are reserved for quantum-vnic (README, "Open vSwitch"); nothing
#   else on an oVirt host sets device groups, and nothing of quantum-vnic puts a device
#   in such a group except this code, right before deleting it;
# - the devices: only those prepare_removal() has just checked (the name derived from
#   the port id AND the kind this project creates; a veth only when paired with the
#   other checked end), never one found by its group;
# - the group must be empty when they join it (_group_is_empty, asked of the kernel just
#   before): a device someone else put in that group, or two of our ports whose numbers
#   collide, make the removal fall back to deleting its devices one at a time, by the
#   ifindex it checked; the other device is never touched. A device put in the group by
#   another program between that check and the deletion (milliseconds; in the helper,
#   until its answer is sent) would go too: only a program using quantum-vnic's
#   reserved numbers could do that;
# - a process that dies between marking and deleting (the hook killed, the helper
#   killed after answering ovs_unplug) leaves devices in the group, still named and of
#   the kind they were: the next unplug and quantum-vnic cleanup find them by name and
#   kind as before (the group not being empty, they delete one at a time), and the
#   next plug reuses them and puts them back in group 0 (hybrid_create).
REMOVAL_GROUP_BASE = 0x51000000


def removal_group(name):
    """The removal group of a device named prefix + port id[:11] (any of the port's
    devices gives the same number), or None for a name not of that form."""
    digits = name[3:9]
    if len(digits) != 6 or any(char not in "0123456789abcdef" for char in digits):
        return None
    return REMOVAL_GROUP_BASE | int(digits, 16)


def _group_is_empty(ipr, group):
    """Whether no device of this namespace is in *group*, asked of the kernel in one request.

    A link change addressed to a group (RTM_NEWLINK without a device, IFLA_GROUP) is
    applied by the kernel to each member in turn, and an MTU of 2**32-1 (-1 as the
    kernel's int) is refused (EINVAL) by every device before anything of it changes. So
    the request succeeds, changing nothing, exactly when the group has no member. Any
    other answer counts as "not empty": the caller then deletes one device at a time.
    """
    from pyroute2 import NetlinkError

    try:
        ipr.link("set", group=group, mtu=0xFFFFFFFF)
    except NetlinkError:
        return False
    return True


class Removal:
    """Devices checked and marked for deletion by :func:`prepare_removal`; :meth:`finish`
    deletes them.

    ``names``: what will be deleted; ``kept``: devices with one of the names that are
    not what this project makes, left alone. Until :meth:`finish` runs, the devices are
    in the removal group ``group`` (None: it was not empty; of a veth pair, one end: the
    other goes with it) and the one named by *cut* is down.
    """

    def __init__(self, devices, kept, group):
        self.devices = devices  # [(name, ifindex)], as checked
        self.names = [name for name, _ in devices]
        self.kept = kept
        self.group = group

    def finish(self):
        """Delete the devices: the whole group in one kernel batch, else (or when the
        kernel refuses the batch) one at a time by the ifindex that was checked."""
        if not self.devices:
            return
        from pyroute2 import NetlinkError

        with _netlink("remove %s" % ", ".join(self.names)) as ipr:
            if self.group is not None:
                try:
                    ipr.link("del", group=self.group)
                    return
                except NetlinkError as err:
                    if err.code == errno.ENODEV:  # nobody left in the group: all gone
                        return
                    # e.g. EOPNOTSUPP, a member the kernel cannot delete by group: the
                    # batch deleted nothing, so delete ours one at a time.
            for name, index in self.devices:
                if _link_name_or_none(ipr, index) != name:
                    continue  # gone (a veth end takes its peer along)
                try:
                    ipr.link("del", index=index)
                except NetlinkError as err:
                    if err.code != errno.ENODEV:  # gone meanwhile: as wanted
                        raise


def _link_name_or_none(ipr, index):
    from pyroute2 import NetlinkError

    try:
        return _link_name(ipr, index)
    except NetlinkError as err:
        if err.code != errno.ENODEV:
            raise
        return None


def _get(ipr, name):
    """The link message of device *name* (index, kind, peer in one request), or None."""
    from pyroute2 import NetlinkError

    try:
        return ipr.link("get", ifname=name)[0]
    except NetlinkError as err:
        if err.code != errno.ENODEV:
            raise
        return None


def _info(link, attr):
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr(attr) if info else None


def prepare_removal(expected, cut=None):
    """Check the devices of *expected* (``(name, kind)`` pairs, in deletion order; kind
    None: whatever its kind, for devices the calling operation made itself) and mark
    the ones that are ours for deletion: in their removal group when it is empty, and
    *cut* (a name of *expected*, or None) set down at once. Returns the :class:`Removal`
    whose :meth:`~Removal.finish` deletes them; nothing is deleted before.

    A device is ours when it exists and is of its kind; a veth moreover only when its
    peer is one of the other devices checked here (deleting a veth end deletes its peer:
    never one that was not checked). The one place that decides which devices an unplug,
    a cleanup or an undo deletes.
    """
    from pyroute2 import NetlinkError

    expected = list(expected)
    if not any(link_exists(name) for name, _ in expected):
        return Removal([], [], None)
    with _netlink("remove %s" % ", ".join(name for name, _ in expected)) as ipr:
        found = [(name, kind, _get(ipr, name)) for name, kind in expected]
        found = [(name, kind, link) for name, kind, link in found if link is not None]
        # Of the kind expected (a veth pair: both ends must be, to count as ours)...
        right_kind = {link["index"] for _, kind, link in found
                      if kind is None or _info(link, "IFLA_INFO_KIND") == kind}
        ours, kept = [], []
        for name, kind, link in found:
            peer = link.get_attr("IFLA_LINK") if _info(link, "IFLA_INFO_KIND") == "veth" else None
            # ... and a veth paired in this namespace with another device checked here.
            if link["index"] in right_kind and (kind != "veth" or (
                    peer in right_kind and link.get_attr("IFLA_LINK_NETNSID") is None)):
                ours.append((name, link["index"], peer))
            else:
                kept.append(name)
        groups = {removal_group(name) for name, _, _ in ours}
        group = groups.pop() if len(groups) == 1 else None
        if group is not None and not _group_is_empty(ipr, group):
            group = None
        ours_indexes, carried = {index for _, index, _ in ours}, set()
        for name, index, peer in ours:
            # A veth end whose peer joins the group goes with it (the kernel deletes a
            # veth's peer in the same batch): one request fewer.
            changes = {} if group is None or index in carried else {"group": group}
            if peer in ours_indexes and changes:
                carried.add(peer)
            if name == cut:
                changes["state"] = "down"
            if not changes:
                continue
            try:
                ipr.link("set", index=index, **changes)
            except NetlinkError as err:
                if err.code != errno.ENODEV:  # gone meanwhile (a veth's peer): as wanted
                    raise
    return Removal([(name, index) for name, index, _ in ours], kept, group)


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


def hybrid_prepare_removal(bridge, veth_bridge_side, veth_ovs_side):
    """The hybrid devices that are ours, marked for deletion (:func:`prepare_removal`),
    the OVS side set down: from then on nothing passes between the port and br-int.
    The bridge side and the bridge are closed by the deletion itself, in its one batch
    (setting each down first would cost an RCU wait each). Devices with one of these
    names that were not made by this project are ``kept``, left alone."""
    return prepare_removal(((veth_ovs_side, "veth"), (veth_bridge_side, "veth"), (bridge, "bridge")),
                           cut=veth_ovs_side)

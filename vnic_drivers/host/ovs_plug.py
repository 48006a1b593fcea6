"""The privileged Open vSwitch operations: kernel (:mod:`.netlink`) and OVSDB (:mod:`.ovsdb`)
steps composed into the coarse operations :mod:`.privileged` registers.

Each is one call, so on the unprivileged path one ``sudo`` process does a whole hook's
host work. Device names are derived here from the validated port id, so through sudo
these operations can only ever touch ``qbr``/``qvb``/``qvo``/``tap`` + port[:11].
``ovsdb_remote`` and ``bridge`` are never the caller's: :func:`.privileged.run` passes
them from the privileged side's own config.
"""

from .. import naming
from ..errors import HostError
from . import netlink, ovsdb


def _external_ids(port_id, mac, vm_key, vm_id):
    """What the Quantum/Neutron OVS agent reads to match a port to its Quantum port."""
    ids = {"iface-id": port_id, "attached-mac": mac, "iface-status": "active"}
    if vm_id is not None:
        ids[vm_key] = vm_id
    return ids


def hybrid_plug(ovsdb_remote, bridge, port_id, mac, vm_id, mtu):
    """qbr/qvb/qvo for *port_id*, qvo on *bridge*; on failure, undo what this call made."""
    qbr, qvb, qvo = naming.hybrid_names(port_id)
    # Connect first: with OVS down, fail before touching the kernel.
    with ovsdb.connect(ovsdb_remote) as db:
        created = netlink.hybrid_create(qbr, qvb, qvo, mtu)
        try:
            # vm-uuid, as Nova's hybrid plugging writes it.
            ovsdb.add_port(db, bridge, qvo, _external_ids(port_id, mac, "vm-uuid", vm_id), mtu)
        except HostError as err:
            raise HostError("%s%s" % (err, netlink.undo_links(created))) from None
        except BaseException:
            netlink.undo_links(created)
            raise
    return {"created": created, "port": qvo, "bridge": bridge}


def attach_tap(ovsdb_remote, bridge, port_id, mac, vm_id, mtu, wait):
    """Plug mode ``hook``: the tap libvirt made goes on *bridge* as libvirt would put it.

    The port's status (:func:`.ovsdb.port_status`) and ``attach``: ``added``, ``updated``
    (ids or MTU corrected in place) or ``kept`` (already as wanted).
    """
    tap = naming.tap_name(port_id)
    with ovsdb.connect(ovsdb_remote) as db:
        if not netlink.link_exists(tap):
            raise HostError("tap %s does not exist: libvirt did not create the device "
                            "(type='ethernet' with target dev %s); see libvirt's log" % (tap, tap))
        # vm-id, as libvirt writes it for <virtualport type='openvswitch'>. A tap already
        # on the bridge with these ids (after_update_device, a re-run) is left as it is,
        # not re-added: the agent would see a new port and wire it again (ovsdb.add_port).
        done = ovsdb.add_port(db, bridge, tap, _external_ids(port_id, mac, "vm-id", vm_id), mtu)
        return dict(ovsdb.wait_until_wired(db, bridge, tap, wait), attach=done)


def port_status(ovsdb_remote, bridge, port_id, hybrid, wait):
    """The vNIC's port on *bridge* (qvo when *hybrid*, else the tap), after the optional wait."""
    name = naming.hybrid_names(port_id)[2] if hybrid else naming.tap_name(port_id)
    with ovsdb.connect(ovsdb_remote) as db:
        return ovsdb.wait_until_wired(db, bridge, name, wait)


def unplug(ovsdb_remote, port_id):
    """Remove the vNIC's OVS ports (qvo, tap) and hybrid devices; idempotent.

    The OVS ports go first (the agent sees the port gone), then the hybrid devices are
    checked and marked for deletion, qvo set down: from then on the host passes no
    traffic for the port (:func:`.netlink.hybrid_prepare_removal`). Deleting the
    devices (tens of milliseconds of the kernel's RCU waits) is the returned
    :class:`.privileged.Then`'s step: the resident helper runs it right after answering,
    every other caller before it returns (:func:`.privileged.run`).

    The kernel part runs even when OVSDB is unreachable, so a host with OVS down still
    loses the devices; the error then says which ports may remain.
    """
    from .privileged import Then

    qbr, qvb, qvo = naming.hybrid_names(port_id)
    names = [qvo, naming.tap_name(port_id)]
    try:
        with ovsdb.connect(ovsdb_remote) as db:
            ports, problem = ovsdb.delete_ports(db, names), None
    except HostError as err:
        ports, problem = [], err
    removal = netlink.hybrid_prepare_removal(qbr, qvb, qvo)
    if problem is not None:
        removal.finish()
        raise HostError("%s; ports %s may remain on the bridge (devices removed: %s)"
                        % (problem, " and ".join(names), ", ".join(removal.names) or "none"))
    result = {"ports": ports, "devices": removal.names, "kept": removal.kept}
    return Then(result, removal.finish) if removal.names else result


def host_identity(ovsdb_remote):
    """``{"system-id": ..., "hostname": ...}`` as far as OVSDB has them."""
    with ovsdb.connect(ovsdb_remote) as db:
        return ovsdb.host_identity(db)

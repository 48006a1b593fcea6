"""The privileged boundary: the fixed set of operations that change the kernel or OVSDB.

Hooks run as the unprivileged ``vdsm`` user. Every host change is one named operation in
:data:`OPERATIONS`; the hook asks for it through :mod:`vnic_drivers.host` which, when not
root, runs this module's :func:`main` with ``sudo -n`` (the sudoers drop-in allows only
this entry point). Arguments are re-validated here whatever the caller did: this side
trusts nothing. An operation's implementation lives in :mod:`.netlink` (pyroute2) or
:mod:`.ovsdb` (ovs bindings) and is imported only when that operation runs.

What the caller must not choose at all (the OVSDB remote, the integration bridge) is not
an argument: it comes from this side's own config (:func:`configuration`). Through sudo
that is the root-owned ``/etc/vdsm/quantum_vnic.conf``; in-process (root) the same file
the hook read (:func:`vnic_drivers.config.select`).

Protocol of the entry point: ``quantum-vnic-privileged OPERATION`` with a JSON object of
arguments on stdin; the JSON result on stdout, exit 0; or one line on stderr and exit 1
(host error) / 2 (refused input).
"""

import functools
import json
import sys

from .. import hooking, naming
from ..errors import HookError, HostError, InputError


def _optional(validate):
    def check(value, what):
        return None if value is None else validate(value, what)

    return check


def _seconds(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 300:
        raise InputError("%s=%r: expected seconds from 0 to 300" % (what, value))
    return float(value)


def _boolean(value, what):
    if not isinstance(value, bool):
        raise InputError("%s=%r: expected true or false" % (what, value))
    return value


DEVICE = naming.device_name
BRIDGE = lambda value, what: naming.device_name(value, what, allow_dummy=True)  # noqa: E731
UUID = naming.uuid
MAC = naming.mac
MTU = naming.mtu
SECONDS = _seconds
BOOLEAN = _boolean
optional = _optional


class Operation:
    """One allowed host change: where it is implemented and how its arguments validate.

    *params* are what the caller sends (each validated); *configured* maps further
    arguments of the implementation to ``(section, option)`` of this side's config.
    """

    def __init__(self, module, function, params, doc, configured):
        self.module = module
        self.function = function
        self.params = params
        self.doc = doc
        self.configured = configured

    def validate(self, name, args):
        if not isinstance(args, dict):
            raise InputError("operation %s: arguments must be a JSON object" % name)
        unknown = sorted(set(args) - set(self.params))
        if unknown:
            raise InputError("operation %s: unknown argument %s" % (name, unknown[0]))
        clean = {}
        for param, validate in self.params.items():
            if param not in args:
                raise InputError("operation %s: argument %s is missing" % (name, param))
            clean[param] = validate(args[param], param)
        return clean

    def implementation(self):
        import importlib

        module = importlib.import_module("vnic_drivers.host." + self.module)
        return getattr(module, self.function)


# The whole privileged surface. Adding an operation here is adding to what sudo allows:
# keep each one narrow and every argument validated.
OPERATIONS = {}


def register(name, module, function, doc, /, configured=None, **params):
    """Declare an allowed operation (called at import time below, nowhere else)."""
    OPERATIONS[name] = Operation(module, function, params, doc, dict(configured or {}))


register(
    "link_state",
    "netlink",
    "link_state",
    "read a device's existence, master, state and MTU (read-only)",
    name=DEVICE,
)


# Linux Bridge: names are derived from the ids on this side (see host/netlink.py), so
# these can only touch tap + port[:11] (and only when it is a tun/tap device) and the
# brq + network[:11] bridge. Which bridge counts as VDSM's placeholder, which a tap may
# be taken off, is this side's config, never the caller's choice.
register(
    "linux_bridge_plug",
    "netlink",
    "linux_bridge_plug",
    "take the port's tap off the dummy bridge (or another network's brq bridge when "
    "network_id names its own), set its MTU, enslave it to brq+network[:11] when that "
    "exists and bring it up; optionally wait for the agent",
    configured={"dummy_bridge": ("linux_bridge", "dummy_bridge")},
    port_id=UUID,
    network_id=optional(UUID),
    mtu=optional(MTU),
    wait=SECONDS,
)
register(
    "linux_bridge_unplug",
    "netlink",
    "linux_bridge_unplug",
    "delete the port's tap when it outlived its device (only a tun/tap device; no-op when gone)",
    port_id=UUID,
)


# Open vSwitch: names are derived from port_id on this side (see host/ovs_plug.py), so
# these can only touch qbr/qvb/qvo/tap + port[:11] and ports of those names. Which OVSDB
# and which bridge is never the caller's choice (else vdsm could make root connect to any
# unix socket it names, or add ports to any bridge): both come from this side's config.
_REMOTE = {"ovsdb_remote": ("openvswitch", "ovsdb")}
_REMOTE_AND_BRIDGE = dict(_REMOTE, bridge=("openvswitch", "integration_bridge"))
register(
    "ovs_hybrid_plug",
    "ovs_plug",
    "hybrid_plug",
    "create qbr/qvb/qvo for a port and put qvo on the integration bridge; undone on failure",
    configured=_REMOTE_AND_BRIDGE,
    port_id=UUID, mac=MAC, vm_id=optional(UUID), mtu=optional(MTU),
)
register(
    "ovs_attach_tap",
    "ovs_plug",
    "attach_tap",
    "put the port's existing tap on the integration bridge with the agent's external_ids",
    configured=_REMOTE_AND_BRIDGE,
    port_id=UUID, mac=MAC, vm_id=optional(UUID), mtu=optional(MTU), wait=SECONDS,
)
register(
    "ovs_port_status",
    "ovs_plug",
    "port_status",
    "read the port's bridge, iface-id and VLAN tag, optionally waiting for the agent (read-only)",
    configured=_REMOTE_AND_BRIDGE,
    port_id=UUID, hybrid=BOOLEAN, wait=SECONDS,
)
register(
    "ovs_unplug",
    "ovs_plug",
    "unplug",
    "remove the port's qvo/tap OVS ports and its qbr/qvb/qvo devices; idempotent",
    configured=_REMOTE,
    port_id=UUID,
)
register(
    "ovs_host_identity",
    "ovs_plug",
    "host_identity",
    "read system-id and hostname from the Open_vSwitch table (read-only)",
    configured=_REMOTE,
)


# quantum-vnic cleanup (see host/leftovers.py): only names this project derives, the
# integration bridge from this side's config. Which vNICs are unused is the caller's
# finding (it asks libvirt); this side re-checks every name, kind and OVSDB row itself.
def _derived(value, what):
    """tap/qbr/qvb/qvo + a port id's first 11 characters, nothing else (never brq…)."""
    from .leftovers import split

    value = DEVICE(value, what)
    if split(value) is None:
        raise InputError("%s=%r: expected tap, qbr, qvb or qvo followed by the first 11 "
                         "characters of a port UUID" % (what, value))
    return value


register(
    "cleanup_inventory",
    "leftovers",
    "inventory",
    "list derived tap/qbr/qvb/qvo devices and derived ports with an iface-id on the "
    "integration bridge (read-only)",
    configured=_REMOTE_AND_BRIDGE,
)
register(
    "cleanup_remove",
    "leftovers",
    "remove",
    "remove one vNIC's leftovers, named by one of its derived devices: its OVS ports if "
    "still the rows seen (qvo_port, tap_port), its qbr/qvb/qvo/tap devices if of our kinds",
    configured=_REMOTE_AND_BRIDGE,
    name=_derived, qvo_port=optional(UUID), tap_port=optional(UUID),
)


# Loaded on first use by an operation that needs it, then kept for the process (the entry
# point runs one operation; a root hook process a few). A failure is not kept.
@functools.lru_cache(maxsize=None)
def configuration():
    """The config this side reads itself: /etc/vdsm/quantum_vnic.conf, or in-process the
    file the process selected (never one named by the environment or the caller's argv).

    A file that does not load is a host problem, not the caller's input: HostError.
    """
    from .. import config

    try:
        return config.load()
    except InputError as err:
        raise HostError("privileged side: %s" % err) from None


def validate(name, args):
    """The operation called *name* and its validated arguments, or InputError."""
    operation = OPERATIONS.get(name)
    if operation is None:
        raise InputError(
            "unknown privileged operation %r; known: %s" % (name, ", ".join(sorted(OPERATIONS)))
        )
    return operation, operation.validate(name, args)


class Then:
    """What an implementation returns when part of its work need not delay the caller:
    the *result*, and *step*, a callable doing the rest (``ovs_unplug``: deleting the
    devices it has already checked and set down). Which devices, and every check, is
    decided before; the step only carries it out."""

    def __init__(self, result, step):
        self.result = result
        self.step = step


def run(name, args, later=None):
    """Validate *args* for operation *name* and run it in this process (must be root).

    An operation's :class:`Then` step runs before this returns, unless the caller passes
    *later*: then ``later(step)`` is called instead, and the caller must run the step
    once it has passed the result on (the resident helper: right after its answer).
    """
    operation, clean = validate(name, args)
    # After validation: refused input never loads the config (nor touches the host).
    for param, (section, option) in operation.configured.items():
        clean[param] = configuration().get(section, option)
    outcome = operation.implementation()(**clean)
    if not isinstance(outcome, Then):
        return outcome
    if later is None:
        outcome.step()
    else:
        later(outcome.step)
    return outcome.result


# The arguments of every operation are a few ids and numbers: a few hundred bytes.
MAX_ARGUMENTS = 64 * 1024


def main(argv=None):
    """Entry point run through ``sudo -n``; see the module docstring for the protocol."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: quantum-vnic-privileged OPERATION < ARGS.json\n")
        return 2
    try:
        data = sys.stdin.buffer.read(MAX_ARGUMENTS + 1)
        if len(data) > MAX_ARGUMENTS:
            raise InputError("quantum-vnic-privileged: arguments are larger than %d bytes: "
                             "refused" % MAX_ARGUMENTS)
        args = hooking.load_json(data or b"{}", "quantum-vnic-privileged: arguments")
        result = run(argv[0], args)
    except InputError as err:
        sys.stderr.write("%s\n" % err)
        return 2
    except HookError as err:
        sys.stderr.write("%s\n" % err)
        return 1
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The only module that talks OVSDB: targeted transactions through the ``ovs`` bindings.

Why not the IDL (``ovs.db.idl``, what ``ovs-vsctl`` uses): it starts by replicating whole
tables, so on a host with thousands of ports on ``br-int`` every hook call would first
download every Port and Interface row, and the bridge's ``ports`` set, to change one.
Here each step is one RFC 7047 ``transact`` request sent with ``ovs.jsonrpc``:

- rows are picked with ``where`` clauses on the indexed ``name`` columns;
- the bridge's ``ports`` set is changed with ``mutate`` (insert / delete), never read;
- ``wait`` operations make a write conditional on what an earlier read saw (optimistic
  concurrency, as the IDL's ``verify``) and let the server, not a polling loop, tell when
  the OVS agent changed a port's VLAN tag.

So what travels on the socket, and the hook's cost, does not depend on the number of
ports. Every request has a deadline: an unresponsive ovsdb-server is an error, never a
hang. Imported only in the privileged process (see :mod:`.ovs_plug`).

A one-shot process (the sudo entry point) opens a connection per operation with
:func:`connect`. The resident helper calls :func:`share` once: from then on
:func:`connect` hands out one long-lived :class:`SharedOvsdb` per remote, which
reconnects when the connection broke and retries that request once; a request that
waits on the server (an agent's VLAN tag) gets a connection of its own, so it never
holds up the others.
"""

import errno
import os
import time

from ..errors import HostError

DATABASE = "Open_vSwitch"
# The VLAN the Quantum/Neutron OVS agent puts ports on until it has wired them.
DEAD_VLAN = 4095
# Seconds for connecting and for each request's answer (beyond any wait asked for).
RPC_TIMEOUT = 10.0
# A port replaced under our feet between a read and the write is read again this often.
WRITE_ATTEMPTS = 3


class ConnectionLost(HostError):
    """The connection to ovsdb-server broke (the request may or may not have run)."""


class TransactionError(HostError):
    """ovsdb-server rejected a transaction: which operation, and its error and details."""

    def __init__(self, remote, index, error, details):
        self.index = index
        self.error = error
        self.details = details
        super().__init__("OVSDB at %s: %s%s" % (remote, error, ": %s" % details if details else ""))


class Ovsdb:
    """One JSON-RPC connection to ovsdb-server; use :func:`connect` to make one."""

    def __init__(self, rpc, remote, timeout):
        self.rpc = rpc
        self.remote = remote
        self.timeout = timeout

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        if self.rpc is not None:
            self.rpc.close()
            self.rpc = None

    def transact(self, *operations, extra_seconds=0.0):
        """Run *operations* as one transaction; their results, or TransactionError."""
        results = self._request("transact", [DATABASE] + list(operations), extra_seconds)
        for index, result in enumerate(results):
            # After a failed operation the server answers null for the ones not run, and
            # a failed commit (e.g. a unique index violated) adds one result at the end.
            if isinstance(result, dict) and "error" in result:
                raise TransactionError(self.remote, index, result["error"], result.get("details"))
        return results

    def _request(self, method, params, extra_seconds):
        from ovs import jsonrpc, poller

        request = jsonrpc.Message.create_request(method, params)
        deadline = time.monotonic() + self.timeout + extra_seconds
        error = self.rpc.send(request)
        while not error:
            error, reply = self.rpc.recv()
            if error not in (0, errno.EAGAIN) or (not error and reply is None):
                # The connection broke (e.g. ECONNRESET: the server was killed while this
                # waited, tests/test_faults.py): there is no reply to look at.
                error = error or self.rpc.get_status() or errno.ECONNRESET
                break
            if error == errno.EAGAIN:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise HostError("OVSDB at %s did not answer within %gs; is ovsdb-server "
                                    "overloaded or stuck?" % (self.remote, self.timeout + extra_seconds))
                self.rpc.run()
                waiter = poller.Poller()
                self.rpc.wait(waiter)
                self.rpc.recv_wait(waiter)
                waiter.timer_wait(int(remaining * 1000) + 1)
                waiter.block()
                error = 0
            elif reply.type == jsonrpc.Message.T_REQUEST and reply.method == "echo":
                # The server's inactivity probe (tcp remotes): answer it or be dropped.
                error = self.rpc.send(jsonrpc.Message.create_reply(reply.params, reply.id))
            elif reply.id == request.id and reply.type in (jsonrpc.Message.T_REPLY, jsonrpc.Message.T_ERROR):
                if reply.type == jsonrpc.Message.T_ERROR:
                    raise HostError("OVSDB at %s refused %s: %s" % (self.remote, method, reply.error))
                return reply.result
        raise ConnectionLost("OVSDB at %s: connection lost (%s)" % (self.remote, _strerror(error)))


def _strerror(code):
    from ovs import jsonrpc

    return "closed by the server" if code == jsonrpc.EOF else os.strerror(code)


class SharedOvsdb:
    """A long-lived connection for a resident process: used by many threads, one request
    at a time; reopened (and the request retried once) when it broke. Closing it is a
    no-op, so code written for :func:`connect`'s ``with`` works unchanged."""

    def __init__(self, remote, timeout):
        import threading

        self.remote = remote
        self.timeout = timeout
        self._lock = threading.Lock()
        self._db = None

    def __enter__(self):
        with self._lock:
            if self._db is None:  # fail now when OVSDB is down, as connect() does
                self._db = _open(self.remote, self.timeout)
        return self

    def __exit__(self, *exc_info):
        pass

    def close(self):
        with self._lock:
            self._drop()

    def _drop(self):
        if self._db is not None:
            self._db.close()
            self._db = None

    def transact(self, *operations, extra_seconds=0.0):
        if extra_seconds > 0:
            # A server-side wait: on its own connection, so the shared one stays free.
            with _open(self.remote, self.timeout) as db:
                return db.transact(*operations, extra_seconds=extra_seconds)
        with self._lock:
            for attempt in (1, 2):
                if self._db is None:
                    self._db = _open(self.remote, self.timeout)
                try:
                    return self._db.transact(*operations)
                except ConnectionLost:
                    self._drop()
                    if attempt == 2:
                        raise
        raise AssertionError("not reached")


# remote -> SharedOvsdb, once share() was called (the resident helper); else None.
_SHARED = None


def share():
    """From now on, :func:`connect` returns one :class:`SharedOvsdb` per remote."""
    global _SHARED
    if _SHARED is None:
        _SHARED = {}


def close_shared():
    """Close the shared connections (the helper on exit, or its config changed)."""
    for db in list((_SHARED or {}).values()):
        db.close()
    if _SHARED is not None:
        _SHARED.clear()


def connect(remote, timeout=RPC_TIMEOUT):
    """An open connection to *remote* (``unix:PATH`` or ``tcp:HOST:PORT``), or HostError.

    Use it with ``with``. After :func:`share`, the one shared connection for *remote*.
    """
    if _SHARED is not None:
        # setdefault is atomic under the GIL: two threads end up with the same one.
        return _SHARED.setdefault(remote, SharedOvsdb(remote, timeout)).__enter__()
    return _open(remote, timeout)


def _open(remote, timeout):
    """A new :class:`Ovsdb` on *remote*, or HostError."""
    from ovs import jsonrpc, stream

    if remote.startswith("ssl:"):
        raise HostError("ovsdb=%s: ssl remotes need certificates quantum-vnic does not "
                        "configure; use the local unix: socket" % remote)
    error, connection = stream.Stream.open_block(stream.Stream.open(remote), int(timeout * 1000))
    if error:
        raise HostError("OVSDB at %s is unreachable (%s): is Open vSwitch running? "
                        "([openvswitch] ovsdb in the config names the socket)" % (remote, _strerror(error)))
    return Ovsdb(jsonrpc.Connection(connection), remote, timeout)


# --- JSON encodings of RFC 7047 values and operations ---

def _named(name):
    return [["name", "==", name]]


def _map(pairs):
    return ["map", sorted([key, value] for key, value in pairs.items())]


def _unmap(value):
    return dict(value[1]) if isinstance(value, list) and value[:1] == ["map"] else {}


def _optional(value):
    """An optional scalar column: the atom, or None for the empty set."""
    return None if isinstance(value, list) and value == ["set", []] else value


def _uuid(value):
    return value[1]


def _select(table, name, columns):
    return {"op": "select", "table": table, "where": _named(name), "columns": columns}


def _expect(table, where, columns, rows, timeout_ms=0, until="=="):
    """A ``wait`` operation: with *timeout_ms* 0 it fails at once unless the rows match."""
    return {"op": "wait", "table": table, "where": where, "columns": columns,
            "until": until, "rows": rows, "timeout": timeout_ms}


def _detach(port_uuid):
    """Remove a Port from whichever bridge holds it (OVSDB then drops the unreferenced rows)."""
    ref = ["uuid", port_uuid]
    return {"op": "mutate", "table": "Bridge", "where": [["ports", "includes", ref]],
            "mutations": [["ports", "delete", ref]]}


# --- What the operations in .ovs_plug need ---

# (remote, port name) -> (Port uuid, Interface uuid) of ports this process read or wrote.
# OVSDB answers a `_uuid ==` condition from its hash of rows but a `name ==` one by
# scanning the table (measured: 0.3 ms a select with br-int empty, 2 ms at 5,000 ports),
# and the resident helper asks about the same ports again and again (plug, check,
# update, unplug). A row uuid is never reused, so an entry whose rows are gone costs
# only the scan it saves otherwise.
_ROWS = {}
_ROWS_MAX = 4096


def _remember(db, name, port_uuid, iface_uuid):
    if len(_ROWS) >= _ROWS_MAX:
        _ROWS.clear()
    _ROWS[(db.remote, name)] = (port_uuid, iface_uuid)


def _forget(db, name):
    _ROWS.pop((db.remote, name), None)


def _refs(value):
    return [_uuid(ref) for ref in (value[1] if value[0] == "set" else [value])]


def _port_rows(db, name, port_columns, iface_columns):
    """``(Port row, Interface row)`` of port *name* and the interface of the same name,
    each None when missing; rows with ``_uuid`` and ``interfaces`` (Port) besides the
    columns asked for. By uuid when this process has seen the port, else by name."""
    port_columns = sorted(set(port_columns) | {"_uuid", "interfaces"})
    iface_columns = sorted(set(iface_columns) | {"_uuid"})
    known = _ROWS.get((db.remote, name))
    if known:
        port_rows, iface_rows = (result["rows"] for result in db.transact(
            {"op": "select", "table": "Port", "columns": port_columns,
             "where": [["_uuid", "==", ["uuid", known[0]]]] + _named(name)},
            {"op": "select", "table": "Interface", "columns": iface_columns,
             "where": [["_uuid", "==", ["uuid", known[1]]]] + _named(name)}))
        if port_rows and iface_rows and known[1] in _refs(port_rows[0]["interfaces"]):
            return port_rows[0], iface_rows[0]
        _forget(db, name)
    port_rows, iface_rows = (result["rows"] for result in db.transact(
        _select("Port", name, port_columns), _select("Interface", name, iface_columns)))
    port, iface = (port_rows[0] if port_rows else None), (iface_rows[0] if iface_rows else None)
    if port and iface and _uuid(iface["_uuid"]) in _refs(port["interfaces"]):
        _remember(db, name, _uuid(port["_uuid"]), _uuid(iface["_uuid"]))
    return port, iface


def _port_as_seen(db, name):
    """Port *name* and its Interface as they are now, in one read (None: no such port).

    ``{"port": uuid, "single": the port has exactly the Interface row of its own name,
    "iface": that row's uuid, "external_ids": dict, "raw_ids": as OVSDB sent it,
    "mtu_request": int or None}``.
    """
    port, iface = _port_rows(db, name, ["_uuid", "interfaces"], ["_uuid", "external_ids", "mtu_request"])
    if port is None:
        return None
    refs = _refs(port["interfaces"])
    return {"port": _uuid(port["_uuid"]), "iface": iface and _uuid(iface["_uuid"]),
            "single": iface is not None and refs == [_uuid(iface["_uuid"])],
            "external_ids": _unmap(iface["external_ids"]) if iface else {},
            "raw_ids": iface["external_ids"] if iface else None,
            "mtu_request": _optional(iface["mtu_request"]) if iface else None}


def add_port(db, bridge, name, external_ids, mtu=None):
    """Make port *name* (one interface, same name) be on *bridge* with *external_ids*
    (and ``mtu_request`` *mtu*, when given); what it took: ``"kept"``, ``"updated"`` or
    ``"added"``.

    Idempotent, and never bouncing a port that is already there: the OVS agent (and
    ovs-vswitchd) see a deleted and re-added port as a new one (new rows), which the agent
    unwires and wires again: the guest loses its network meanwhile. So a
    port on *bridge* whose interface already carries these ids is left alone
    (``kept``); one whose ids or MTU differ is corrected in place, same rows
    (``updated``: other keys of its external_ids stay); only a port that is missing, on
    another bridge or of another shape is (re)created (``added``), replacing the old one
    in the same transaction. Each write is conditional on the rows read just before (a
    ``wait``), so a concurrent change is read again rather than overwritten.
    """
    for _ in range(WRITE_ATTEMPTS):
        # Always a read first, answered before anything is written: a server that hung
        # (or was stopped) before this point fails the hook before a write is even sent.
        # A sent write that times out may still commit when the server wakes, and nothing
        # can be queued behind it: the server drops the connection on the failed reply.
        # Its port is then a leftover for the next run of this hook point or for
        # quantum-vnic cleanup.
        seen = _port_as_seen(db, name)
        if seen is not None and seen["single"]:
            done = _correct_in_place(db, bridge, name, seen, external_ids, mtu)
            if done:
                return done
            if done is None:
                continue  # changed since the read: read again
        if _replace(db, bridge, name, seen and seen["port"], external_ids, mtu):
            return "added"
    raise HostError("port %s kept changing while being added to %s; try again" % (name, bridge))


def _correct_in_place(db, bridge, name, seen, external_ids, mtu):
    """``"kept"`` or ``"updated"``; None when the rows changed since *seen*; '' when the
    port is not on *bridge* (or the bridge is missing): the caller replaces it then."""
    wanted = dict(seen["external_ids"], **external_ids)
    changes = {}
    if wanted != seen["external_ids"]:
        changes["external_ids"] = _map(wanted)
    if mtu is not None and seen["mtu_request"] != mtu:
        changes["mtu_request"] = mtu
    port_ref, iface_ref = ["uuid", seen["port"]], ["uuid", seen["iface"]]
    operations = [
        _expect("Bridge", _named(bridge) + [["ports", "includes", port_ref]], ["name"], [{"name": bridge}]),
        _expect("Port", _named(name), ["_uuid"], [{"_uuid": port_ref}]),
        _expect("Interface", [["_uuid", "==", iface_ref]], ["external_ids"], [{"external_ids": seen["raw_ids"]}]),
    ]
    if changes:
        operations.append({"op": "update", "table": "Interface", "where": [["_uuid", "==", iface_ref]],
                           "row": changes})
    try:
        db.transact(*operations)
    except TransactionError as err:
        if err.index == 0:
            return ""  # not on this bridge: not ours to correct in place
        if err.index < 3:
            return None
        raise HostError("OVSDB at %s refused to update port %s on %s: %s%s"
                        % (db.remote, name, bridge, err.error,
                           " (%s)" % err.details if err.details else "")) from None
    return "updated" if changes else "kept"


def _replace(db, bridge, name, existing, external_ids, mtu):
    """Insert port *name* on *bridge*, removing Port row *existing* (or expecting none)
    in the same transaction; False when the Port row is no longer as expected."""
    interface = {"name": name, "external_ids": _map(external_ids)}
    if mtu is not None:
        interface["mtu_request"] = mtu
    operations = [
        _expect("Port", _named(name), ["_uuid"], [{"_uuid": ["uuid", existing]}] if existing else []),
        _expect("Bridge", _named(bridge), ["name"], [{"name": bridge}]),
    ]
    if existing:
        operations.append(_detach(existing))
    operations += [
        {"op": "insert", "table": "Interface", "row": interface, "uuid-name": "iface"},
        {"op": "insert", "table": "Port", "uuid-name": "port",
         "row": {"name": name, "interfaces": ["named-uuid", "iface"]}},
        {"op": "mutate", "table": "Bridge", "where": _named(bridge),
         "mutations": [["ports", "insert", ["set", [["named-uuid", "port"]]]]]},
    ]
    try:
        results = db.transact(*operations)
    except TransactionError as err:
        if err.index == 0:  # the port is not as read: read it again
            return False
        if err.index == 1:
            raise HostError("bridge %s does not exist in OVSDB at %s: create it or set "
                            "[openvswitch] integration_bridge" % (bridge, db.remote)) from None
        raise HostError("OVSDB at %s refused to add port %s to %s: %s%s"
                        % (db.remote, name, bridge, err.error,
                           " (%s)" % err.details if err.details else "")) from None
    inserted = [result["uuid"] for result in results if "uuid" in result]  # Interface, Port
    if len(inserted) == 2:
        _remember(db, name, _uuid(inserted[1]), _uuid(inserted[0]))
    return True


def delete_ports(db, names):
    """Remove the ports called *names* from any bridge; the names that existed.

    The removal is conditional on the rows read just before (a ``wait`` per name): a
    port re-created under another UUID in between (libvirt's del-port/add-port, a
    concurrent plug) is read again rather than missed while reported removed.
    """
    for _ in range(WRITE_ATTEMPTS):
        results = db.transact(*[_select("Port", name, ["_uuid", "name"]) for name in names])
        found = [row for result in results for row in result["rows"]]
        if not found:
            return []
        seen = {row["name"]: row["_uuid"] for row in found}
        guards = [_expect("Port", _named(name), ["_uuid"],
                          [{"_uuid": seen[name]}] if name in seen else []) for name in names]
        try:
            db.transact(*(guards + [_detach(_uuid(row["_uuid"])) for row in found]))
        except TransactionError as err:
            if err.index < len(guards):  # a port changed since the read: read again
                continue
            raise
        for name in names:
            _forget(db, name)
        return [row["name"] for row in found]
    raise HostError("ports %s kept changing while being removed; try again" % ", ".join(names))


def iface_ports(db, bridge, wanted):
    """Ports on *bridge* whose name satisfies *wanted* and whose interface has an iface-id.

    ``[{"name", "uuid", "iface_id"}]``, read in one transaction. This reads the whole
    Port and Interface tables: for ``quantum-vnic cleanup`` and doctor, never a hook.
    """
    bridges, ports, interfaces = (result["rows"] for result in db.transact(
        _select("Bridge", bridge, ["ports"]),
        {"op": "select", "table": "Port", "where": [], "columns": ["_uuid", "name", "interfaces"]},
        {"op": "select", "table": "Interface", "where": [], "columns": ["_uuid", "external_ids"]}))
    if not bridges:
        return []
    members = bridges[0]["ports"]
    members = {_uuid(ref) for ref in (members[1] if members[0] == "set" else [members])}
    iface_ids = {_uuid(row["_uuid"]): _unmap(row["external_ids"]).get("iface-id") for row in interfaces}
    found = []
    for row in ports:
        port_uuid = _uuid(row["_uuid"])
        if port_uuid not in members or not wanted(row["name"]):
            continue
        refs = row["interfaces"]
        refs = refs[1] if refs[0] == "set" else [refs]
        ids = [iface_ids.get(_uuid(ref)) for ref in refs]
        iface_id = next((value for value in ids if value), None)
        if iface_id:
            found.append({"name": row["name"], "uuid": port_uuid, "iface_id": iface_id})
    return sorted(found, key=lambda port: port["name"])


def delete_port_if(db, bridge, name, port_uuid, iface_id_prefix):
    """Remove port *name* from *bridge* only if it is still row *port_uuid* and its
    interface's iface-id still starts with *iface_id_prefix*; whether it was removed.

    The check and the removal are one transaction (``wait`` preconditions), so a port
    re-created meanwhile (a VM starting, libvirt re-adding its tap) is never removed.
    """
    rows = db.transact(_select("Interface", name, ["external_ids"]))[0]["rows"]
    iface_id = _unmap(rows[0]["external_ids"]).get("iface-id") if rows else None
    if not iface_id or not iface_id.startswith(iface_id_prefix):
        return False
    ref = ["uuid", port_uuid]
    try:
        results = db.transact(
            _expect("Port", _named(name), ["_uuid"], [{"_uuid": ref}]),
            _expect("Interface", _named(name) + [["external_ids", "includes",
                                                  _map({"iface-id": iface_id})]],
                    ["name"], [{"name": name}]),
            {"op": "mutate", "table": "Bridge", "where": _named(bridge) + [["ports", "includes", ref]],
             "mutations": [["ports", "delete", ref]]})
    except TransactionError as err:
        if err.index < 2:
            return False
        raise
    return results[2].get("count", 0) > 0


def port_status(db, bridge, name):
    """Where port *name* is and what the agent needs from it (read-only).

    ``{"name", "bridge", "exists", "on_bridge", "iface_id", "tag", "ofport", "wired"}``.
    """
    port, iface = _port_rows(db, name, ["tag"], ["external_ids", "ofport"])
    status = {"name": name, "bridge": bridge, "exists": port is not None, "on_bridge": False,
              "iface_id": None, "tag": None, "ofport": None, "wired": False}
    if iface is not None:
        status["iface_id"] = _unmap(iface["external_ids"]).get("iface-id")
        status["ofport"] = _optional(iface["ofport"])
    if port is not None:
        port_uuid = port["_uuid"]
        status["tag"] = _optional(port["tag"])
        status["wired"] = status["tag"] not in (None, DEAD_VLAN)
        holders = db.transact({"op": "select", "table": "Bridge", "columns": ["name"],
                               "where": [["name", "==", bridge], ["ports", "includes", port_uuid]]})
        status["on_bridge"] = bool(holders[0]["rows"])
    return status


def wait_until_wired(db, bridge, name, timeout):
    """:func:`port_status` once the agent has tagged the port (not 4095), or at *timeout*.

    Each round asks the server to answer when the port's tag differs from the one last
    seen (a ``wait`` with a timeout), so nothing polls and a quiet agent costs nothing.
    """
    deadline = time.monotonic() + timeout
    status = port_status(db, bridge, name)
    while status["on_bridge"] and not status["wired"]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        seen = status["tag"] if status["tag"] is not None else ["set", []]
        try:
            db.transact(_expect("Port", _named(name), ["tag"], [{"tag": seen}],
                                timeout_ms=int(remaining * 1000), until="!="),
                        extra_seconds=remaining)
        except TransactionError as err:
            if err.error != "timed out":
                raise
        status = port_status(db, bridge, name)
    return status


def host_identity(db):
    """``system-id`` and ``hostname`` from the Open_vSwitch table's external_ids, if set."""
    rows = db.transact({"op": "select", "table": "Open_vSwitch", "where": [],
                        "columns": ["external_ids"]})[0]["rows"]
    ids = _unmap(rows[0]["external_ids"]) if rows else {}
    return {key: ids[key] for key in ("system-id", "hostname") if ids.get(key)}

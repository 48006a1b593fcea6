"""The helper's wire format: one JSON object per line on a Unix stream socket.

A client connects to ``[helper] socket`` and sends requests, each one line (``json.dumps``
never writes a raw newline)::

    {"op": "ovs_hybrid_plug", "args": {"port_id": "...", "mac": "...", ...}}\\n

and reads one line per request::

    {"ok": true, "result": <the operation's JSON result>}\\n
    {"ok": false, "kind": "input", "error": "one line"}\\n    refused arguments (sudo: exit 2)
    {"ok": false, "kind": "host", "error": "one line"}\\n     the host said no (sudo: exit 1)
    {"ok": false, "kind": "refused", "error": "one line"}\\n  the request itself is refused:
        caller not allowed, too large, nested too deep, not JSON, helper busy; the
        helper closes the connection after it, and a hook uses sudo instead

``{"op": "ping"}`` answers ``{"pid": ..., "uid": <the caller's uid>}`` (doctor). Requests
on one connection are answered in order; separate connections run concurrently. A
request line is at most :data:`MAX_REQUEST` bytes and nests at most :data:`MAX_DEPTH`
arrays/objects (the real ones nest 2 deep), checked before the JSON is parsed.

This is a local framing, not JSON-RPC: no ids, no batches, no notifications.
"""

import json

MAX_REQUEST = 64 * 1024
MAX_DEPTH = 4
OK, INPUT, HOST, REFUSED = "ok", "input", "host", "refused"

_STRING = r'"(?:[^"\\]|\\.)*"'


class Refused(Exception):
    """The request line is refused before it reaches an operation."""


def encode(message):
    return (json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8")


def nesting(text):
    """How deep *text* (JSON) nests arrays and objects, without parsing it (no recursion)."""
    import re  # the server's need only: clients skip the import

    depth = deepest = 0
    for match in re.finditer(r"[\[\]{}]", re.sub(_STRING, "", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def decode_request(line):
    """``(op, args)`` from one request line (bytes, without the newline), or Refused."""
    if len(line) > MAX_REQUEST:
        raise Refused("request of more than %d bytes" % MAX_REQUEST)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("request is not UTF-8") from None
    if nesting(text) > MAX_DEPTH:
        raise Refused("request nests deeper than %d levels" % MAX_DEPTH)
    try:
        request = json.loads(text)
    except ValueError as err:
        raise Refused("request is not JSON: %s" % err) from None
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        raise Refused('request must be a JSON object with "op" (a string) and "args" (an object)')
    args = request.get("args", {})
    if not isinstance(args, dict) or set(request) - {"op", "args"}:
        raise Refused('request must be a JSON object with "op" (a string) and "args" (an object)')
    return request["op"], args

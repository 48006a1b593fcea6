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

``{"op": "run_hook", "args": {"hook_point": ..., "port_id": ..., ...}}`` (an ``after_*``
hook point run whole, :mod:`.hook_runner`) is answered in binary frames instead, so the
hook process reads it without ``json`` (and the ``re`` it imports: ~7-10 ms of a process
that has ~15 ms of its own; :mod:`.hook_client`)::

    D                                  declined: the hook runs the hook point itself
    A <!H seconds>                     accepted; the result comes within that many seconds
    <!B exit code> <!I length> <text>  the result: VDSM's exit code, and the hook's stderr
                                       (UTF-8, log lines as the hook would have written them)

A JSON line (first byte ``{``) instead of ``D``/``A`` is a refusal as above. The helper
closes the connection after a ``run_hook``.

``{"op": "ping"}`` answers ``{"pid": ..., "uid": <the caller's uid>}`` (doctor). Requests
on one connection are answered in order; separate connections run concurrently. A
request line is at most :data:`MAX_REQUEST` bytes and nests at most :data:`MAX_DEPTH`
arrays/objects (the real ones nest 2 deep), checked before the JSON is parsed.

This is a local framing, not JSON-RPC: no ids, no batches, no notifications.
"""

import struct

MAX_REQUEST = 64 * 1024
MAX_DEPTH = 4
OK, INPUT, HOST, REFUSED = "ok", "input", "host", "refused"

RUN_HOOK = "run_hook"
DECLINED, ACCEPTED = b"D", b"A"
BOUND = struct.Struct("!H")  # after ACCEPTED: seconds
RESULT = struct.Struct("!BI")  # exit code, length of the text that follows
MAX_RESULT_TEXT = 256 * 1024  # the hook's stderr: a few lines, a traceback at worst

_STRING = r'"(?:[^"\\]|\\.)*"'


class Refused(Exception):
    """The request line is refused before it reaches an operation."""


def encode(message):
    import json  # the hook side's run_hook never needs it

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
    import json

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


def result_frame(code, text):
    """run_hook's result: *code* (0-255) and *text*, cut to MAX_RESULT_TEXT bytes."""
    data = text.encode("utf-8", "replace")[:MAX_RESULT_TEXT]
    return RESULT.pack(code, len(data)) + data

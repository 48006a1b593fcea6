"""A hook's side of the helper protocol (:mod:`.protocol`): one request, one answer.

Standard library only, so a hook that only talks to the helper never imports lxml,
pyroute2 or ovs. :class:`Unavailable` means "use sudo instead": no socket, nobody
listening, the request refused, no answer within the time allowed, or the connection
closed without one (the helper died).
"""

import json

# The C module, not socket.py: the hook needs a Unix stream socket, not selectors/enums.
import _socket

from ..errors import HostError, InputError


class Unavailable(Exception):
    """The helper did not answer this request; the caller may run it another way."""


def call(path, operation, args, timeout):
    """The result of *operation* run by the helper on *path*; InputError/HostError as the
    sudo path raises them; Unavailable when the helper cannot be used for it."""
    from .protocol import INPUT, REFUSED, encode

    request = encode({"op": operation, "args": args})
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            try:
                sock.sendall(request)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before it read the request: its one line says why
            reply = _read_line(sock)
        except _socket.timeout:
            raise Unavailable("no answer within %gs" % timeout) from None
        except OSError as err:
            raise Unavailable("%s (%s)" % (err.strerror or err, path)) from None
    finally:
        sock.close()
    if not reply:
        raise Unavailable("closed the connection without answering")
    try:
        answer = json.loads(reply)
        ok = answer["ok"]
    except (ValueError, KeyError, TypeError):
        raise Unavailable("answered something that is not the helper protocol") from None
    if ok is True:
        return answer.get("result")
    kind, error = answer.get("kind"), str(answer.get("error"))
    if kind == REFUSED:
        raise Unavailable("refused the request: %s" % error)
    raise (InputError if kind == INPUT else HostError)(error)


def _read_line(sock):
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b""  # EOF: a partial line is no answer
        end = chunk.find(b"\n")
        if end >= 0:
            chunks.append(chunk[:end])
            return b"".join(chunks)
        chunks.append(chunk)

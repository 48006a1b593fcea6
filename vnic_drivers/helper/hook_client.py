"""An ``after_*`` hook process asks the resident helper to run its whole hook point.

This is the first thing an ``after_*`` hook run by VDSM tries (:func:`vnic_drivers.hook_main.main`),
before it reads any config: the helper has root's copy of the same config loaded, runs
the driver's plug/unplug there (:mod:`.hook_runner`) and answers with the exit code and
the log lines the hook would have written, which go to this process's stderr for VDSM.
The protocol is in :mod:`.protocol`; the answer is binary so that this side needs no
``json``: the process imports ``_socket``, ``struct`` and the validators, nothing more.

:func:`run` returns None whenever the helper cannot or will not run it (no socket at
:data:`~vnic_drivers.helper.DEFAULT_SOCKET`, a refusal, a decline, a dropped connection):
the hook then runs the hook point itself, as without a helper, and reports any problem
in its own words.
"""

import sys

# The C module, not socket.py: a Unix stream socket needs nothing more.
import _socket

from . import DEFAULT_SOCKET, protocol

# [helper] client_timeout's default: how long to wait for the helper to take the request
# (this path has not read the config; the helper's answer says how long the rest may take).
TAKE_TIMEOUT = 5.0


class GaveUp:
    """Why the helper, which took the request, was given up on: the hook's own run goes
    to sudo directly instead of waiting for the same helper again."""

    def __init__(self, path, why):
        self.path = path
        self.why = why

    def applies_to(self, path):
        """Whether *path* is the socket given up on (itself, or a bind mount or link of it)."""
        import os

        try:
            return path == self.path or os.path.samefile(path, self.path)
        except OSError:
            return False


def run(hook_point, environ, path=DEFAULT_SOCKET, timeout=TAKE_TIMEOUT):
    """The exit code of *hook_point* run by the helper on *path*, its log lines written to
    stderr; None when the hook must run it itself; a :class:`GaveUp` when the helper took
    it and then failed to answer (whatever it did is idempotent: the hook redoes it)."""
    from .. import vnic as vnic_module
    from ..errors import InputError

    try:
        vnic = vnic_module.from_environment(environ)
    except InputError:
        return None  # the hook's own run says what is wrong
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(request(hook_point, vnic))
            if _read(sock, 1) != protocol.ACCEPTED:
                return None  # declined, or a refusal (a JSON line): the hook's run says why
            (seconds,) = protocol.BOUND.unpack(_read(sock, protocol.BOUND.size))
        except (OSError, EOFError):
            return None  # no helper there (the config may name another socket)
        try:
            sock.settimeout(seconds)
            code, length = protocol.RESULT.unpack(_read(sock, protocol.RESULT.size))
            text = _read(sock, length)
        except _socket.timeout:
            return GaveUp(path, "no answer within %ds" % seconds)
        except (OSError, EOFError):
            return GaveUp(path, "closed the connection without answering")
    finally:
        sock.close()
    sys.stderr.write(text.decode("utf-8", "replace"))
    return code


def request(hook_point, vnic):
    """The run_hook request line for *vnic* (validated by vnic.from_environment)."""
    args = (
        ("hook_point", hook_point),
        ("port_id", vnic.port_id),
        ("plugin_type", vnic.plugin_type),
        ("network_id", vnic.network_id),
        ("security_groups", ",".join(vnic.security_groups) or None),
        ("mtu", None if vnic.mtu is None else str(vnic.mtu)),
        ("vm_id", vnic.vm_id),
    )
    # Every value is a hook point name or passed a validator whose characters are letters,
    # digits, '_', '.', ',' and '-': written between quotes it is exactly what json.dumps
    # would write, without importing json (and re) into the hook process.
    body = ",".join('"%s":%s' % (key, "null" if value is None else '"%s"' % value)
                    for key, value in args)
    return ('{"op":"%s","args":{%s}}\n' % (protocol.RUN_HOOK, body)).encode("ascii")


def _read(sock, size):
    """Exactly *size* bytes; EOFError when the connection ends first."""
    chunks = []
    while size > 0:
        chunk = sock.recv(min(size, 65536))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


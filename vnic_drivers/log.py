"""Logging for hooks and tools: one line per message on stderr, which VDSM captures.

- stderr always: VDSM logs a hook's stderr into vdsm.log, so that is where an admin looks;
- syslog optionally (``[hook] syslog = true``), as ``quantum-vnic[PID]: ...`` on ``/dev/log``;
- the level comes from ``[hook] log_level``.

Every module logs through the one :data:`LOG` (``from .log import LOG``). Every message is
folded onto one line (a newline in a value cannot forge a second log entry) and passed
through :func:`redact`, so a credential that reaches a message by accident
(``password=...``, a token, ``user:secret@`` in a URL) is masked. The package itself logs
ids and device names only. A traceback (a bug, never an expected error) stays multi-line
on stderr for the report, and is folded too on syslog.

Why not the ``logging`` package for stderr: a hook process lives ~15 ms of its own, and
importing ``logging`` (with ``traceback``, ``threading``, ``string``, ``weakref``) costs
~7 ms of it, for a job that is one formatted write. ``logging.handlers.SysLogHandler``
still does syslog, imported only when syslog is on. Other libraries' ``logging`` calls
are left to ``logging``'s own defaults, as before.
"""

import sys

LOGGER_NAME = "quantum_vnic"
SYSLOG_ADDRESS = "/dev/log"
MASK = "***"
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}

# key=value / key: value / "key": "value" for keys that name a credential.
_SECRET_PAIR = r"""(?ix)
    (\b(?:[\w-]*password|passwd|secret|[\w-]*token|api[_-]?key|credentials?|authorization)
     ["']?\s*[=:]\s*["']?)
    (?:(?:bearer|basic)\s+)?
    [^\s"',;&]+
    """
# scheme://user:password@host
_URL_USERINFO = r"(\b[a-z][a-z0-9+.-]*://[^/@\s:]+:)[^/@\s]+(@)"
_compiled = []


def _patterns():
    # Compiled on the first message: the after_* hook paths never format one themselves
    # (the helper does), and `re` alone is ~6 ms of a hook process.
    if not _compiled:
        import re

        _compiled.extend((re.compile(_SECRET_PAIR), re.compile(_URL_USERINFO, re.I)))
    return _compiled


def redact(text):
    """*text* with credential values replaced by ``***``."""
    pair, userinfo = _patterns()
    text = pair.sub(lambda m: m.group(1) + MASK, text)
    return userinfo.sub(lambda m: m.group(1) + MASK + m.group(2), text)


def one_line(text):
    """*text* on one line: line breaks become `` | ``, other control characters escaped."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    folded = " | ".join(lines)
    return "".join(c if c.isprintable() else "\\x%02x" % ord(c) for c in folded)


def stderr_text(tag, messages):
    """The stderr form of ``(level, text, trace)`` *messages* of hook point or tool *tag*:
    a line per message; a traceback (trace, or None) stays multi-line, redacted."""
    lines = []
    for level, text, trace in messages:
        lines.append("quantum-vnic %s: %s: %s\n" % (tag, level, one_line(redact(text))))
        if trace is not None:
            lines.append(redact(trace) + "\n")
    return "".join(lines)


class Logger:
    """The package's logger: ``debug``/``info``/``warning``/``error``/``exception`` with
    %-style arguments, as ``logging.Logger`` has them."""

    def __init__(self):
        self.tag = "quantum-vnic"
        self.threshold = LEVELS["INFO"]
        self.stream = None  # None: sys.stderr at the time of writing (pytest swaps it)
        self.syslog = None
        self._captures = None  # threading.local, made by the first capture()

    def configure(self, tag, level="INFO", syslog=False, stream=None, syslog_address=SYSLOG_ADDRESS):
        self.tag = tag
        self.threshold = LEVELS[level]
        self.stream = stream
        if self.syslog is not None:
            self.syslog.close()
            self.syslog = None
        if syslog:
            self.syslog = _syslog_handler(address=syslog_address)
            if self.syslog is None:
                self.warning("syslog unavailable at %s; logging to stderr only", syslog_address)
        return self

    def enabled_for(self, level):
        return LEVELS[level] >= self.threshold

    def debug(self, message, *args):
        self._log("DEBUG", message, args)

    def info(self, message, *args):
        self._log("INFO", message, args)

    def warning(self, message, *args):
        self._log("WARNING", message, args)

    def error(self, message, *args):
        self._log("ERROR", message, args)

    def exception(self, message, *args):
        """ERROR with the traceback of the exception being handled (a bug, for the report)."""
        import traceback

        self._log("ERROR", message, args, traceback.format_exc().rstrip("\n"))

    def _log(self, level, message, args, trace=None):
        if LEVELS[level] < self.threshold:
            return
        text = message % args if args else message
        captured = self._captured()
        if captured is not None:
            captured.append((level, text, trace))
            return
        try:
            (self.stream or sys.stderr).write(stderr_text(self.tag, [(level, text, trace)]))
        except (OSError, ValueError):
            pass  # nowhere left to say it; the exit code still tells
        self.to_syslog(self.tag, [(level, text, trace)])

    def to_syslog(self, tag, messages):
        """Send ``(level, text, trace)`` *messages* of *tag* to syslog, when it is on."""
        if self.syslog is not None:
            for level, text, trace in messages:
                self.syslog.send(tag, level, text if trace is None else text + "\n" + trace)

    # --- the helper runs hooks for other processes: their lines go back to them ----------

    def capture(self):
        """Context manager: this thread's messages are collected as ``(level, text,
        trace)`` instead of written (the helper answers a hook with them: stderr_text)."""
        import contextlib
        import threading

        if self._captures is None:
            self._captures = threading.local()

        @contextlib.contextmanager
        def collecting():
            self._captures.lines = lines = []
            try:
                yield lines
            finally:
                self._captures.lines = None

        return collecting()

    def _captured(self):
        return None if self._captures is None else getattr(self._captures, "lines", None)


class _Syslog:
    """Folded, redacted lines to a syslog socket through ``logging.handlers.SysLogHandler``."""

    def __init__(self, handler, address):
        import logging

        self.handler = handler
        self.address = address
        self.failed = False
        self._record = logging.makeLogRecord

    def send(self, tag, level, text):
        record = self._record({"levelname": level, "levelno": LEVELS[level],
                               "msg": "quantum-vnic[%d]: %s: %s: %s"
                               % (_pid(), tag, level, one_line(redact(text)))})
        self.handler.emit(record)

    def close(self):
        self.handler.close()


def _pid():
    import os

    return os.getpid()


def _syslog_handler(address):
    """A connected syslog sender, or None (Python 3.9 raises, 3.11 defers the error)."""
    from logging.handlers import SysLogHandler

    class QuietSysLogHandler(SysLogHandler):
        """Syslog going away mid-run is one line on stderr, not a traceback per message."""

        failed = False

        def handleError(self, record):
            if not self.failed:
                self.failed = True
                sys.stderr.write("quantum-vnic: syslog at %s stopped accepting messages\n" % address)

    try:
        handler = QuietSysLogHandler(address=address, facility=SysLogHandler.LOG_DAEMON)
    except OSError:
        return None
    if handler.socket is None or handler.socket.fileno() < 0:
        handler.close()
        return None
    return _Syslog(handler, address)


LOG = Logger()


def setup(tag, level="INFO", syslog=False, stream=None, syslog_address=SYSLOG_ADDRESS):
    """Configure :data:`LOG` for this process; *tag* names the hook point or tool."""
    return LOG.configure(tag, level, syslog, stream, syslog_address)

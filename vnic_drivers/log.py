"""Logging for hooks and tools: one line per message on stderr, which VDSM captures.

- stderr always: VDSM logs a hook's stderr into vdsm.log, so that is where an admin looks;
- syslog optionally (``[hook] syslog = true``), as ``quantum-vnic[PID]: ...`` on ``/dev/log``;
- the level comes from ``[hook] log_level``.

Every message is folded onto one line (a newline in a value cannot forge a second log
entry) and passed through :func:`redact`, so a credential that reaches a message by
accident (``password=...``, a token, ``user:secret@`` in a URL) is masked. The package
itself logs ids and device names only. A traceback (a bug, never an expected error) stays
multi-line on stderr for the report, and is folded too on syslog.
"""

import logging
import re
import sys

LOGGER_NAME = "quantum_vnic"
SYSLOG_ADDRESS = "/dev/log"
MASK = "***"

# key=value / key: value / "key": "value" for keys that name a credential.
_SECRET_PAIR_RE = re.compile(
    r"""(?ix)
    (\b(?:[\w-]*password|passwd|secret|[\w-]*token|api[_-]?key|credentials?|authorization)
     ["']?\s*[=:]\s*["']?)
    (?:(?:bearer|basic)\s+)?
    [^\s"',;&]+
    """
)
# scheme://user:password@host
_URL_USERINFO_RE = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/@\s:]+:)[^/@\s]+(@)", re.I)


def redact(text):
    """*text* with credential values replaced by ``***``."""
    text = _SECRET_PAIR_RE.sub(lambda m: m.group(1) + MASK, text)
    return _URL_USERINFO_RE.sub(lambda m: m.group(1) + MASK + m.group(2), text)


def one_line(text):
    """*text* on one line: line breaks become `` | ``, other control characters escaped."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    folded = " | ".join(lines)
    return "".join(c if c.isprintable() else "\\x%02x" % ord(c) for c in folded)


class SafeFormatter(logging.Formatter):
    """Redacts and folds the message; folds the traceback too when *fold_traceback*."""

    def __init__(self, fmt, fold_traceback=False):
        super().__init__(fmt)
        self.fold_traceback = fold_traceback

    def formatMessage(self, record):
        # The record is shared with the other handler: change it only for this call.
        original = record.message
        record.message = one_line(redact(original))
        try:
            return super().formatMessage(record)
        finally:
            record.message = original

    def formatException(self, ei):
        text = redact(super().formatException(ei))
        return one_line(text) if self.fold_traceback else text

    def format(self, record):
        text = super().format(record)
        # With a folded traceback, the "\n" logging puts before it must go too.
        return one_line(text) if self.fold_traceback else text


def setup(tag, level="INFO", syslog=False, stream=None, syslog_address=SYSLOG_ADDRESS):
    """Configure the package logger for one process; *tag* names the hook point or tool."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in logger.handlers:
        handler.close()
    logger.handlers[:] = []
    logger.propagate = False
    logger.setLevel(level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(SafeFormatter("quantum-vnic %s: %%(levelname)s: %%(message)s" % tag))
    logger.addHandler(handler)
    if syslog:
        _add_syslog(logger, tag, syslog_address)
    return logger


def _add_syslog(logger, tag, address):
    handler = _syslog_handler(address)
    if handler is None:
        logger.warning("syslog unavailable at %s; logging to stderr only", address)
        return
    handler.setFormatter(SafeFormatter(
        "quantum-vnic[%%(process)d]: %s: %%(levelname)s: %%(message)s" % tag, fold_traceback=True))
    logger.addHandler(handler)


def _syslog_handler(address):
    """A connected syslog handler, or None (Python 3.9 raises, 3.11 defers the error)."""
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
    return handler

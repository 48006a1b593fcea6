"""Logging for hooks: one line per message on stderr, which VDSM captures into its log.

Optionally also to syslog (``[hook] syslog = true``). Messages never carry secrets: the
package logs ids and device names only.
"""

import logging
import sys

LOGGER_NAME = "quantum_vnic"


def setup(tag, level="INFO", syslog=False, stream=None):
    """Configure the package logger for one process; *tag* names the hook point or tool."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers[:] = []
    logger.propagate = False
    logger.setLevel(level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("quantum-vnic %s: %%(levelname)s: %%(message)s" % tag))
    logger.addHandler(handler)
    if syslog:
        from logging.handlers import SysLogHandler

        try:
            syslog_handler = SysLogHandler(address="/dev/log")
        except OSError as err:
            logger.warning("syslog unavailable (%s); logging to stderr only", err)
        else:
            syslog_handler.setFormatter(logging.Formatter("quantum-vnic[%s]: %%(message)s" % tag))
            logger.addHandler(syslog_handler)
    return logger

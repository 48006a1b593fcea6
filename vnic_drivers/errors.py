"""The one exception type the hooks raise for expected failures.

An expected failure (bad property, malformed XML, missing device, OVS down) is reported
as a single line on stderr with no traceback; the hook point decides the exit code.
"""


class HookError(Exception):
    """An expected failure: ``str(err)`` is the one line shown to the admin.

    ``exit_code`` overrides the hook point's default failure code when set (VDSM: 1 =
    failed, go on with the next script; 2 = failed, stop).
    """

    def __init__(self, message, exit_code=None):
        super().__init__(message)
        self.exit_code = exit_code


class InputError(HookError):
    """A value from the engine, the device XML or the config is missing or malformed."""


class HostError(HookError):
    """The host is not in the state the operation needs (device missing, OVSDB down)."""

"""How a request to the Quantum API authenticates (``[quantum] auth``).

:func:`for_config` returns an object with ``headers(session, refresh=False) -> dict``:
the headers to add to every request. *session* is the client's ``requests.Session``
(its ``verify`` and ``quantum_timeout = (connect, read)`` are the settings a token request
must use too); ``refresh=True`` after a 401 asks for a new token. Failures raise
:class:`vnic_drivers.errors.HostError` with one line, never a secret.

This version implements ``noauth`` only (Grizzly's default); the Keystone modes are built
on the i11-auth branch behind the same interface.
"""

from ..errors import InputError


class NoAuth:
    """``auth = noauth``: the server trusts the network; nothing to add."""

    def headers(self, session, refresh=False):
        return {}

    def __repr__(self):
        return "NoAuth()"


def for_config(config):
    mode = config.get("quantum", "auth")
    if mode == "noauth":
        return NoAuth()
    raise InputError("[quantum] auth = %s is not available in this build; use noauth" % mode)

"""Where the test fixtures keep what they build once per machine (the Neutron and Keystone
virtualenvs): the root ``./dev`` uses for its EL9 venv, so one directory holds them all.

Standard library only: the server modules call it from scripts run outside pytest.
"""

import os


def cache_root():
    """``$QUANTUM_VNIC_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/quantum-vnic`` (as ./dev)."""
    explicit = os.environ.get("QUANTUM_VNIC_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "quantum-vnic")

"""Stopping a test's child server process (Neutron, Keystone): politely, then for sure.

Standard library only, like the server modules that use it.
"""

import subprocess


def stop(process, grace=10):
    """Terminate *process* (a ``Popen``, or None) if it still runs, kill it if it has not
    exited after *grace* seconds, and reap it."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

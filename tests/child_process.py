"""Stopping a test's child server process (Neutron, Keystone): politely, then for sure;
waiting for processes that are not children (a killed run's daemons) to end.

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


def ended(pid):
    """Whether process *pid* (not necessarily a child) has ended; a zombie nobody has
    reaped yet has."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_until_ended(pids, seconds):
    """Wait up to *seconds* for every process of *pids* to end; those still running."""
    import time

    deadline = time.monotonic() + seconds
    while not all(ended(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if not ended(pid)]

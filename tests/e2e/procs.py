"""Starting, waiting for and stopping a daemon by pid (libvirtd's launcher), and the
reasons the e2e suite cannot run."""

import signal
import subprocess
import time


class Unavailable(Exception):
    """This machine cannot run a part of the suite; the message says why and what to do."""


class NotInstalled(Exception):
    """Software the suite needs is missing: `./dev deps` was not run or did not take."""


class StartFailed(Exception):
    """A daemon did not come up; the message carries the tail of its log."""


def in_netns(netns, argv):
    """*argv* run inside network namespace *netns* (``ip netns exec`` execs: same pid)."""
    return ["ip", "netns", "exec", netns] + list(argv)


def spawn(argv, log_path, env=None):
    """Start a foreground daemon with its output appended to *log_path*."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)


def log_tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return "".join(stream.readlines()[-lines:])
    except OSError:
        return "(no log at %s)" % path


def wait_until(ready, process, what, logs, timeout=30.0):
    """Poll *ready()* until true; fail early, with the *logs*, if *process* exits first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            problem = "exited with %s" % process.returncode
        elif time.monotonic() > deadline:
            problem = "not ready after %ds" % timeout
        else:
            time.sleep(0.05)
            continue
        raise StartFailed("%s %s\n%s" % (what, problem, "\n".join(
            "%s:\n%s" % (path, log_tail(path)) for path in logs)))


def stop(process, timeout=15.0):
    """SIGTERM the process by its pid, then SIGKILL if it lingers; reaps it either way."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)

"""Run libvirtd with private state directories and reap the QEMU processes it leaves.

Usage (what :mod:`tests.e2e.libvirtd` runs, inside the test network namespace)::

    unshare --mount --propagation private python3 launch_libvirtd.py ROOT LIBVIRTD_ARGS...

A root libvirtd has no option for its state directories: it always uses ``/etc/libvirt``,
``/run/libvirt``, ``/var/lib/libvirt``, ``/var/cache/libvirt`` and ``/var/log/libvirt``,
and creates those it misses (Debian's ``libvirt-daemon`` without ``-system`` ships none of
them). So, in this process's own mount namespace only, ``ROOT/etc``, ``ROOT/run``,
``ROOT/lib``, ``ROOT/cache`` and ``ROOT/log`` are bind-mounted over ``/etc/libvirt``,
``/run``, ``/var/lib``, ``/var/cache`` and ``/var/log``: libvirtd and its QEMU guests see
(and write) only those; the machine's files are untouched and two runs never collide.
Whole parents are covered because a bind mount needs an existing mount point.

libvirt double-forks QEMU, so a guest's parent becomes init, which on some machines
reaps late; libvirt waits for the pid to vanish, and a zombie made ``virDomainDestroy``
take ~1.5 s. This launcher makes itself the child subreaper and reaps at once. It runs
libvirtd in the foreground and forwards SIGTERM/SIGINT to it; it gets SIGTERM itself if
its parent (the test run) dies. Once libvirtd is gone it SIGKILLs, by pid, any guest left
(they outlive libvirtd by design; here nothing may) and exits when no child is left.
"""

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

# ROOT subdirectory -> where libvirtd sees it
MOUNTS = (
    ("etc", "/etc/libvirt"),
    ("run", "/run"),
    ("lib", "/var/lib"),
    ("cache", "/var/cache"),
    ("log", "/var/log"),
)


def private_mounts(root):
    """Bind ROOT's directories over libvirt's fixed paths, in this mount namespace only."""
    # unshare --propagation private already did this; repeat it so that a launcher run
    # any other way cannot mount over the machine's own directories.
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    for source, target in MOUNTS:
        path = os.path.join(root, source)
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "--bind", path, target], check=True)


def _prctl(option, value):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(%d, %d)" % (option, value))


def children():
    """Pids whose parent is this process (guests reparented here, once libvirtd is gone)."""
    mine = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="ascii", errors="replace") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()  # after "pid (comm)"
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == mine:
            found.append(int(entry))
    return found


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: launch_libvirtd.py ROOT LIBVIRTD [ARGS...]\n")
        return 2
    root, command = argv[1], argv[2:]
    if os.stat("/proc/self/ns/mnt").st_ino == os.stat("/proc/%d/ns/mnt" % os.getppid()).st_ino:
        sys.stderr.write("launch_libvirtd.py: refusing to mount in its caller's mount namespace;"
                         " run it under unshare --mount\n")
        return 2
    private_mounts(root)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    daemon = subprocess.Popen(command).pid  # reaped by the loop below, not by Popen
    status = None

    def forward(signum, frame):
        if status is None:  # the pid is still libvirtd's
            os.kill(daemon, signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    while True:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break  # nothing left: libvirtd and every guest are gone
        if pid == daemon:
            status = os.waitstatus_to_exitcode(wait_status)
            for guest in children():
                os.kill(guest, signal.SIGKILL)
    if status is None:
        return 1
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv))

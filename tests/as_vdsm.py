"""Run a command as the unprivileged user ``vdsm`` under the packaged sudoers drop-in.

Tests only; needs root. This machine has no ``vdsm`` user and its ``/etc`` must not change,
so everything happens in a private mount namespace (``unshare --mount``) that dies with
the command: copies of ``/etc/passwd``, ``/etc/group`` and ``/etc/shadow`` with a ``vdsm``
user, a ``/etc/sudoers.d`` holding only ``packaging/sudoers``, and an overlay on
``/usr/libexec`` holding the privileged entry point at the path sudo allows (a wrapper
that runs this checkout's package). Directories the command must reach but ``vdsm``
cannot traverse (e.g. a Python under ``/root``) get a 0755 overlay, in that namespace only.

Usage (as root): ``python3 tests/as_vdsm.py [--netns NS] [--root] WORKDIR -- COMMAND...``; run
through :func:`run_as_vdsm`, which does the ``unshare``. Exit 77 with one line on stderr
means the machine cannot do this (the caller skips).
"""

import argparse
import contextlib
import itertools
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRIVILEGED = "/usr/libexec/quantum-vnic/quantum-vnic-privileged"
SUDOERS_NAME = "50_vdsm_hook_quantum_vnic"
VDSM_ID = 36  # vdsm's uid/gid on oVirt hosts
CANNOT = 77
_OVERLAYS = itertools.count()


def required_tools():
    """Why this machine cannot run commands as vdsm, or None."""
    if os.geteuid() != 0:
        return "needs root to set up a private mount namespace"
    for tool in ("unshare", "setpriv", "sudo", "mount"):
        if shutil.which(tool) is None:
            return "needs %s (util-linux / sudo)" % tool
    if not os.path.isdir("/etc/sudoers.d"):
        return "needs /etc/sudoers.d included by /etc/sudoers"
    return None


@contextlib.contextmanager
def workdir():
    """A directory vdsm can read (and, in ``shared/``, write); removed afterwards.

    Not under pytest's tmp_path: that lives below a 0700 directory, and an overlay
    there would have its own upper directory inside its lower one.
    """
    path = tempfile.mkdtemp(prefix="qvnic-as-vdsm-", dir="/tmp")
    try:
        os.chmod(path, 0o755)
        os.mkdir(os.path.join(path, "shared"))
        os.chmod(os.path.join(path, "shared"), 0o1777)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_as_vdsm(workdir, argv, env=None, netns=None, input=None, timeout=60, as_root=False):
    """Run *argv* as vdsm (see the module docstring); returns the CompletedProcess.

    With *as_root* the command stays root on that same host view (an admin's tool, such
    as ``quantum-vnic doctor``, on a host where vdsm and the drop-in exist).
    """
    command = ["unshare", "--mount", "--propagation", "private", "--",
               sys.executable, os.path.abspath(__file__)]
    if netns:
        command += ["--netns", netns]
    if as_root:
        command += ["--root"]
    return subprocess.run(command + [str(workdir), "--"] + list(argv), env=env, input=input,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _mount(*args):
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def vdsm_uid():
    """The uid (= gid) vdsm gets in the namespace: 36 as on oVirt hosts, unless taken."""
    used = {entry.pw_uid for entry in pwd.getpwall()}
    return VDSM_ID if VDSM_ID not in used else next(i for i in range(900, 999) if i not in used)


def _add_vdsm(workdir, uid):
    """Bind-mount copies of the account files that know the user vdsm."""
    lines = {
        "passwd": "vdsm:x:%d:%d:Node Virtualization Manager:/var/lib/vdsm:/sbin/nologin\n" % (uid, uid),
        "group": "vdsm:x:%d:\n" % uid,
        # '*': no password login, yet not locked (PAM's account check must pass for sudo).
        "shadow": "vdsm:*:19000:0:99999:7:::\n",
    }
    for name, line in lines.items():
        copy = os.path.join(workdir, name)
        shutil.copy2("/etc/" + name, copy)  # keeps the mode: shadow stays unreadable
        with open(copy, "a", encoding="utf-8") as stream:
            stream.write(line)
        _mount("--bind", copy, "/etc/" + name)


def _overlay(workdir, target, mode, populate=None):
    """An overlay on *target* whose own directory has *mode*; *populate(upper)* adds files."""
    base = os.path.join(workdir, "overlay-%d" % next(_OVERLAYS))
    upper, work = os.path.join(base, "upper"), os.path.join(base, "work")
    os.makedirs(upper)
    os.makedirs(work)
    os.chmod(upper, mode)
    if populate:
        populate(upper)
    _mount("-t", "overlay", "overlay", "-o",
           "lowerdir=%s,upperdir=%s,workdir=%s" % (target, upper, work), target)


def _install_entry_point(upper):
    directory = os.path.join(upper, os.path.basename(os.path.dirname(PRIVILEGED)))
    os.makedirs(directory)
    os.chmod(directory, 0o755)
    path = os.path.join(directory, os.path.basename(PRIVILEGED))
    # No -I here on purpose: that the caller's environment cannot steer this root
    # process must come from the sudoers drop-in (env_reset), which is what is tested.
    with open(path, "w", encoding="utf-8") as stream:
        stream.write("#!%s\nimport sys\nsys.path.insert(0, %r)\n"
                     "from vnic_drivers.host.privileged import main\nsys.exit(main())\n"
                     % (sys.executable, REPO))
    os.chmod(path, 0o755)


def _sudoers_dir(workdir):
    directory = os.path.join(workdir, "sudoers.d")
    os.mkdir(directory)
    path = os.path.join(directory, SUDOERS_NAME)
    shutil.copyfile(os.path.join(REPO, "packaging", "sudoers"), path)
    os.chmod(path, 0o440)
    _mount("--bind", directory, "/etc/sudoers.d")


def _untraversable(paths):
    """Ancestors of *paths* that others cannot enter, outermost first."""
    found = set()
    for path in paths:
        path = os.path.realpath(path)
        while path != "/":
            if os.path.isdir(path) and not os.stat(path).st_mode & stat.S_IXOTH:
                found.add(path)
            path = os.path.dirname(path)
    return sorted(found, key=lambda p: p.count("/"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("--netns")
    parser.add_argument("--root", action="store_true", help="stay root: do not become vdsm")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    reason = required_tools()
    if reason:
        sys.stderr.write("as_vdsm: %s\n" % reason)
        return CANNOT
    uid = vdsm_uid()
    # This run's files (seen only through the mounts): root's alone, fresh every run.
    private = tempfile.mkdtemp(prefix="ns-", dir=args.workdir)
    try:
        _add_vdsm(private, uid)
        _sudoers_dir(private)
        _overlay(private, "/usr/libexec", 0o755, _install_entry_point)
        import lxml  # the hooks' one compiled dependency: its directory must be reachable

        for directory in _untraversable([sys.executable, sys.prefix, REPO, args.workdir,
                                         os.path.dirname(lxml.__file__)]):
            _overlay(private, directory, 0o755)
    except subprocess.CalledProcessError as err:
        sys.stderr.write("as_vdsm: cannot mount (%s): %s\n" % (" ".join(err.cmd), err.stderr.strip()))
        return CANNOT
    drop = [] if args.root else ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--init-groups", "--"]
    prefix = ["ip", "netns", "exec", args.netns] if args.netns else []
    argv = prefix + drop + command
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main())

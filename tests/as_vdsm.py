"""Run a command as the unprivileged user ``vdsm`` under the packaged sudoers drop-in.

Tests only; needs root. This machine has no ``vdsm`` user and its ``/etc`` must not change,
so everything happens in a private mount namespace (``unshare --mount``) that dies with
the command: copies of ``/etc/passwd``, ``/etc/group`` and ``/etc/shadow`` with a ``vdsm``
user, a ``/etc/sudoers.d`` holding only ``packaging/sudoers``, and an overlay on
``/usr/libexec`` holding the privileged entry point at the path sudo allows (a wrapper
that runs this checkout's package). Directories the command must reach but ``vdsm``
cannot traverse (e.g. a Python under ``/root``) get a 0755 overlay, in that namespace only.

sudo resets the environment, so the root process reads ``/etc/vdsm/quantum_vnic.conf``
whatever the caller sets, and takes the OVSDB remote and the integration bridge from it.
That path is the test's config file (``--config``), bind-mounted; without one, a config
whose OVSDB is a socket that does not exist: never the machine's own
(``/var/run/openvswitch``) nor its ``br-int``.

Usage (as root): ``python3 tests/as_vdsm.py [--netns NS] [--root] [--config FILE] WORKDIR --
COMMAND...``; run through :func:`run_as_vdsm`, which does the ``unshare``. Exit 77 with
one line on stderr means the machine cannot do this (the caller skips).
"""

import argparse
import contextlib
import itertools
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRIVILEGED = "/usr/libexec/quantum-vnic/quantum-vnic-privileged"
ROOT_CONFIG = "/etc/vdsm/quantum_vnic.conf"  # what the root process reads (sudo drops the env)
HELPER_SOCKET = "/run/quantum-vnic/helper.sock"  # vnic_drivers.helper.DEFAULT_SOCKET
NO_OVSDB = "no-ovsdb.sock"  # the remote of the default ROOT_CONFIG: nothing listens there
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


def run_as_vdsm(workdir, argv, env=None, netns=None, input=None, timeout=60, as_root=False,
                config=None, helper_socket=None):
    """Run *argv* as vdsm (see the module docstring); returns the CompletedProcess.

    With *as_root* the command stays root on that same host view (an admin's tool, such
    as ``quantum-vnic doctor``, on a host where vdsm and the drop-in exist). *config* is
    the file seen at ``/etc/vdsm/quantum_vnic.conf`` (the root process's config);
    *helper_socket* the socket seen at ``/run/quantum-vnic/helper.sock`` (a test helper's).
    """
    return subprocess.run(command(workdir, argv, netns, as_root, config, helper_socket), env=env, input=input,
                          capture_output=True, text=True, timeout=timeout, check=False)


def command(workdir, argv, netns=None, as_root=False, config=None, helper_socket=None):
    """The argv that runs *argv* as :func:`run_as_vdsm` does, for a caller that starts it
    itself (a daemon: ``subprocess.Popen``)."""
    prefix = ["unshare", "--mount", "--propagation", "private", "--",
              sys.executable, os.path.abspath(__file__)]
    if netns:
        prefix += ["--netns", netns]
    if as_root:
        prefix += ["--root"]
    if config:
        prefix += ["--config", os.path.abspath(config)]
    if helper_socket:
        prefix += ["--helper-socket", os.path.abspath(helper_socket)]
    return prefix + [str(workdir), "--"] + list(argv)


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


def _submounts(target):
    """Mount points below *target* not below another of them (from /proc/self/mountinfo)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as stream:
        # Field 5 is the mount point, with space, tab, newline and backslash as \ooo.
        points = {re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
                  for line in stream}
    below = sorted(p for p in points if p.startswith(target.rstrip("/") + "/"))
    return [p for p in below if not any(p.startswith(q + "/") for q in below)]


def _overlay(workdir, target, mode, populate=None):
    """An overlay on *target* whose own directory has *mode*; *populate(upper)* adds files.

    An overlay shows only the file system under *target*, not what is mounted below it
    (e.g. a container's /etc/hosts and /etc/resolv.conf): those are mounted again on top.
    """
    base = os.path.join(workdir, "overlay-%d" % next(_OVERLAYS))
    upper, work = os.path.join(base, "upper"), os.path.join(base, "work")
    os.makedirs(upper)
    os.makedirs(work)
    os.chmod(upper, mode)
    if populate:
        populate(upper)
    submounts = _submounts(target)
    if submounts:  # keep them reachable while the overlay hides them
        below = os.path.join(base, "below")
        os.mkdir(below)
        _mount("--rbind", target, below)
    _mount("-t", "overlay", "overlay", "-o",
           "lowerdir=%s,upperdir=%s,workdir=%s" % (target, upper, work), target)
    for point in submounts:
        _mount("--rbind", below + point[len(target.rstrip("/")):], point)


def _helper_socket(workdir, socket_path):
    """Show *socket_path* at HELPER_SOCKET, where after_* hooks look for the helper first,
    through an overlay on /run: the machine's /run is not changed."""
    directory = os.path.dirname(HELPER_SOCKET)

    def populate(upper):
        os.makedirs(os.path.join(upper, os.path.relpath(directory, "/run")), mode=0o755)
        open(os.path.join(upper, os.path.relpath(HELPER_SOCKET, "/run")), "w").close()

    _overlay(workdir, "/run", 0o755, populate)
    _mount("--bind", socket_path, HELPER_SOCKET)


def _root_config(workdir, config):
    """Bind *config* at ROOT_CONFIG; without one, a config whose OVSDB is nowhere."""
    if config is None:
        config = os.path.join(workdir, "quantum_vnic.conf")
        with open(config, "w", encoding="utf-8") as stream:
            stream.write("[openvswitch]\novsdb = unix:%s\n" % os.path.join(workdir, NO_OVSDB))
        os.chmod(config, 0o644)
    if not os.path.exists(ROOT_CONFIG):
        # A bind mount needs a file to mount on: add one (and its directory) by an
        # overlay on the nearest directory that exists, /etc/vdsm or /etc.
        parent = os.path.dirname(ROOT_CONFIG)
        target = parent if os.path.isdir(parent) else os.path.dirname(parent)

        def placeholder(upper):
            path = os.path.join(upper, os.path.relpath(ROOT_CONFIG, target))
            if not os.path.isdir(os.path.dirname(path)):
                os.mkdir(os.path.dirname(path))
                os.chmod(os.path.dirname(path), 0o755)  # vdsm's hooks read the file too
            open(path, "w", encoding="utf-8").close()

        _overlay(workdir, target, 0o755, placeholder)
    _mount("--bind", config, ROOT_CONFIG)


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
    parser.add_argument("--config", help="the file the root process sees at " + ROOT_CONFIG)
    parser.add_argument("--helper-socket", help="the socket seen at " + HELPER_SOCKET)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    reason = required_tools()
    if reason:
        sys.stderr.write("as_vdsm: %s\n" % reason)
        return CANNOT
    if args.config and not os.path.isfile(args.config):
        sys.stderr.write("as_vdsm: --config %s: no such file\n" % args.config)
        return 2  # the test's mistake: not a reason to skip
    uid = vdsm_uid()
    # This run's files (seen only through the mounts): root's alone, fresh every run.
    private = tempfile.mkdtemp(prefix="ns-", dir=args.workdir)
    try:
        _root_config(private, args.config)  # first: it may overlay /etc itself
        _add_vdsm(private, uid)
        _sudoers_dir(private)
        _overlay(private, "/usr/libexec", 0o755, _install_entry_point)
        if args.helper_socket:
            _helper_socket(private, args.helper_socket)
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

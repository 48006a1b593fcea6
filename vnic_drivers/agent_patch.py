"""``quantum-vnic agent-patch check|apply|revert [PATH]``: the Linux Bridge agent fix.

The agent's ``add_tap_interface`` does not add a tap that already sits on a bridge, and
VDSM parks every tap on ``;vdsmdummy;``. ``agent_patches/`` holds the fix as unified
diffs, one per agent variant (:data:`VARIANTS`); this command finds the installed agent
(or takes PATH), tells which variant and state it is in, and applies or reverts the
diff with the ``patch`` program (argv lists, no shell, ``--fuzz=0``: a hunk that does
not match exactly is a refusal, never a guess).

- ``apply``: idempotent (an already patched file is left as it is); the original is
  kept next to it as ``PATH`` + :data:`BACKUP_SUFFIX` until ``revert``.
- ``revert``: reverse-applies the diff, checks the result against the backup
  byte-for-byte and removes the backup; a file that is not patched is left as it is.
- A file neither variant recognises, patched or not, is refused and left untouched.

Exit codes: ``check`` 0 patched, 1 not patched; ``apply``/``revert`` 0 done or nothing
to do, 1 failed (no ``patch`` program, file not writable); 2 refused (no agent found, an
unknown file).
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

from .errors import HookError, HostError, InputError

BACKUP_SUFFIX = ".quantum-vnic-orig"
PATCHES_ENV = "QUANTUM_VNIC_AGENT_PATCHES"
# Where the diffs are: a source checkout, then where a package installs them.
PATCH_DIRS = (
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "agent_patches"),
    os.path.join(sys.prefix, "share", "quantum-vnic", "agent_patches"),
    "/usr/share/quantum-vnic/agent_patches",
)
# Where agents are installed besides this interpreter's own path (Grizzly ran on
# Python 2.6/2.7, whose site-packages this Python does not list).
SITE_GLOBS = ("/usr/lib*/python*/site-packages", "/usr/lib*/python*/dist-packages",
              "/usr/local/lib*/python*/site-packages", "/usr/local/lib*/python*/dist-packages")

PATCHED, UNPATCHED = "patched", "not patched"


class Variant:
    """One agent file the fix exists for: where it lives below site-packages, its diff."""

    def __init__(self, name, title, relative_path, diff):
        self.name = name
        self.title = title
        self.relative_path = relative_path
        self.diff = diff

    def diff_path(self):
        for directory in ([os.environ[PATCHES_ENV]] if os.environ.get(PATCHES_ENV) else []) + list(PATCH_DIRS):
            path = os.path.join(directory, self.diff)
            if os.path.isfile(path):
                return path
        raise HostError("the agent patch %s is not installed (looked in %s and $%s)"
                        % (self.diff, ", ".join(PATCH_DIRS), PATCHES_ENV))


VARIANTS = (
    Variant("grizzly", "Quantum Grizzly Linux Bridge agent",
            "quantum/plugins/linuxbridge/agent/linuxbridge_quantum_agent.py",
            "grizzly-linuxbridge-add-tap-interface.diff"),
    Variant("neutron", "Neutron 10.x-25.x Linux Bridge agent",
            "neutron/plugins/ml2/drivers/linuxbridge/agent/linuxbridge_neutron_agent.py",
            "neutron-linuxbridge-add-tap-interface.diff"),
)


def add_arguments(parser):
    parser.add_argument("action", choices=("check", "apply", "revert"),
                        help="check: tell the agent's variant and whether it is patched; "
                             "apply / revert the fix (idempotent)")
    parser.add_argument("path", nargs="?", metavar="PATH",
                        help="the agent's file (default: find the installed agent)")


def run(args):
    try:
        path = args.path or find_agent()
        variant, state = identify(path)
        if args.action == "check":
            _say("%s: %s (%s); %s" % (path, variant.title, variant.name, state))
            return 0 if state == PATCHED else 1
        if args.action == "apply":
            message = apply(path, variant, state)
        else:
            message = revert(path, variant, state)
    except InputError as err:
        _say("ERROR: %s" % err, sys.stderr)
        return 2
    except HookError as err:
        _say("ERROR: %s" % err, sys.stderr)
        return 1
    _say("%s: %s" % (path, message))
    return 0


def _say(line, stream=None):
    (stream or sys.stdout).write("quantum-vnic agent-patch: %s\n" % line)


def search_dirs():
    """Directories an agent may be installed below, without duplicates."""
    found = []
    for directory in sys.path + sorted(p for pattern in SITE_GLOBS for p in glob.glob(pattern)):
        real = os.path.realpath(directory or ".")
        if os.path.isdir(real) and real not in found:
            found.append(real)
    return found


def find_agent():
    """The one installed agent file of a known variant; an InputError for none or several."""
    candidates = [os.path.join(directory, variant.relative_path)
                  for directory in search_dirs() for variant in VARIANTS]
    found = [path for path in candidates if os.path.isfile(path)]
    if not found:
        raise InputError(
            "no Linux Bridge agent found (looked for %s below %s); pass the agent's file as PATH"
            % (" or ".join(v.relative_path for v in VARIANTS), ", ".join(search_dirs()))
        )
    if len(found) > 1:
        raise InputError("several Linux Bridge agents are installed (%s); pass one as PATH"
                         % ", ".join(found))
    return found[0]


def identify(path):
    """(variant, PATCHED or UNPATCHED) of the file at *path*; InputError if unknown."""
    if not os.path.isfile(path):
        raise InputError("%s is not a file; pass the Linux Bridge agent's .py file" % path)
    for variant in VARIANTS:
        diff = variant.diff_path()
        if _patch(path, diff, reverse=True) is not None:
            return variant, PATCHED
        if _patch(path, diff) is not None:
            return variant, UNPATCHED
    raise InputError(
        "%s is not an agent file this patch knows (%s, patched or not): its add_tap_interface "
        "differs from every variant in agent_patches/; nothing changed"
        % (path, " or ".join("%s %s" % (v.title, os.path.basename(v.relative_path)) for v in VARIANTS))
    )


def _patch(path, diff, reverse=False, output=None):
    """Run ``patch`` on *path* with *diff*; without *output* only a dry run.

    Returns True when every hunk applied exactly, None when one did not (nothing
    written). ``--forward`` in both directions: without it ``patch --batch`` takes a
    diff that applies the other way as meant that way and applies it.
    """
    program = shutil.which("patch")
    if program is None:
        raise HostError("the patch program is not installed (dnf/apt-get install patch)")
    argv = [program, "--batch", "--silent", "--fuzz=0", "--no-backup-if-mismatch",
            "--reject-file=-", "--forward", "--input=" + diff]
    argv += ["--reverse"] if reverse else []
    argv += ["--output=" + output] if output else ["--dry-run"]
    done = subprocess.run(argv + ["--", path], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=False)
    return True if done.returncode == 0 else None


def _read(path):
    with open(path, "rb") as stream:
        return stream.read()


def _replace(path, diff, reverse):
    """Write the (reverse-)patched *path* to a temp file beside it, then swap it in."""
    handle, temp = tempfile.mkstemp(prefix=".quantum-vnic-", dir=os.path.dirname(path) or ".")
    os.close(handle)
    try:
        if _patch(path, diff, reverse=reverse, output=temp) is None:
            raise HostError("patch did not apply to %s although its dry run did; nothing changed" % path)
        shutil.copymode(path, temp)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    return _read(path)


def apply(path, variant, state):
    if state == PATCHED:
        return "%s already patched; nothing to do" % variant.title
    backup = path + BACKUP_SUFFIX
    original = _read(path)
    try:
        with open(backup, "wb") as stream:
            stream.write(original)
        shutil.copymode(path, backup)
        _replace(path, variant.diff_path(), reverse=False)
    except OSError as err:
        _remove_quietly(backup)
        raise HostError("cannot patch %s: %s; nothing changed (run as root?)" % (path, err.strerror or err)) from None
    except BaseException:
        _remove_quietly(backup)
        raise
    return ("patched the %s (original kept as %s); restart the agent to use it"
            % (variant.title, backup))


def revert(path, variant, state):
    if state == UNPATCHED:
        return "%s is not patched; nothing to do" % variant.title
    backup = path + BACKUP_SUFFIX
    try:
        restored = _replace(path, variant.diff_path(), reverse=True)
    except OSError as err:
        raise HostError("cannot revert %s: %s; nothing changed (run as root?)" % (path, err.strerror or err)) from None
    if os.path.exists(backup):
        if _read(backup) != restored:
            return ("reverted the %s; %s differs from the result (an older original?), "
                    "left in place" % (variant.title, backup))
        os.unlink(backup)
    return "reverted the %s to its original; restart the agent to use it" % variant.title


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass

"""How drivers reach the host: ``host.call("operation", **args)``, and nothing else.

Drivers never import pyroute2 or the ovs bindings; they name an operation from
:data:`vnic_drivers.host.privileged.OPERATIONS`. Which way it runs is decided once per
hook call by :func:`connect`:

- :class:`InProcessHost` when already root (tests, ``quantum-vnic demo``);
- :class:`HelperHost` when unprivileged (VDSM runs hooks as ``vdsm``): asks the resident
  helper (``quantum-vnic-helper``, on ``[helper] socket``), and falls back to
  :class:`SudoHost` when it does not answer;
- :class:`SudoHost`: ``sudo -n`` the privileged entry point, which re-validates everything;
- :class:`DryRunHost` for ``simulate --dry-run`` (a hook's ``--dry-run`` argument):
  records what would run, changes nothing.

Which way is never taken from the environment: VDSM adds every custom property of a VM
or device to a hook's environment, whatever its name, so a variable here would let a
property turn a hook into a dry run or make it sudo another program. Dry-run is an
argument of :func:`connect` (from the hook's argv), the entry point a fixed path, the
helper's socket comes from the config file.
"""

import os
import sys

from ..errors import HookError, HostError, InputError
from ..log import LOG


# Where the RPM installs the sudo-allowed entry point.
DEFAULT_PRIVILEGED_COMMAND = "/usr/libexec/quantum-vnic/quantum-vnic-privileged"
SUDO_TIMEOUT = 120


class InProcessHost:
    """Runs operations directly (the caller is root). *later*: see :func:`privileged.run`
    (the resident helper, which runs what an operation leaves for after its answer)."""

    mode = "in-process"

    def __init__(self, later=None):
        self.later = later

    def call(self, operation, **args):
        from . import privileged

        LOG.debug("host: %s %s", operation, _describe(args))
        return privileged.run(operation, args, later=self.later)


class SudoHost:
    """Runs each operation through ``sudo -n`` in the privileged entry point."""

    mode = "sudo"

    def __init__(self, command):
        self.command = command

    def call(self, operation, **args):
        import json
        import subprocess

        from . import privileged

        # Validate here too, so a bad value fails with the hook's own message before
        # a process is spent on it; the other side validates again regardless.
        privileged.validate(operation, args)
        LOG.debug("host (sudo): %s %s", operation, _describe(args))
        argv = ["sudo", "-n", self.command, operation]
        # An operation that waits for an agent may legitimately take that long on top.
        timeout = SUDO_TIMEOUT + (args.get("wait") or 0)
        try:
            done = subprocess.run(
                argv,
                input=json.dumps(args),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            raise HostError("sudo is not installed; install sudo and the quantum-vnic sudoers drop-in") from None
        except subprocess.TimeoutExpired:
            raise HostError("privileged operation %s timed out after %ds" % (operation, timeout)) from None
        if done.returncode != 0:
            message = (done.stderr.strip().splitlines() or ["exit code %d" % done.returncode])[-1]
            if "a password is required" in message or "not allowed" in message:
                message += (
                    "; check /etc/sudoers.d/50_vdsm_hook_quantum_vnic allows %s" % self.command
                )
            error = InputError if done.returncode == 2 else HostError
            raise error("%s: %s" % (operation, message))
        try:
            return json.loads(done.stdout or "null")
        except ValueError:
            raise HostError("privileged operation %s returned no JSON result" % operation) from None


class HelperHost:
    """Asks the resident helper (:mod:`vnic_drivers.helper`) first; *fallback* (sudo) when
    its socket is absent, it refuses the caller, or it does not answer in time. Both run
    :func:`privileged.run` as root, so the result is the same either way."""

    mode = "helper"

    def __init__(self, path, timeout, fallback):
        self.path = path
        self.timeout = timeout
        self.fallback = fallback
        self.unavailable = None  # why the helper was given up on, for this process

    def call(self, operation, **args):
        from . import privileged

        privileged.validate(operation, args)  # bad input: the same error on either path
        if self.unavailable is None:
            from ..helper import client

            LOG.debug("host (helper): %s %s", operation, _describe(args))
            try:
                return client.call(self.path, operation, args, self.timeout + (args.get("wait") or 0))
            except client.Unavailable as err:
                self.unavailable = str(err)
                LOG.warning("quantum-vnic-helper at %s: %s; using sudo instead (is "
                            "quantum-vnic-helper.socket enabled? see quantum-vnic doctor)",
                            self.path, err)
        return self.fallback.call(operation, **args)


class DryRunHost:
    """Records the operations a hook would run; returns no result for them."""

    mode = "dry-run"

    def __init__(self, stream=None):
        self.calls = []
        self.stream = stream or sys.stderr

    def call(self, operation, **args):
        from . import privileged

        privileged.validate(operation, args)
        self.calls.append((operation, args))
        self.stream.write("dry-run: would run %s %s\n" % (operation, _describe(args)))
        return None


def _describe(args):
    import json

    return " ".join("%s=%s" % (key, json.dumps(value)) for key, value in sorted(args.items()))


def connect(dry_run=False, config=None, helper_gave_up=None):
    """The host access for this process: dry-run, in-process (root), helper or sudo.

    *helper_gave_up* (a :class:`vnic_drivers.helper.hook_client.GaveUp`): the helper on
    that socket already failed this hook once; go to sudo without waiting for it again.
    """
    if dry_run:
        return DryRunHost()
    if os.geteuid() == 0:
        return InProcessHost()
    sudo = SudoHost(DEFAULT_PRIVILEGED_COMMAND)
    # --- resident helper (issue 12): its socket and patience come from the config file
    # (the hook's, i.e. /etc/vdsm/quantum_vnic.conf), never from the environment.
    if config is not None:
        path = config.get("helper", "socket")
        if helper_gave_up is not None and helper_gave_up.applies_to(path):
            LOG.warning("quantum-vnic-helper at %s: %s; using sudo instead (see quantum-vnic "
                        "doctor, and the helper's journal)", path, helper_gave_up.why)
            return sudo
        return HelperHost(path, max(config.get("helper", "client_timeout"), 0.5), sudo)
    # --- end resident helper
    return sudo


__all__ = ["connect", "InProcessHost", "HelperHost", "SudoHost", "DryRunHost", "HookError"]

"""VDSM's own hook runner (``../shared/vdsm``) driving this checkout's hooks, for tests.

``../shared/vdsm`` holds ``vdsm/common/hooks.py`` unchanged from VDSM; the path is
computed from the repository root (the folder ``shared`` beside the checkout, as in CI).
:func:`skip_reason` says why it cannot run here.

:class:`HookTree` lays the hooks out as the RPM does, one ``<hook_point>/50_quantum_vnic``
per ``hooks/<hook_point>``, each run with ``python3 -I`` (isolated: no ``PYTHON*``
variable, as installed). Each script differs from the installed one only in what a test
needs and VDSM never passes: this checkout's package on ``sys.path``, the test's config
as the hook's ``--config`` argument (the installed hook reads the fixed
``/etc/vdsm/quantum_vnic.conf``), and, for host tests, the network namespace the script
enters before the hook runs (the host's, for the hook). VDSM's runner then does the rest:
the temp file (empty when given ``None``), the environment (VDSM's own, device custom
properties, the VM's over them, ``vmId``, ``_hook_domxml``), the exit codes.

    tree = HookTree(directory, config="[openvswitch]\\novsdb = unix:...", netns="qvnic-x")
    with tree.installed() as hooks:        # vdsm.common.hooks, pointed at the tree
        xml = hooks.before_device_create(device_xml, vmconf, custom)
        results = tree.results(hooks.after_device_create, None, vmconf, custom)

``vmconf`` is ``{"vmId": VM_UUID, "custom": {VM custom properties}}``; ``custom`` is the
device's custom properties (VDSM's names: ``params`` at hot-plug and update).
"""

import contextlib
import logging
import os
import shutil
import sys

from tests.vdsm import REPO, test_config

SHARED_VDSM = os.path.join(os.path.dirname(REPO), "shared", "vdsm")
HOOK_FILE = "50_quantum_vnic"

SCRIPT = """#!{python} -I
# hooks/{hook_point} as installed by the RPM, run by VDSM's hook runner in a test: this
# checkout's package, the test's config as the hook's argument (VDSM passes none, and the
# installed hook reads /etc/vdsm/quantum_vnic.conf), in the test's network namespace.
import sys
sys.path.insert(0, {repo!r})
{enter_netns}
from vnic_drivers.hook_main import main

sys.exit(main({hook_point!r}, argv={argv!r}))
"""
ENTER_NETNS = "from pyroute2 import netns\nnetns.setns({netns!r})"


def skip_reason():
    """Why VDSM's runner cannot drive the hooks here, or None."""
    if not os.path.isfile(os.path.join(SHARED_VDSM, "vdsm", "common", "hooks.py")):
        return ("needs VDSM's hook runner at %s (the project's shared folder beside the "
                "checkout; CI has it)" % SHARED_VDSM)
    if shutil.which("taskset") is None:
        return "needs taskset, which VDSM's runner starts every hook through (apt-get install util-linux)"
    return None


def vdsm_hooks():
    """VDSM's ``vdsm.common.hooks`` module, imported from ``../shared/vdsm``."""
    if SHARED_VDSM not in sys.path:
        sys.path.insert(0, SHARED_VDSM)
    from vdsm.common import hooks

    return hooks


class HookTree:
    """``<directory>/<hook_point>/50_quantum_vnic`` for every ``hooks/*`` of the checkout."""

    def __init__(self, directory, config=None, netns=None, dry_run=False):
        self.directory = os.path.join(directory, "hooks")
        self.config_path = os.path.join(directory, "quantum_vnic.conf")
        self.netns = netns
        self.write_config(config)
        argv = ["--config", self.config_path] + (["--dry-run"] if dry_run else [])
        enter = ENTER_NETNS.format(netns=netns) if netns else ""
        for hook_point in sorted(os.listdir(os.path.join(REPO, "hooks"))):
            os.makedirs(os.path.join(self.directory, hook_point), exist_ok=True)
            path = os.path.join(self.directory, hook_point, HOOK_FILE)
            with open(path, "w", encoding="utf-8") as stream:
                stream.write(SCRIPT.format(python=sys.executable, repo=REPO, hook_point=hook_point,
                                           argv=argv, enter_netns=enter))
            os.chmod(path, 0o755)

    def write_config(self, config=None):
        """(Re)write the hooks' config (ini text; the suite's [hook] defaults added)."""
        with open(self.config_path, "w", encoding="utf-8") as stream:
            stream.write(test_config(config))

    @contextlib.contextmanager
    def installed(self):
        """VDSM's hooks module with ``P_VDSM_HOOKS`` pointed at this tree, restored after."""
        hooks = vdsm_hooks()
        saved = hooks.P_VDSM_HOOKS
        hooks.P_VDSM_HOOKS = self.directory + "/"
        try:
            yield hooks
        finally:
            hooks.P_VDSM_HOOKS = saved

    @staticmethod
    def results(call, *args, **kwargs):
        """``(returned value, [(script, rc, stderr)])`` of one call into VDSM's runner.

        VDSM's ``after_*`` calls do not raise on a failing hook, they log it: the log is
        where the exit codes are read back.
        """
        runs = []

        class Collect(logging.Handler):
            def emit(self, record):
                if record.msg == "%s: rc=%s err=%s":
                    script, rc, err = record.args
                    runs.append((script, rc, err.decode("utf-8", "replace") if isinstance(err, bytes) else err))

        handler = Collect(logging.INFO)
        root = logging.getLogger()
        level = root.level
        root.addHandler(handler)
        root.setLevel(min(level, logging.INFO))
        try:
            value = call(*args, **kwargs)
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
        return value, runs

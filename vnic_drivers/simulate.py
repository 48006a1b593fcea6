"""``quantum-vnic simulate``: run a hook point on a device XML file exactly as VDSM would.

The XML is copied to a temp file named by ``_hook_domxml``; the device's custom
properties, then the VM's (which override them, as in VDSM), and ``vmId`` go into the
environment; the hook runs as its own process; its stderr, the resulting XML and the
exit code are shown. With ``--dry-run`` host operations are printed, not performed.

``--config`` and ``--dry-run`` reach the hook as its arguments, never as environment
variables: a hook's environment also carries every custom property, so a variable would
be a control any VM's properties could set (see :class:`vnic_drivers.hook_main.Options`).
"""

import os
import shutil
import subprocess
import sys
import tempfile

EXIT_MEANING = {0: "success", 1: "failed, VDSM logs it and goes on", 2: "failed, VDSM stops"}


def add_arguments(parser):
    from .hook_main import HOOK_POINTS

    parser.add_argument("hook", choices=sorted(HOOK_POINTS), metavar="HOOK",
                        help="hook point, e.g. before_device_create")
    parser.add_argument("--domxml", required=True, metavar="FILE",
                        help="device XML (<interface>) as VDSM writes it")
    parser.add_argument("--property", "-p", action="append", default=[], metavar="KEY=VALUE",
                        help="a device custom property (repeat)")
    parser.add_argument("--vm-property", action="append", default=[], metavar="KEY=VALUE",
                        help="a VM custom property; overrides a device property of the same name")
    parser.add_argument("--vm-id", default="d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de",
                        help="the vmId VDSM passes (default: a fixed example UUID)")
    parser.add_argument("--config", metavar="FILE",
                        help="config file instead of /etc/vdsm/quantum_vnic.conf")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the host operations instead of performing them")


def _pairs(items, option):
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit("quantum-vnic simulate: %s %r: expected KEY=VALUE" % (option, item))
        pairs[key] = value
    return pairs


def hook_environment(domxml_path, properties, vm_properties, vm_id, base=None):
    """The environment VDSM gives a device hook (also used by the tests' VDSM stand-in)."""
    env = dict(os.environ if base is None else base)
    env.update(properties)
    env.update(vm_properties)
    env["vmId"] = vm_id
    env["_hook_domxml"] = domxml_path
    return env


def run(args):
    properties = _pairs(args.property, "--property")
    vm_properties = _pairs(args.vm_property, "--vm-property")
    workdir = tempfile.mkdtemp(prefix="quantum-vnic-simulate-")
    try:
        domxml_path = os.path.join(workdir, "domxml")
        try:
            shutil.copyfile(args.domxml, domxml_path)
        except OSError as err:
            sys.stderr.write("quantum-vnic simulate: cannot read %s: %s\n" % (args.domxml, err.strerror))
            return 2
        env = hook_environment(domxml_path, properties, vm_properties, args.vm_id)
        argv = [sys.executable, "-m", "vnic_drivers.hook_main", args.hook]
        if args.config:
            argv += ["--config", os.path.abspath(args.config)]
        if args.dry_run:
            argv.append("--dry-run")
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        for line in done.stderr.splitlines():
            sys.stderr.write("  | %s\n" % line)
        with open(args.domxml, "rb") as before, open(domxml_path, "rb") as after:
            changed = before.read() != after.read()
            after.seek(0)
            result = after.read().decode("utf-8", "replace")
        sys.stdout.write(result if result.endswith("\n") else result + "\n")
        sys.stderr.write(
            "%s: exit %d (%s); device XML %s\n"
            % (args.hook, done.returncode, EXIT_MEANING.get(done.returncode, "warning"),
               "rewritten" if changed else "unchanged")
        )
        return done.returncode
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

"""``quantum-vnic``: the admin's command. Each subcommand lives in its own module.

A subcommand module provides ``add_arguments(parser)`` and ``run(args) -> exit code``,
and is imported only when used.
"""

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS = {
    "simulate": ("vnic_drivers.simulate", "run a hook as VDSM would, on a device XML file"),
    "doctor": ("vnic_drivers.doctor", "check this host's install, agents, OVS and bridges"),
    "demo": ("vnic_drivers.demo", "run the real hooks for a VM on a throwaway host (root)"),
    "agent-patch": ("vnic_drivers.agent_patch", "check, apply or revert the Linux Bridge agent's tap fix"),
    "cleanup": ("vnic_drivers.cleanup", "remove devices and OVS ports of vNICs no running VM uses"),
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="quantum-vnic",
        description="Host side of oVirt's OpenStack Quantum (Neutron) vNICs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        # Argument definitions are cheap to import; the heavy work is in run().
        importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return importlib.import_module(args._module).run(args)


if __name__ == "__main__":
    sys.exit(main())

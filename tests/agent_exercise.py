"""Run a Linux Bridge agent's own ``add_tap_interface`` against the real bridges of the
network namespace this process runs in (the tests start it with ``ip netns exec``).

Usage: ``agent_exercise.py VARIANT AGENT_FILE NETWORK_ID TAP`` (VARIANT: grizzly,
neutron-brctl or neutron-netlink); prints the tap's master afterwards as JSON.

The agent's modules cannot be imported here (oslo, eventlet, a message bus...), so the
function is taken from the agent file with :mod:`ast`, compiled unchanged, and run with
small stand-ins for its collaborators. The stand-ins act on the kernel the way the real
ones do: ``brctl addif/delif`` is the very ioctl brctl issues (SIOCBRADDIF/SIOCBRDELIF,
which refuses a device that already has a master), Neutron 25's bridge_lib moves
masters over netlink as here with pyroute2, and a device's bridge is read from sysfs
exactly as the agents read it. The agent-side decisions (which bridge is "the" bridge,
whether the tap needs adding, what to remove) are the agent file's code alone.
"""

import ast
import fcntl
import json
import logging
import os
import socket
import struct
import sys
import types

SIOCBRADDIF, SIOCBRDELIF = 0x89A2, 0x89A3
BRIDGE_PREFIX = "brq"


def brctl(command, bridge, device):
    """``brctl addif|delif BRIDGE DEVICE``: the same ioctl brctl sends; RuntimeError on
    failure, as the agents' ``utils.execute`` raises for a failing command."""
    request = {"addif": SIOCBRADDIF, "delif": SIOCBRDELIF}[command]
    try:
        ifreq = struct.pack("16si", bridge.encode(), socket.if_nametoindex(device)).ljust(40, b"\0")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            fcntl.ioctl(sock.fileno(), request, ifreq)
    except OSError as err:
        raise RuntimeError("brctl %s %s %s: %s" % (command, bridge, device, err.strerror)) from None
    return ""  # the agents treat output as failure only when truthy


def set_master(device, bridge):
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        master = ipr.link_lookup(ifname=bridge)[0] if bridge else 0
        ipr.link("set", index=ipr.link_lookup(ifname=device)[0], master=master)
    return True


def device_exists(name):
    return os.path.exists("/sys/class/net/%s" % name)


def bridge_of(device):
    """The bridge *device* is a port of, from sysfs (as bridge_lib and Grizzly read it)."""
    try:
        return os.path.basename(os.readlink("/sys/class/net/%s/brport/bridge" % device))
    except OSError:
        return None


def agent_function(path, class_name, names):
    """The first method of *names* in *class_name* of the agent file, unchanged, plus
    the module's constants (``NAME = "literal" + OTHER_NAME`` and the like)."""
    with open(path, encoding="utf-8") as stream:
        tree = ast.parse(stream.read(), path)
    plain = (ast.Constant, ast.Name, ast.Load, ast.BinOp, ast.Add)
    constants = [node for node in tree.body if isinstance(node, ast.Assign)
                 and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)
                 and all(isinstance(n, plain) for n in ast.walk(node.value))]
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name]
    methods = {node.name: node for node in classes[0].body if isinstance(node, ast.FunctionDef)}
    function = next(methods[name] for name in names if name in methods)
    return constants, function


def run_function(path, class_name, names, namespace):
    constants, function = agent_function(path, class_name, names)
    module = ast.Module(body=constants + [function], type_ignores=[])
    exec(compile(module, path, "exec"), namespace)  # noqa: S102 - the agent's own code
    return namespace[function.name]


class Neutron:
    """Stand-ins for what Neutron's ``_add_tap_interface`` calls."""

    def __init__(self, bridge_api):
        self.bridge_mappings = {}
        move = set_master if bridge_api == "netlink" else None

        class BridgeDevice:
            def __init__(self, name):
                self.name = name

            @classmethod
            def get_interface_bridge(cls, interface):
                name = bridge_of(interface)
                return cls(name) if name else None

            def addif(self, interface):
                return move(interface, self.name) if move else brctl("addif", self.name, interface)

            def delif(self, interface):
                return move(interface, None) if move else brctl("delif", self.name, interface)

        constants = types.SimpleNamespace(TYPE_LOCAL="local", DEVICE_OWNER_COMPUTE_PREFIX="compute:")
        self.namespace = {
            "ip_lib": types.SimpleNamespace(device_exists=device_exists),
            "bridge_lib": types.SimpleNamespace(BridgeDevice=BridgeDevice),
            "constants": constants, "p_const": constants,
            "LOG": logging.getLogger("agent"),
        }

    def get_existing_bridge_name(self, physical_network):
        return self.bridge_mappings.get(physical_network)

    def get_bridge_name(self, network_id):
        return BRIDGE_PREFIX + network_id[:11]

    def ensure_physical_in_bridge(self, *args):
        return True  # the brq bridge exists already in the test namespace

    def ensure_local_bridge(self, *args):
        pass

    def _set_tap_mtu(self, *args):
        pass

    def add_tap(self, path, network_id, tap):
        function = run_function(path, "LinuxBridgeManager", ("_add_tap_interface", "add_tap_interface"),
                                self.namespace)
        # A VLAN network, a port owned by oVirt (not "compute:"): the agent plugs it.
        return function(self, network_id, "vlan", "physnet1", 100, tap, "oVirt", None)


class Grizzly:
    """Stand-ins for what Grizzly's ``add_tap_interface`` calls; the methods of its own
    class it uses behave as Grizzly's do (notably ``get_bridge_for_tap_device`` looks
    at ``brq`` bridges only)."""

    root_helper = "sudo"

    def __init__(self):
        def execute(argv, root_helper=None):
            if argv[:3] == ["ip", "link", "show"]:
                if not device_exists(argv[-1]):
                    raise RuntimeError("Device %s does not exist" % argv[-1])
                return argv[-1]
            if argv[0] == "brctl":
                return brctl(argv[1], argv[2], argv[3])
            raise AssertionError("unexpected command %r" % argv)

        self.execute = execute
        self.namespace = {"os": os, "LOG": logging.getLogger("agent"), "_": lambda text: text,
                          "utils": types.SimpleNamespace(execute=execute),
                          "lconst": types.SimpleNamespace(FLAT_VLAN_ID=-1, LOCAL_VLAN_ID=-2)}

    def device_exists(self, device):
        try:
            self.execute(["ip", "link", "show", "dev", device])
        except RuntimeError:
            return False
        return True

    def get_bridge_name(self, network_id):
        return BRIDGE_PREFIX + network_id[:11]

    def ensure_physical_in_bridge(self, *args):
        return True

    def get_bridge_for_tap_device(self, tap_device_name):
        for bridge in os.listdir("/sys/class/net"):
            if bridge.startswith(BRIDGE_PREFIX) and bridge_of(tap_device_name) == bridge:
                return bridge
        return None

    def remove_interface(self, bridge_name, interface_name):
        if not self.device_exists(bridge_name):
            return False
        if bridge_of(interface_name) is None:
            return True
        self.execute(["brctl", "delif", bridge_name, interface_name])
        return True

    def add_tap(self, path, network_id, tap):
        function = run_function(path, "LinuxBridgeManager", ("add_tap_interface",), self.namespace)
        return function(self, network_id, "physnet1", "100", tap)


def main(variant, path, network_id, tap):
    agent = Grizzly() if variant == "grizzly" else Neutron(variant.split("-", 1)[1])
    try:
        returned = agent.add_tap(path, network_id, tap)
    except RuntimeError as err:  # the agent logs it and retries later: the tap stays put
        returned = "raised: %s" % err
    print(json.dumps({"returned": returned, "master": bridge_of(tap)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

"""The Linux Bridge operations at the real sudo boundary: what vdsm cannot make root do.

One network namespace holds devices that are not a vNIC tap quantum-vnic may touch (a
veth named like a tap on a host bridge, a VPN-style tun ``tap0`` on it, a tun whose name
derives from a port but sits on a host bridge, VM 1's tap on network A's agent bridge),
and one real vNIC tap on VDSM's ``;vdsmdummy;`` as a control. A process of the user
``vdsm`` under the packaged sudoers drop-in (``tests/as_vdsm.py``) then asks the
privileged entry point for the attacks reproduced against the old device-name arguments
and for everything the new id-based arguments could be bent to; every refused request
must leave every device exactly as it was, while the control is wired as a hook would.
"""

import json
import os
import sys
import textwrap

import pytest

from tests import as_vdsm
from tests.lb_topology import DUMMY_BRIDGE, Topology
from vnic_drivers.naming import linux_bridge_name, tap_name

NET_A = "aaaaaaaa-1111-4111-8111-111111111111"
NET_B = "bbbbbbbb-2222-4222-8222-222222222222"
VM1_PORT = "11111111-aaaa-4aaa-8aaa-aaaaaaaaaaaa"  # VM 1's vNIC, on network A
VM2_PORT = "22222222-bbbb-4bbb-8bbb-bbbbbbbbbbbb"  # the control: a vNIC on ;vdsmdummy;
VETH_PORT = "33333333-cccc-4ccc-8ccc-cccccccccccc"  # a veth bears this port's tap name
HOST_PORT = "44444444-dddd-4ddd-8ddd-dddddddddddd"  # a tun of this name on a host bridge
BRQ_A, BRQ_B = linux_bridge_name(NET_A), linux_bridge_name(NET_B)
HOST_BRIDGE = "br-host"


def plug(port_id, network_id=None, mtu=1400, **extra):
    return dict({"port_id": port_id, "network_id": network_id, "mtu": mtu, "wait": 0}, **extra)


# name -> (operation, arguments, expected exit code, what stderr says or what stdout has).
# Exit 2: refused input (never reaches the host); 1: the host refused by what the device
# is; 0: the operation ran and, by design, left the device alone.
REFUSED = {
    # The reproductions, as the old API took them: device names are no argument now.
    "veth tapveth by name": ("linux_bridge_plug", {"tap": "tapveth", "bridge": None, "mtu": 1400, "wait": 0},
                             2, "unknown argument bridge"),
    "tun tap0 unplugged by name": ("linux_bridge_unplug", {"tap": "tap0"}, 2, "unknown argument tap"),
    "tun tap0 plugged by name": ("linux_bridge_plug", {"tap": "tap0", "bridge": BRQ_A, "mtu": None, "wait": 0},
                                 2, "unknown argument bridge"),
    "VM 1's tap onto B's brq by name": ("linux_bridge_plug",
                                        {"tap": tap_name(VM1_PORT), "bridge": BRQ_B, "mtu": None, "wait": 0},
                                        2, "unknown argument bridge"),
    "VM 1's tap onto a bridge of the caller's": ("linux_bridge_plug", plug(VM1_PORT, mtu=None, bridge=BRQ_B),
                                                 2, "unknown argument bridge"),
    "a device name as port id": ("linux_bridge_unplug", {"port_id": "tap0"}, 2, "not a UUID"),
    "a dummy bridge of the caller's": ("linux_bridge_plug", plug(HOST_PORT, NET_A, dummy_bridge=HOST_BRIDGE),
                                       2, "unknown argument dummy_bridge"),
    # Well-formed ids: the derived device is checked for what it is before any change.
    "veth with a port's tap name": ("linux_bridge_plug", plug(VETH_PORT, NET_A), 1, "is a veth device, not a tun/tap"),
    "veth with a port's tap name, unplugged": ("linux_bridge_unplug", {"port_id": VETH_PORT}, 0,
                                               {"deleted": False, "kind": "veth"}),
    "tun of a port on a host bridge": ("linux_bridge_plug", plug(HOST_PORT, NET_A), 1,
                                       "is on br-host, which is neither the dummy bridge ;vdsmdummy;"),
    "tun on a host bridge, caller's config names it the dummy": (
        "linux_bridge_plug", plug(HOST_PORT, NET_A), 1, "neither the dummy bridge ;vdsmdummy;"),
    "VM 1's tap without a network id": ("linux_bridge_plug", plug(VM1_PORT, mtu=None), 0,
                                        {"master": BRQ_A, "detached_from": None, "wired": True}),
}
# The control: a vNIC tap on ;vdsmdummy; plugged as the hook does it, through the same sudo.
CONTROL = ("linux_bridge_plug", plug(VM2_PORT, NET_B), 0,
           {"detached_from": DUMMY_BRIDGE, "attached_to": BRQ_B, "mtu": [1500, 1400]})
CALLERS_CONFIG = "tun on a host bridge, caller's config names it the dummy"


@pytest.fixture
def host(netns):
    topology = Topology(netns)
    try:
        for bridge in (DUMMY_BRIDGE, HOST_BRIDGE, BRQ_A, BRQ_B):
            topology.add_bridge(bridge)
        topology.add_device("tapveth", "veth", bridge=HOST_BRIDGE, peer="tapveth-peer")
        topology.add_device(tap_name(VETH_PORT), "veth", bridge=HOST_BRIDGE, peer="veth-peer")
        topology.add_tap("tap0", bridge=HOST_BRIDGE, persist=True)  # a VPN's, say
        topology.add_tap(tap_name(HOST_PORT), bridge=HOST_BRIDGE)
        topology.add_tap(tap_name(VM1_PORT), bridge=BRQ_A)
        topology.add_tap(tap_name(VM2_PORT))  # on ;vdsmdummy;, as libvirt leaves it
        yield topology
    finally:
        topology.close()


def run_as_vdsm(workdir, calls, netns):
    """Run each (operation, args, config) through ``sudo -n`` as vdsm, *config* (or None)
    as the caller's $QUANTUM_VNIC_CONF, which must not matter; [(code, stdout, stderr lines)]."""
    path = os.path.join(workdir, "shared", "calls.py")
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(textwrap.dedent("""
            import json, os, subprocess, sys
            results = []
            for operation, args, config in json.loads(sys.stdin.read()):
                env = dict(os.environ)
                if config:
                    env["QUANTUM_VNIC_CONF"] = config
                done = subprocess.run(["sudo", "-n", %r, operation], input=json.dumps(args),
                                      env=env, capture_output=True, text=True)
                results.append((done.returncode, done.stdout, done.stderr.strip().splitlines()))
            print(json.dumps({"uid": os.getuid(), "results": results}))
        """ % as_vdsm.PRIVILEGED))
    os.chmod(path, 0o644)
    done = as_vdsm.run_as_vdsm(workdir, [sys.executable, path], netns=netns, input=json.dumps(calls))
    if done.returncode == as_vdsm.CANNOT:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["uid"] != 0
    return answer["results"]


def check(name, expected_code, expected, result):
    code, stdout, lines = result
    assert code == expected_code, (name, result)
    if code == 0:
        assert lines == [], (name, lines)
        answer = json.loads(stdout)
        assert {key: answer[key] for key in expected} == expected, (name, answer)
    else:
        assert stdout == "" and len(lines) == 1 and "Traceback" not in lines[0], (name, result)
        assert expected in lines[0], (name, lines[0])


def test_vdsm_cannot_make_root_touch_devices_that_are_not_its_vnic_taps(vdsm_workdir, host):
    callers = os.path.join(vdsm_workdir, "shared", "callers.conf")
    with open(callers, "w", encoding="utf-8") as stream:
        stream.write("[linux_bridge]\ndummy_bridge = %s\n" % HOST_BRIDGE)
    os.chmod(callers, 0o644)
    names = sorted(REFUSED)
    calls = [(REFUSED[name][0], REFUSED[name][1], callers if name == CALLERS_CONFIG else None)
             for name in names]
    before = host.links()
    results = run_as_vdsm(vdsm_workdir, calls + [CONTROL[:2] + (None,)], host.netns)
    after = host.links()

    for name, result in zip(names, results):
        check(name, REFUSED[name][2], REFUSED[name][3], result)
    check("control", CONTROL[2], CONTROL[3], results[-1])
    # Every device as it was, but the control tap and the two bridges it left and joined.
    control_tap = tap_name(VM2_PORT)
    changed = {control_tap, DUMMY_BRIDGE, BRQ_B}
    assert {n: s for n, s in after.items() if n not in changed} \
        == {n: s for n, s in before.items() if n not in changed}
    assert after["tapveth"] == {"master": HOST_BRIDGE, "up": True, "mtu": 1500, "kind": "veth"}
    assert after["tap0"] == {"master": HOST_BRIDGE, "up": True, "mtu": 1500, "kind": "tun"}
    assert after[tap_name(VM1_PORT)]["master"] == BRQ_A
    assert after[control_tap] == {"master": BRQ_B, "up": True, "mtu": 1400, "kind": "tun"}

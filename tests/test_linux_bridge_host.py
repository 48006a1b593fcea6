"""Linux Bridge vNICs on real kernel devices: the hook executables as VDSM runs them.

Each test builds its own network namespace with VDSM's ``;vdsmdummy;`` bridge, the
agent's ``brq…`` bridge and a tap made the way libvirt makes it (tuntap held open by a
QEMU stand-in process, enslaved to the dummy bridge, up); runs the hook process inside
that namespace; and reads the tap's master, state and MTU back through netlink.
"""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import NETWORK_ID, PORT_ID, quantum_properties
from tests.lb_topology import DUMMY_BRIDGE, Topology
from tests.vdsm import REPO, run_hook

TAP = "tap" + PORT_ID[:11]
BRQ = "brq" + NETWORK_ID[:11]
OTHER_BRQ = "brq11111111-22"

with open(os.path.join(REPO, "tests", "golden", "lb_create.xml"), "rb") as _stream:
    DEVICE = _stream.read()  # the device as before_device_create left it

PLUG_POINTS = ("after_device_create", "after_nic_hotplug", "after_device_migrate_destination")
UNPLUG_POINTS = ("after_device_destroy", "after_nic_hotunplug", "after_nic_hotplug_fail")


@pytest.fixture
def host(netns):
    """A namespace with ;vdsmdummy; and the network's brq bridge (no tap yet)."""
    topology = Topology(netns)
    topology.add_bridge(DUMMY_BRIDGE)
    topology.add_bridge(BRQ)
    try:
        yield topology
    finally:
        topology.close()


def lb_properties(**extra):
    return quantum_properties("LINUX_BRIDGE", **extra)


def hook(host, hook_point, properties, config=None):
    run = run_hook(hook_point, DEVICE, properties, netns=host.netns, config=config)
    assert "Traceback" not in run.stderr, run.stderr
    assert run.after == run.before  # after_* hooks never rewrite the device
    return run


@pytest.mark.parametrize("hook_point", PLUG_POINTS)
def test_plug_moves_tap_from_dummy_to_the_agent_bridge(host, hook_point):
    host.add_tap(TAP)
    run = hook(host, hook_point, lb_properties(network_id=NETWORK_ID, mtu="1450"))
    assert run.returncode == 0, run.stderr
    assert host.link(TAP) == {"master": BRQ, "up": True, "mtu": 1450, "kind": "tun"}
    assert "MTU 1500 -> 1450, detached from %s, attached to %s" % (DUMMY_BRIDGE, BRQ) in run.stderr
    assert host.link(DUMMY_BRIDGE) is not None and host.link(BRQ)["master"] is None


def test_ethernet_mode_tap_is_enslaved_and_brought_up(host):
    """mode = ethernet: libvirt made a bare tap (here also down); the hook wires it."""
    host.add_tap(TAP, bridge=None, up=False)
    run = hook(host, "after_device_create", lb_properties(network_id=NETWORK_ID),
               config="[linux_bridge]\nmode = ethernet\n")
    assert run.returncode == 0, run.stderr
    assert host.link(TAP) == {"master": BRQ, "up": True, "mtu": 1500, "kind": "tun"}
    assert "attached to %s, brought up" % BRQ in run.stderr


def test_plug_is_idempotent(host):
    host.add_tap(TAP)
    properties = lb_properties(network_id=NETWORK_ID, mtu="1400")
    first = hook(host, "after_device_create", properties)
    state = host.link(TAP)
    second = hook(host, "after_device_create", properties)
    assert (first.returncode, second.returncode) == (0, 0)
    assert host.link(TAP) == state == {"master": BRQ, "up": True, "mtu": 1400, "kind": "tun"}
    assert "%s: nothing to change; on %s" % (TAP, BRQ) in second.stderr


def test_plug_without_network_id_leaves_tap_unattached_for_the_agent(host):
    host.add_tap(TAP)
    run = hook(host, "after_device_create", lb_properties())
    assert run.returncode == 0, run.stderr
    assert host.link(TAP) == {"master": None, "up": True, "mtu": 1500, "kind": "tun"}
    assert "unattached for the Linux Bridge agent (no network_id property)" in run.stderr


@pytest.mark.parametrize("hook_point", PLUG_POINTS)
def test_plug_with_missing_bridge_leaves_tap_unattached(host, hook_point):
    host.remove(BRQ)  # the agent has not created the network's bridge on this host yet
    host.add_tap(TAP)
    run = hook(host, hook_point, lb_properties(network_id=NETWORK_ID, mtu="1450"))
    assert run.returncode == 0, run.stderr
    assert host.link(TAP) == {"master": None, "up": True, "mtu": 1450, "kind": "tun"}
    assert "MTU 1500 -> 1450, detached from %s; unattached for the Linux Bridge agent " \
        "(%s does not exist yet)" % (DUMMY_BRIDGE, BRQ) in run.stderr


def test_plug_keeps_a_tap_the_agent_already_wired(host):
    host.add_tap(TAP, bridge=BRQ)
    run = hook(host, "after_device_create", lb_properties())  # network unknown
    assert run.returncode == 0, run.stderr
    assert host.link(TAP)["master"] == BRQ
    assert "nothing to change; on %s" % BRQ in run.stderr


def test_plug_moves_a_tap_off_another_networks_bridge(host):
    host.add_bridge(OTHER_BRQ)
    host.add_tap(TAP, bridge=OTHER_BRQ)
    run = hook(host, "after_device_create", lb_properties(network_id=NETWORK_ID))
    assert run.returncode == 0, run.stderr
    assert host.link(TAP)["master"] == BRQ
    assert "detached from %s, attached to %s" % (OTHER_BRQ, BRQ) in run.stderr


def test_an_mtu_the_kernel_refuses_changes_nothing(host):
    host.add_tap(TAP)
    run = hook(host, "after_device_create", lb_properties(network_id=NETWORK_ID, mtu="65535"))
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "ERROR" in lines[0], run.stderr
    assert "cannot set the MTU of %s to 65535" % TAP in lines[0]
    assert host.link(TAP) == {"master": DUMMY_BRIDGE, "up": True, "mtu": 1500, "kind": "tun"}


@pytest.mark.parametrize("hook_point", PLUG_POINTS)
def test_missing_tap_is_a_clear_error(host, hook_point):
    run = hook(host, hook_point, lb_properties(network_id=NETWORK_ID))
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "ERROR" in lines[0], run.stderr
    assert "tap %s does not exist" % TAP in lines[0]


def test_wait_times_out_with_a_warning_and_exit_0(host):
    host.add_tap(TAP)
    run = hook(host, "after_device_create", lb_properties(),
               config="[linux_bridge]\nwait_timeout = 0.5\n")
    assert run.returncode == 0, run.stderr
    assert "WARNING" in run.stderr and "has not wired it yet" in run.stderr
    assert host.link(TAP)["master"] is None


def test_wait_returns_once_the_agent_wires_the_tap(host):
    """A stand-in agent enslaves the tap to brq… a moment after the hook detached it."""
    host.add_tap(TAP)

    def agent():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if host.link(TAP)["master"] is None:  # off ;vdsmdummy;: the agent can add it
                host.enslave(TAP, BRQ)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=agent)
    thread.start()
    try:
        run = hook(host, "after_device_create", lb_properties(),
                   config="[linux_bridge]\nwait_timeout = 30\n")
    finally:
        thread.join()
    assert run.returncode == 0, run.stderr
    assert "WARNING" not in run.stderr
    assert "wired by the agent after" in run.stderr
    assert host.link(TAP)["master"] == BRQ


@pytest.mark.parametrize("hook_point", UNPLUG_POINTS)
def test_unplug_after_libvirt_removed_the_tap_is_a_no_op(host, hook_point):
    holder = host.add_tap(TAP, bridge=BRQ)
    host.release(holder)  # QEMU exits: the transient tap goes with it
    assert host.link(TAP) is None
    for _ in range(2):
        run = hook(host, hook_point, lb_properties(network_id=NETWORK_ID))
        assert run.returncode == 0, run.stderr
    assert host.link(BRQ) is not None and host.link(DUMMY_BRIDGE) is not None


@pytest.mark.parametrize("hook_point", ("after_device_destroy", "after_nic_hotunplug"))
def test_unplug_deletes_a_tap_that_outlived_its_device(host, hook_point):
    holder = host.add_tap(TAP, bridge=BRQ, persist=True)
    host.release(holder)
    assert host.link(TAP)["master"] == BRQ  # persistent: still on the agent's bridge
    run = hook(host, hook_point, lb_properties())
    assert run.returncode == 0, run.stderr
    assert host.link(TAP) is None
    assert "outlived its device: deleted it (it was on %s)" % BRQ in run.stderr
    assert host.link(BRQ) == {"master": None, "up": True, "mtu": 1500, "kind": "bridge"}
    again = hook(host, hook_point, lb_properties())
    assert again.returncode == 0 and again.stderr == "", again.stderr


def test_unplug_leaves_a_device_that_is_not_a_tap(host):
    host.add_bridge(TAP)  # someone's bridge that happens to bear the name
    run = hook(host, "after_device_destroy", lb_properties())
    assert run.returncode == 0, run.stderr
    assert host.link(TAP)["kind"] == "bridge"
    assert "is a bridge device, not a tap: left alone" in run.stderr


def test_dry_run_names_the_operation_and_touches_nothing(host):
    host.add_tap(TAP)
    run = run_hook("after_device_create", DEVICE, lb_properties(network_id=NETWORK_ID),
                   netns=host.netns, dry_run=True)
    assert run.returncode == 0, run.stderr
    assert 'would run linux_bridge_plug bridge="%s"' % BRQ in run.stderr
    assert host.link(TAP)["master"] == DUMMY_BRIDGE


PRIVILEGED_REFUSALS = {
    "not a tap": ({"tap": "eth0", "bridge": None, "mtu": None, "wait": 0}, "starting with 'tap'"),
    "not a brq bridge": ({"tap": TAP, "bridge": "ovirtmgmt", "mtu": None, "wait": 0}, "starting with 'brq'"),
    "dummy as target": ({"tap": TAP, "bridge": DUMMY_BRIDGE, "mtu": None, "wait": 0}, "valid device name"),
    "bad mtu": ({"tap": TAP, "bridge": None, "mtu": 12, "wait": 0}, "MTU"),
    "endless wait": ({"tap": TAP, "bridge": None, "mtu": None, "wait": 1e9}, "0 to 300"),
}


@pytest.mark.parametrize("case", sorted(PRIVILEGED_REFUSALS))
def test_privileged_side_refuses_what_is_not_a_vnic_tap(case):
    from vnic_drivers.errors import InputError
    from vnic_drivers.host import privileged

    args, needle = PRIVILEGED_REFUSALS[case]
    with pytest.raises(InputError, match=needle):
        privileged.run("linux_bridge_plug", args)
    with pytest.raises(InputError):
        privileged.run("linux_bridge_unplug", {"tap": "eth0"})


def privileged(host, operation, args):
    """The entry point sudo runs (``quantum-vnic-privileged OPERATION``, JSON on stdin)."""
    done = subprocess.run(
        ["ip", "netns", "exec", host.netns, sys.executable, "-m", "vnic_drivers.host.privileged", operation],
        input=json.dumps(args), capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )
    return done.returncode, json.loads(done.stdout) if done.returncode == 0 else done.stderr


def test_the_sudo_entry_point_plugs_in_one_process_and_answers_json(host):
    host.add_tap(TAP)
    code, result = privileged(host, "linux_bridge_plug", {"tap": TAP, "bridge": BRQ, "mtu": 1400, "wait": 0})
    assert code == 0, result
    assert result == {"tap": TAP, "detached_from": DUMMY_BRIDGE, "attached_to": BRQ, "mtu": [1500, 1400],
                      "up": False, "bridge_missing": False, "master": BRQ, "wired": True,
                      "waited": 0.0, "timed_out": False}
    code, result = privileged(host, "linux_bridge_unplug", {"tap": TAP})
    assert code == 0 and result["deleted"] is True, result
    code, message = privileged(host, "linux_bridge_unplug", {"tap": "eth0"})
    assert code == 2 and "starting with 'tap'" in message

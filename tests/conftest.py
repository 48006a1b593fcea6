"""Fixtures shared by the suites: real network namespaces, skip reasons, example data."""

import contextlib
import os

import pytest

PORT_ID = "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"
NETWORK_ID = "7c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f"


def quantum_properties(plugin_type, port_id=PORT_ID, **extra):
    props = {"provider_type": "OPENSTACK_NETWORK", "vnic_id": port_id, "plugin_type": plugin_type}
    props.update(extra)
    return props


def host_skip_reason():
    """Why kernel-object tests cannot run here, or None (the demo's own check, less OVS)."""
    from vnic_drivers.sandbox import missing_requirements

    return missing_requirements(ovs=False)


def assert_one_line(run, code, *needles):
    """*run* (a finished hook or tool) exited *code* with one line on stderr, no traceback,
    holding every needle; returns that line."""
    assert run.returncode == code, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]



def unplug_marked_only(netns, ovsdb_remote, port_id):
    """ovs_unplug's first half in a process of *netns* that then exits without running
    its Then step: the state a hook or the helper killed between marking the hybrid
    devices for removal and deleting them leaves (OVS ports gone, devices still there,
    qvo down, qvo and qbr in the port's removal group)."""
    import subprocess
    import sys

    from tests.vdsm import REPO

    code = ("from vnic_drivers.host import ovs_plug, privileged\n"
            "outcome = ovs_plug.unplug(%r, %r)\n"
            "assert isinstance(outcome, privileged.Then), outcome\n" % (ovsdb_remote, port_id))
    done = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code],
                          env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

requires_host = pytest.mark.skipif(host_skip_reason() is not None, reason=str(host_skip_reason()))


@pytest.fixture
def netns():
    """A fresh network namespace, removed (with everything in it) after the test."""
    reason = host_skip_reason()
    if reason:
        pytest.skip(reason)
    from vnic_drivers.sandbox import Sandbox

    with Sandbox("qvnic-t") as box:  # a killed run's is removed by the next (sandbox.remove_stale)
        yield box.name



@pytest.fixture
def vdsm_workdir():
    """A work directory for :func:`tests.as_vdsm.run_as_vdsm` (the privileged entry point
    run as the user vdsm through sudo); skips where the machine cannot do that."""
    from tests import as_vdsm

    reason = as_vdsm.required_tools()
    if reason:
        pytest.skip(reason)
    with as_vdsm.workdir() as path:
        yield path


@contextlib.contextmanager
def ovs_in_netns(prefix, mode=None):
    """For a module-scoped fixture: a fresh network namespace and temp dir (a
    :class:`vnic_drivers.sandbox.Sandbox` named after *prefix*, chmod *mode* if given) with
    a private OVS (:mod:`tests.ovs_fixture`) running in it; yields ``(netns, directory,
    ovs)`` and removes all three afterwards (a killed run's: the OVS dies with it, the
    next run removes the rest). Skips unless this host can run kernel objects, OVS and
    libvirt's test driver."""
    from tests import ovs_fixture

    reason = host_skip_reason() or ovs_fixture.skip_reason()
    if reason:
        pytest.skip(reason)
    try:
        import libvirt  # noqa: F401
    except ImportError:
        pytest.skip("needs libvirt-python (pip install libvirt-python)")
    from vnic_drivers.sandbox import Sandbox

    with Sandbox(prefix) as box:
        if mode is not None:
            os.chmod(box.directory, mode)
        with ovs_fixture.private_ovs(box.directory, netns=box.name) as ovs:
            yield box.name, box.directory, ovs


def pytest_configure(config):
    # Groups selectable on their own (pytest -m slow / faults / load, or "not ..." while
    # editing); CI runs them all. slow: real servers that take seconds to minutes to start.
    config.addinivalue_line("markers", "slow: starts a real OpenStack server (Keystone, Neutron); CI runs it")
    config.addinivalue_line("markers", "faults: fault injection on real kernel objects and OVS (tests/test_faults.py)")
    config.addinivalue_line("markers", "load: many hooks at once through the real sudo path (tests/test_load.py)")

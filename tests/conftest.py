"""Fixtures shared by the suites: real network namespaces, skip reasons, example data."""

import uuid

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


requires_host = pytest.mark.skipif(host_skip_reason() is not None, reason=str(host_skip_reason()))


@pytest.fixture
def netns():
    """A fresh network namespace, removed (with everything in it) after the test."""
    reason = host_skip_reason()
    if reason:
        pytest.skip(reason)
    from pyroute2 import netns as pyroute2_netns

    name = "qvnic-%s" % uuid.uuid4().hex[:10]
    pyroute2_netns.create(name)
    try:
        yield name
    finally:
        pyroute2_netns.remove(name)


def pytest_configure(config):
    # Groups selectable on their own (pytest -m slow / faults / load, or "not ..." while
    # editing); CI runs them all. slow: real servers that take seconds to minutes to start.
    config.addinivalue_line("markers", "slow: starts a real OpenStack server (Keystone, Neutron); CI runs it")
    config.addinivalue_line("markers", "faults: fault injection on real kernel objects and OVS (tests/test_faults.py)")
    config.addinivalue_line("markers", "load: many hooks at once through the real sudo path (tests/test_load.py)")

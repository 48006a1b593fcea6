"""Fixtures shared by the suites: real network namespaces, skip reasons, example data."""

import os
import shutil
import uuid

import pytest

PORT_ID = "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"
NETWORK_ID = "7c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f"


def quantum_properties(plugin_type, port_id=PORT_ID, **extra):
    props = {"provider_type": "OPENSTACK_NETWORK", "vnic_id": port_id, "plugin_type": plugin_type}
    props.update(extra)
    return props


def host_skip_reason():
    """Why kernel-object tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun to create taps"
    if shutil.which("ip") is None:
        return "needs iproute2's ip for 'ip netns exec' (apt-get install iproute2)"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "needs pyroute2 (pip install pyroute2)"
    return None


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

"""The throwaway host itself: it works inside its namespace on every pyroute2 the package
supports (EL9's 0.7 has no ``IPRoute(netns=...)``) and leaves nothing behind, even when
it fails half-way through its creation."""

import os
import tempfile

import pytest

from tests.conftest import requires_host
from vnic_drivers import sandbox

pytestmark = requires_host


def _namespaces():
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Where the sandbox's temp directory goes, to see whether it is left behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_devices_are_made_and_seen_inside_the_namespace_only():
    with sandbox.Sandbox("qvnic-sbx") as box:
        box.add_bridge("brq-sbx")
        box.add_tap("tap-sbx", master="brq-sbx", mtu=1400)
        links = box.links()
        assert links["lo"]["up"]
        assert links["tap-sbx"] == {"kind": "tun", "master": "brq-sbx", "up": True, "mtu": 1400}
        from pyroute2 import IPRoute

        with IPRoute() as ipr:  # the test's own namespace: untouched
            assert not ipr.link_lookup(ifname="tap-sbx")
        box.delete_link("tap-sbx")
        assert "tap-sbx" not in box.links()
    assert box.name not in _namespaces()


def test_failed_creation_of_the_namespace_leaves_no_directory(private_tmp):
    box = sandbox.Sandbox("qvnic-sbx" + "x" * 300)  # too long for a file name in /run/netns
    with pytest.raises(OSError):
        with box:
            pass
    assert list(private_tmp.iterdir()) == []


class _BrokenNetlink(sandbox.Sandbox):
    """A sandbox whose first netlink call fails (as ``IPRoute(netns=...)`` did on
    pyroute2 0.7): the real failure cannot be produced on this machine's pyroute2."""

    def ipr(self):
        assert self.name in _namespaces()  # the failure comes after the namespace exists
        raise TypeError("__init__() got an unexpected keyword argument 'netns'")


def test_failure_after_the_namespace_exists_removes_it_and_the_directory(private_tmp):
    box = _BrokenNetlink("qvnic-sbx")
    with pytest.raises(TypeError):
        with box:
            pass
    assert box.name not in _namespaces()
    assert list(private_tmp.iterdir()) == []
    box.delete()  # still safe afterwards


def test_create_without_with_cleans_up_too(private_tmp):
    box = _BrokenNetlink("qvnic-sbx")
    with pytest.raises(TypeError):
        box.create()
    assert box.name not in _namespaces()
    assert list(private_tmp.iterdir()) == []

"""Fixtures of the e2e suite: one private host per session (and a second one, linked to
it, for the migration tests), one VDSM stand-in per host and test.

The session fixtures start nothing they cannot stop by pid and install nothing; on a
machine that cannot run them (not root, no /dev/net/tun) every test skips with the
reason; missing software (`./dev deps` not run) is an error, not a skip.
"""

import contextlib

import pytest

from tests.e2e import host as host_module
from tests.e2e import procs
from tests.e2e.libvirtd import QEMU
from tests.e2e.vdsm_driver import Vdsm


@contextlib.contextmanager
def _host(root, *linked_to):
    try:
        with host_module.running(root) as host:
            if linked_to:
                with host_module.linked(linked_to[0], host):
                    yield host
            else:
                yield host
    except procs.Unavailable as err:
        pytest.skip(str(err))
    except procs.NotInstalled as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def e2e_host(tmp_path_factory):
    with _host(str(tmp_path_factory.mktemp("e2e"))) as host:
        yield host


@pytest.fixture(scope="session")
def peer_host(e2e_host, tmp_path_factory):
    """A second host, a migration destination: its own netns, OVS, bridges and libvirtd,
    joined to :func:`e2e_host` by a veth (``host.MIGRATION_ADDRESSES``)."""
    with _host(str(tmp_path_factory.mktemp("peer")), e2e_host) as host:
        yield host


@pytest.fixture(scope="session")
def libvirt_conn(e2e_host):
    conn = e2e_host.libvirtd.connect()
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def peer_conn(peer_host):
    conn = peer_host.libvirtd.connect()
    yield conn
    conn.close()


@contextlib.contextmanager
def _stand_in(host, conn):
    """A VDSM stand-in on *host*. Afterwards: destroys (with the destroy hooks) any VM the
    test left running there, then insists that no hook failed and that the host is as the
    test found it, no device, OVS port or bridge left behind."""
    before = host.snapshot()
    driver = Vdsm(conn, host.netns, QEMU, hook_config=host.hook_config())
    try:
        yield driver
        for vm in list(driver.running):
            driver.destroy(vm)
    finally:
        driver.close()
    assert driver.failures == [], "hooks failed: %r" % driver.failures
    assert host.snapshot() == before


@pytest.fixture
def vdsm(e2e_host, libvirt_conn):
    with _stand_in(e2e_host, libvirt_conn) as driver:
        yield driver


@pytest.fixture
def peer_vdsm(peer_host, peer_conn):
    with _stand_in(peer_host, peer_conn) as driver:
        yield driver

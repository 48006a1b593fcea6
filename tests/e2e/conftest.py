"""Fixtures of the e2e suite: one private host per session, one VDSM stand-in per test.

The session fixture starts nothing it cannot stop by pid and installs nothing; on a
machine that cannot run it (not root, no /dev/net/tun) every test skips with the reason;
missing software (`./dev deps` not run) is an error, not a skip.
"""

import pytest

from tests.e2e import host as host_module
from tests.e2e import procs
from tests.e2e.libvirtd import QEMU
from tests.e2e.vdsm_driver import Vdsm


@pytest.fixture(scope="session")
def e2e_host(tmp_path_factory):
    try:
        with host_module.running(str(tmp_path_factory.mktemp("e2e"))) as host:
            yield host
    except procs.Unavailable as err:
        pytest.skip(str(err))
    except procs.NotInstalled as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def libvirt_conn(e2e_host):
    conn = e2e_host.libvirtd.connect()
    yield conn
    conn.close()


@pytest.fixture
def vdsm(e2e_host, libvirt_conn):
    """A VDSM stand-in. Afterwards: destroys (with the destroy hooks) any VM the test left
    running, then insists that no hook failed and that the host is as the test found it,
    no device, OVS port or bridge left behind."""
    before = e2e_host.snapshot()
    driver = Vdsm(libvirt_conn, e2e_host.netns, QEMU, hook_config=e2e_host.hook_config())
    yield driver
    for vm in list(driver.running):
        driver.destroy(vm)
    assert driver.failures == [], "hooks failed: %r" % driver.failures
    assert e2e_host.snapshot() == before

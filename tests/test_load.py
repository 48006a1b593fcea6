"""Load: 50 VMs x 2 vNICs (Linux Bridge, OVS, OVS hybrid) started at once on one host,
then destroyed, every hook as the user vdsm through the real sudo path, 100 processes
in parallel per hook point (:mod:`tests.load_run`); then the same with 5,000 unrelated
ports on the integration bridge. Afterwards every device and OVS row must be right, no
hook may have failed or warned, and nothing may be left. Timings: ``bench/load.py``.
"""

import pytest

from tests import as_vdsm, load_run

pytestmark = pytest.mark.load


@pytest.fixture(autouse=True)
def requirements():
    from vnic_drivers import sandbox

    reason = sandbox.missing_requirements() or as_vdsm.required_tools()
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("fillers", [0, 5000], ids=["empty br-int", "5000 other ports"])
def test_fifty_vms_with_two_vnics_start_and_stop_at_once(fillers):
    report = load_run.run(fillers=fillers, single=0)
    assert report["errors"] == [], report["errors"][:5]
    assert report["problems"] == [], report["problems"][:5]
    assert report["leftovers"] == [], report["leftovers"][:20]
    for name, phase in sorted(report["phases"].items()):
        assert phase["hooks"]["n"] == load_run.VMS * load_run.NICS_PER_VM, name
        print("\n%s (%d other ports): wall %.2fs; per hook median %.2fs p95 %.2fs max %.2fs" % (
            name, fillers, phase["wall"], phase["hooks"]["median"], phase["hooks"]["p95"],
            phase["hooks"]["max"]))

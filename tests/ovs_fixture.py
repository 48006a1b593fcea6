"""A private, real Open vSwitch for tests: never the host's own database or daemons.

:func:`private_ovs` (a context manager, usable by any suite) creates a database from the
installed ``vswitch.ovsschema`` in a directory of the caller's, starts ``ovsdb-server`` on
a unix socket there and, optionally, ``ovs-vswitchd`` inside a given network namespace
with ``br-int`` on the userspace (``netdev``) datapath, which needs no kernel module. The
daemons are this process's children: they are stopped by pid and reaped on exit.

Every OVS run-time path (``OVS_RUNDIR`` and friends) points into the directory, so
nothing is read from or written to ``/var/run/openvswitch``. The daemons are run by
:class:`vnic_drivers.sandbox.PrivateOvs`, the code ``quantum-vnic demo`` uses.

    with private_ovs(tmpdir, netns="qvnic-x") as ovs:
        ovs.remote        # "unix:<tmpdir>/db.sock", for [openvswitch] ovsdb
        ovs.pids          # {"ovsdb-server": pid, "ovs-vswitchd": pid}
        ovs.vsctl("list-ports", "br-int")
"""

import contextlib
import os
import shutil

from vnic_drivers.sandbox import OVS_PROGRAMS as PROGRAMS
from vnic_drivers.sandbox import OVS_SCHEMA as SCHEMA
from vnic_drivers.sandbox import PrivateOvs

BRIDGE = "br-int"


def skip_reason(vswitchd=True):
    """Why a private OVS (with ovs-vswitchd, or ovsdb-server alone) cannot run here, or None."""
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    if missing:
        return "needs Open vSwitch (%s missing; apt-get install openvswitch-switch)" % ", ".join(missing)
    if not os.path.exists(SCHEMA):
        return "needs %s (apt-get install openvswitch-common)" % SCHEMA
    if vswitchd and os.geteuid() != 0:
        return "needs root to run ovs-vswitchd in a network namespace"
    try:
        import ovs.jsonrpc  # noqa: F401
    except ImportError:
        return "needs the ovs python bindings (pip install ovs)"
    return None


@contextlib.contextmanager
def private_ovs(directory, netns=None, vswitchd=True):
    """Run a private OVS in *directory* (ovs-vswitchd inside *netns*); stop it on exit.

    Without *vswitchd* only ovsdb-server runs and ``br-int`` is created in the database.
    Keep *directory* short: a unix socket path has at most 107 characters.
    """
    ovs = PrivateOvs(directory, netns)
    try:
        ovs.start(BRIDGE, vswitchd=vswitchd)
        yield ovs
    finally:
        ovs.stop()


def port_rows(ovs, name):
    """(Port row, Interface row, ofport) of port *name* in *ovs*: what the OVS agent keys
    on. A port deleted and added again (which the agent unwires and wires anew) has new
    rows; with ovs-vswitchd, wait until it has an ofport first."""
    return tuple(ovs.vsctl("get", table, name, column)
                 for table, column in (("Port", "_uuid"), ("Interface", "_uuid"), ("Interface", "ofport")))

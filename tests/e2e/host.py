"""The e2e host: a test network namespace holding a private OVS, the bridges a real host
has (VDSM's dummy bridge, a Linux Bridge agent's ``brq…``) and a private libvirtd.

Two such hosts joined by :func:`linked` (a veth pair with private addresses, inside the
two test namespaces only) are a source and a destination for live migration.

Installs nothing: :func:`check` says what is missing, for the caller to skip or fail on.
Used by ``tests/e2e/conftest.py`` and by ``bench/vm_start.py``.
"""

import contextlib
import grp
import json
import os
import pwd
import shutil

from tests import vdsm_runner
from tests.conftest import NETWORK_ID
from tests.e2e import procs
from tests.e2e.libvirtd import LIBVIRTD, QEMU, QEMU_GROUP, QEMU_USER, PrivateLibvirtd
from tests.lb_topology import DUMMY_BRIDGE, Topology
from tests.ovs_fixture import BRIDGE as INTEGRATION_BRIDGE
from tests.ovs_fixture import private_ovs
from tests.ovs_fixture import skip_reason as ovs_missing

AGENT_BRIDGE = "brq" + NETWORK_ID[:11]
# The migration link between two test hosts: a veth pair and a /30 that exists only in
# the two test namespaces (nothing routes it anywhere else).
MIGRATION_LINK = "qvnic-mig"
MIGRATION_ADDRESSES = ("192.168.250.1", "192.168.250.2")


def check():
    """Raise :class:`procs.Unavailable` (skip) if this machine cannot run the suite at all,
    :class:`procs.NotInstalled` (fail) if `./dev deps` has not installed what it needs."""
    if os.geteuid() != 0:
        raise procs.Unavailable("needs root: it runs libvirtd and creates network namespaces")
    if not os.path.exists("/dev/net/tun"):
        raise procs.Unavailable("needs /dev/net/tun: libvirt creates the guests' taps with it")
    runner_missing = vdsm_runner.skip_reason()
    if runner_missing:
        raise procs.Unavailable(runner_missing)
    missing = [path for path in (LIBVIRTD, QEMU) if not os.path.exists(path)]
    missing += [name for name in ("ip", "unshare", "mount") if shutil.which(name) is None]
    ovs_problem = ovs_missing()
    if ovs_problem:
        missing.append(ovs_problem)
    for module in ("libvirt", "pyroute2"):
        try:
            __import__(module)
        except ImportError:
            missing.append("python module " + module)
    try:
        pwd.getpwnam(QEMU_USER)
        grp.getgrnam(QEMU_GROUP)
    except KeyError:
        missing.append("user and group %s (libvirt's QEMU driver needs them)" % QEMU_USER)
    if missing:
        raise procs.NotInstalled("missing %s; run ./dev deps" % ", ".join(missing))


class Host:
    """What the tests see: the netns, OVS and libvirtd, and read-only views of the netns."""

    def __init__(self, root, netns, ovs, libvirtd):
        self.root = root
        self.netns = netns
        self.ovs = ovs
        self.libvirtd = libvirtd

    @property
    def hook_state_dir(self):
        """Where the hooks on this host keep their records (``[hook] state_dir``)."""
        return os.path.join(self.root, "hook-state")

    def hook_config(self, **openvswitch):
        """The hooks' config file: the OVSDB they talk to is the private one, the libvirt
        they ask for a MAC the private libvirtd, their records under this host's directory
        (as ``/run`` is a host's own), and the given ``[openvswitch]`` options."""
        hook = {"state_dir": self.hook_state_dir, "libvirt_uri": self.libvirtd.uri}
        options = dict(openvswitch, ovsdb=self.ovs.remote)
        return "".join("[%s]\n" % section + "".join("%s = %s\n" % item for item in sorted(values.items()))
                       for section, values in (("hook", hook), ("openvswitch", options)))

    def links(self):
        """{name: {'master', 'mtu', 'kind', 'up'}} of every device in the netns."""
        from pyroute2 import NetNS

        from vnic_drivers.sandbox import links_of

        with NetNS(self.netns) as ns:
            return links_of(ns)

    def ovs_ports(self, bridge=INTEGRATION_BRIDGE):
        return set(self.ovs.vsctl("list-ports", bridge).split())

    def ovs_interfaces(self):
        """{interface name: external_ids} of every OVS Interface row."""
        table = json.loads(self.ovs.vsctl("--format=json", "--columns=name,external_ids", "list", "Interface"))
        # OVSDB JSON: a map is ["map", [[key, value], ...]]
        return {name: dict(ids[1]) for name, ids in table["data"]}

    def snapshot(self):
        """What a VM may leave behind: device names in the netns, ports of each OVS bridge,
        the hooks' records."""
        bridges = self.ovs.vsctl("list-br").split()
        records = set(os.listdir(self.hook_state_dir)) if os.path.isdir(self.hook_state_dir) else set()
        return {"devices": set(self.links()), "ovs": {bridge: self.ovs_ports(bridge) for bridge in bridges},
                "records": records}


@contextlib.contextmanager
def running(root):
    """Start the whole e2e host under directory *root* (libvirtd's files, the hooks'
    records; OVS in a :class:`vnic_drivers.sandbox.Sandbox` with the netns); stop
    everything on the way out. A run killed outright leaves no process: OVS and libvirtd
    (with its guests) get a signal when their parent ends.

    Raises what :func:`check` raises before starting anything, and
    :class:`procs.StartFailed` (with the daemon's log) if a daemon does not come up.
    """
    check()
    from vnic_drivers.sandbox import Sandbox

    with contextlib.ExitStack() as cleanup:
        # The netns (removed with the bridges and taps in it) and the OVS directory: a
        # killed run's OVS dies with it, the next run removes the rest (sandbox.remove_stale).
        box = cleanup.enter_context(Sandbox("qvnic-e2e"))
        netns = box.name
        ovs = cleanup.enter_context(private_ovs(box.directory, netns=netns))
        libvirtd = PrivateLibvirtd(os.path.join(root, "libvirt"), netns, ovs_rundir=ovs.directory)
        host = Host(root, netns, ovs, libvirtd)
        bridges = Topology(netns)
        bridges.add_bridge(DUMMY_BRIDGE)  # VDSM's placeholder, as on every VDSM host
        bridges.add_bridge(AGENT_BRIDGE)  # what the Linux Bridge agent makes per network
        cleanup.callback(libvirtd.stop)
        libvirtd.start()
        yield host


@contextlib.contextmanager
def linked(source, destination):
    """A veth pair between the two hosts' namespaces, addressed with
    :data:`MIGRATION_ADDRESSES` (source's, destination's), up; removed on the way out."""
    from pyroute2 import NetNS

    with NetNS(source.netns) as ns:
        ns.link("add", ifname=MIGRATION_LINK, kind="veth", peer=MIGRATION_LINK + "1")
        ns.link("set", index=ns.link_lookup(ifname=MIGRATION_LINK + "1")[0], net_ns_fd=destination.netns)
    try:
        for host, address, name in ((source, MIGRATION_ADDRESSES[0], MIGRATION_LINK),
                                    (destination, MIGRATION_ADDRESSES[1], MIGRATION_LINK + "1")):
            with NetNS(host.netns) as ns:
                for device in ("lo", name):
                    ns.link("set", index=ns.link_lookup(ifname=device)[0], state="up")
                ns.addr("add", index=ns.link_lookup(ifname=name)[0], address=address, prefixlen=30)
        yield MIGRATION_ADDRESSES
    finally:
        with NetNS(source.netns) as ns:
            found = ns.link_lookup(ifname=MIGRATION_LINK)
            if found:
                ns.link("del", index=found[0])  # takes its peer with it

"""A private Open vSwitch for the e2e suite: ovsdb-server + ovs-vswitchd in a test netns.

Everything lives in one directory (database, sockets, pid files, logs), which is also the
``OVS_RUNDIR`` handed to libvirtd so that the ``ovs-vsctl`` it runs talks to this
database and never to the machine's ``/var/run/openvswitch``. ``ovs-vswitchd`` runs in the
test network namespace with the userspace datapath (``datapath_type=netdev``): no kernel
module is needed, and the bridge and its ports stay in that namespace.
"""

import json
import os
import subprocess

from tests.e2e import procs

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
BINARIES = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl")


class PrivateOvs:
    def __init__(self, root, netns):
        self.root = root
        self.netns = netns
        self.socket = os.path.join(root, "db.sock")
        self.remote = "unix:" + self.socket
        self.env = dict(os.environ, OVS_RUNDIR=root, OVS_DBDIR=root, OVS_LOGDIR=root)
        self.processes = []

    def start(self):
        os.makedirs(self.root, exist_ok=True)
        subprocess.run(["ovsdb-tool", "create", os.path.join(self.root, "conf.db"), SCHEMA],
                       check=True, capture_output=True)
        self._daemon("ovsdb-server", [
            os.path.join(self.root, "conf.db"), "--remote=punix:" + self.socket,
        ], ready=lambda: os.path.exists(self.socket))
        self.vsctl("--no-wait", "init")
        self._daemon("ovs-vswitchd", [self.remote], ready=self._vswitchd_ready)

    def _daemon(self, name, args, ready):
        log = os.path.join(self.root, name + ".log")
        argv = [name] + args + [
            "--pidfile=" + os.path.join(self.root, name + ".pid"),
            "--unixctl=" + os.path.join(self.root, name + ".ctl"),
            "--log-file=" + log, "-vconsole:off",
        ]
        process = procs.spawn(procs.in_netns(self.netns, argv), log, env=self.env)
        self.processes.append(process)
        procs.wait_until(ready, process, name, [log])

    def _vswitchd_ready(self):
        return os.path.exists(os.path.join(self.root, "ovs-vswitchd.ctl"))

    def vsctl(self, *args):
        """Run ``ovs-vsctl`` on this database; returns its stdout."""
        done = subprocess.run(["ovs-vsctl", "--db=" + self.remote, "--timeout=10"] + list(args),
                              capture_output=True, text=True, env=self.env, check=False)
        if done.returncode != 0:
            raise RuntimeError("ovs-vsctl %s: %s" % (" ".join(args), done.stderr.strip()))
        return done.stdout

    def add_bridge(self, name):
        """A bridge on the userspace datapath (its internal port appears in the netns)."""
        self.vsctl("add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev")

    def ports(self, bridge):
        return set(self.vsctl("list-ports", bridge).split())

    def interfaces(self):
        """{interface name: external_ids} of every Interface row."""
        table = json.loads(self.vsctl("--format=json", "--columns=name,external_ids", "list", "Interface"))
        # OVSDB JSON: a map is ["map", [[key, value], ...]]
        return {name: dict(ids[1]) for name, ids in table["data"]}

    def stop(self):
        for process in reversed(self.processes):
            procs.stop(process)
        self.processes = []

"""A private libvirtd with the QEMU driver, run inside the test network namespace.

Its configuration, sockets, pid file, logs and every state directory live under one
directory (see ``launch_libvirtd.py`` for how the fixed root paths are made private), so
it shares nothing with a libvirtd the machine may run, nor with a concurrent test run.
It runs in the test netns, so the taps it creates, the bridges it enslaves them to and
the OVS ports it adds (through the private OVS named by ``OVS_RUNDIR``) live there too.
Each has its own host UUID (libvirt reads the machine's SMBIOS one otherwise, and refuses
to migrate between two daemons that report the same: "Attempt to migrate guest to the
same host").
"""

import os
import sys
import uuid

from tests.e2e import procs

LIBVIRTD = "/usr/sbin/libvirtd"
QEMU = "/usr/bin/qemu-system-x86_64"
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launch_libvirtd.py")
# Debian builds the QEMU driver with this user and group; it refuses to load without
# them even when qemu.conf runs guests as root. `./dev deps` creates them.
QEMU_USER = QEMU_GROUP = "libvirt-qemu"

LIBVIRTD_CONF = """\
unix_sock_dir = "{sockets}"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:{log}"
host_uuid = "{host_uuid}"
"""

# Guests run as root, unconfined, without cgroups or private /dev: the least this
# machine (no systemd, no SELinux/AppArmor) needs. stdio_handler=file: no virtlogd.
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
"""


class PrivateLibvirtd:
    def __init__(self, root, netns, ovs_rundir):
        self.root = root
        self.netns = netns
        self.ovs_rundir = ovs_rundir
        self.socket = os.path.join(root, "sock", "libvirt-sock")
        self.uri = "qemu+unix:///system?socket=" + self.socket
        self.log = os.path.join(root, "libvirtd.log")
        self.launcher = None
        self.host_uuid = str(uuid.uuid4())

    def start(self):
        etc = os.path.join(self.root, "etc")
        os.makedirs(etc, exist_ok=True)
        os.makedirs(os.path.dirname(self.socket), exist_ok=True)
        conf = os.path.join(etc, "libvirtd.conf")
        with open(conf, "w", encoding="utf-8") as stream:
            stream.write(LIBVIRTD_CONF.format(
                sockets=os.path.dirname(self.socket), log=self.log, host_uuid=self.host_uuid))
        with open(os.path.join(etc, "qemu.conf"), "w", encoding="utf-8") as stream:
            stream.write(QEMU_CONF)
        argv = procs.in_netns(self.netns, [
            "unshare", "--mount", "--propagation", "private",
            sys.executable, LAUNCHER, self.root,
            LIBVIRTD, "-f", conf, "-p", os.path.join(self.root, "libvirtd.pid"),
        ])
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "LC_ALL": "C", "OVS_RUNDIR": self.ovs_rundir}
        launcher_log = os.path.join(self.root, "launcher.log")
        self.launcher = procs.spawn(argv, launcher_log, env=env)
        procs.wait_until(self._answers, self.launcher, "libvirtd", [launcher_log, self.log])

    def _answers(self):
        if not os.path.exists(self.socket):
            return False
        import libvirt

        try:
            self.connect().close()
        except libvirt.libvirtError:
            return False
        return True

    def connect(self):
        import libvirt

        return libvirt.open(self.uri)

    def stop(self):
        """Destroy every guest through the API, then stop libvirtd by its launcher's pid
        (which kills any guest still left, by pid, and exits when all are gone)."""
        if self.launcher is None:
            return
        try:
            if self.launcher.poll() is None:
                self._destroy_all()
        finally:
            procs.stop(self.launcher)
            self.launcher = None

    def _destroy_all(self):
        import libvirt

        try:
            conn = self.connect()
        except libvirt.libvirtError:
            return  # not answering: the launcher kills the guests by pid when libvirtd stops
        try:
            for domain in conn.listAllDomains():
                if domain.isActive():
                    domain.destroy()
        finally:
            conn.close()

"""``quantum-vnic demo``: the real hooks, on a throwaway host, for one VM's life.

As root it builds a sandbox (:mod:`vnic_drivers.sandbox`): a network namespace with a
Linux Bridge agent-style ``brq…`` bridge, VDSM's ``;vdsmdummy;`` and a private Open
vSwitch with ``br-int``. Then, for a VM with one ``LINUX_BRIDGE`` and one
``OPEN_VSWITCH`` vNIC, it plays VDSM and libvirt around the real hook executables:

1. ``before_device_create`` per vNIC (the rewritten device XML is printed);
2. libvirt starts the VM: a tap per vNIC, created from that XML as libvirt would
   (on the source bridge; for ``<virtualport type='openvswitch'>`` the OVS port with
   the ``external_ids`` libvirt sets); ``after_device_create`` per vNIC;
3. hot-unplug of the Linux Bridge vNIC: libvirt removes its tap; ``after_nic_hotunplug``;
4. the VM is destroyed: libvirt removes the OVS port and the tap; ``after_device_destroy``.

Each step prints what happened and the devices it left. Everything is removed at the
end, also on Ctrl-C or SIGTERM (exit 130 / 143). Without root (or without Open vSwitch)
it says so and shows the same hooks through ``simulate --dry-run`` instead.
"""

import os
import signal
import subprocess
import sys

VM_ID = "d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de"
NETWORK_ID = "7c9d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
INSTALLED_HOOKS = "/usr/libexec/vdsm/hooks"
DEVICE_XML = """<interface type="bridge">
    <mac address="{mac}" />
    <model type="virtio" />
    <source bridge=";vdsmdummy;" />
    <filterref filter="vdsm-no-mac-spoofing" />
    <link state="up" />
    <alias name="ua-{port}" />
</interface>
"""


class Vnic:
    """One of the demo VM's vNICs: its custom properties and its device XML."""

    def __init__(self, plugin, port, mac, **extra):
        self.plugin = plugin
        self.port = port
        self.mac = mac
        self.properties = dict({"provider_type": "OPENSTACK_NETWORK", "plugin_type": plugin,
                                "vnic_id": port}, **extra)
        self.xml = DEVICE_XML.format(mac=mac, port=port).encode()

    @property
    def tap(self):
        from .naming import tap_name

        return tap_name(self.port)


def demo_vnics():
    """The demo VM's vNICs: one per plugin (fresh objects: a run updates their XML)."""
    return (
        Vnic("LINUX_BRIDGE", "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9", "00:1a:4a:16:01:51",
             network_id=NETWORK_ID),
        Vnic("OPEN_VSWITCH", "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", "00:1a:4a:16:01:52", mtu="1450"),
    )


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class HookFailed(Exception):
    """A hook did not exit 0; the demo stops (and cleans up)."""


def add_arguments(parser):
    parser.add_argument("--quiet-xml", action="store_true", help="do not print device XML")


def run(args):
    from . import sandbox

    reason = sandbox.missing_requirements()
    if reason:
        say("quantum-vnic demo: %s; showing the hooks through 'simulate --dry-run' instead "
            "(nothing on this host changes)" % reason)
        return simulate_instead()
    return Demo(args).run()


def say(line=""):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def step(title):
    say()
    say("== " + title)


class Demo:
    """One run: the sandbox, the hooks and libvirt's part, then the clean-up."""

    def __init__(self, args):
        from . import sandbox

        self.args = args
        self.box = sandbox.Sandbox("qvnic-demo")
        self.vnics = demo_vnics()
        self.config = None
        self.pid = os.getpid()
        self.stopped = None  # the exit status a signal asked for

    def run(self):
        # Before the handlers: a KeyboardInterrupt raised inside lxml's module init (lxml
        # 4.6, EL9's) is printed as a traceback and swallowed there.
        from lxml import etree  # noqa: F401

        previous = {sig: signal.signal(sig, self.interrupt) for sig in STOP_SIGNALS}
        # A Ctrl-C that lands in a callback Python cannot raise from (e.g. logging's
        # at-fork hook, when pyroute2 forks its netns helper) is "ignored" with a printed
        # traceback, and so is what it breaks on its way (an asyncio loop it cut short
        # complains in __del__); the signal is remembered all the same (checkpoint), so
        # say nothing about either.
        unraisable = sys.unraisablehook

        def quiet_interrupts(info):
            if not (self.stopped or issubclass(info.exc_type, KeyboardInterrupt)):
                unraisable(info)

        sys.unraisablehook = quiet_interrupts
        code = 0
        try:
            self.build()
            self.vm_life()
            self.step("done: every hook exited 0")
        except KeyboardInterrupt:
            code = self.stopped or 130
            say()
            say("interrupted")
        except HookFailed as err:
            code = 1
            say("stopped: %s" % err)
        except (OSError, RuntimeError) + _netlink_errors() as err:
            # The host could not give the sandbox what it needs: one line, then clean up.
            from .log import one_line

            code = 1
            say("stopped: cannot build or drive the sandbox: %s" % one_line(str(err)))
        finally:
            if os.getpid() != self.pid:
                # pyroute2 forks helpers (taps in a namespace); one unwinding here must
                # not clean up the parent's sandbox.
                os._exit(1)
            # A hook that died of the same Ctrl-C is the interrupt, not a hook failure.
            code = self.stopped or code
            # A second Ctrl-C must not leave half a sandbox behind.
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            self.clean_up()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            sys.unraisablehook = unraisable
        return code

    def step(self, title):
        self.checkpoint()
        step(title)

    def checkpoint(self):
        """Stop here if a signal came whose KeyboardInterrupt a library swallowed.

        pyroute2 runs netlink requests in an asyncio event loop, which can lose an
        exception raised by a signal handler; the signal is remembered, so the demo
        still stops (and cleans up) at the next step.
        """
        if self.stopped:
            raise KeyboardInterrupt()

    def build(self):
        from .naming import linux_bridge_name

        self.step("1. a throwaway host")
        self.box.create()
        say("network namespace %s (taps, bridges and OVS live only there)" % self.box.name)
        say("directory %s" % self.box.directory)
        self.box.add_bridge(linux_bridge_name(NETWORK_ID))
        say("bridge %s: what the Linux Bridge agent creates for network %s"
            % (linux_bridge_name(NETWORK_ID), NETWORK_ID))
        self.box.add_bridge(";vdsmdummy;")
        say("bridge ;vdsmdummy;: VDSM's placeholder bridge")
        ovs = self.box.start_ovs()
        say("private Open vSwitch: ovsdb-server pid %d on %s, ovs-vswitchd pid %d, bridge br-int"
            % (ovs.pids["ovsdb-server"], ovs.remote, ovs.pids["ovs-vswitchd"]))
        self.config = os.path.join(self.box.directory, "quantum_vnic.conf")
        with open(self.config, "w", encoding="utf-8") as stream:
            # Records of the hooks (MACs) in the throwaway directory, not the host's /run.
            stream.write("[openvswitch]\novsdb = %s\n[hook]\nstate_dir = %s\n"
                         % (ovs.remote, os.path.join(self.box.directory, "state")))
        say("config %s: [openvswitch] ovsdb = %s" % (self.config, ovs.remote))

    def vm_life(self):
        lb, ovs = self.vnics
        self.step("2. VDSM starts VM %s: before_device_create for each vNIC" % VM_ID)
        for vnic in self.vnics:
            vnic.xml = self.hook("before_device_create", vnic)
        self.step("3. libvirt creates the devices; VDSM runs after_device_create")
        for vnic in self.vnics:
            say(libvirt_create(self.box, vnic))
        for vnic in self.vnics:
            self.hook("after_device_create", vnic)
        self.show_devices()
        self.step("4. hot-unplug of the %s vNIC: libvirt removes its tap; after_nic_hotunplug" % lb.plugin)
        self.box.delete_link(lb.tap)
        self.hook("after_nic_hotunplug", lb)
        self.show_devices()
        self.step("5. the VM is destroyed: libvirt removes the OVS port and the tap; after_device_destroy")
        self.box.ovs.vsctl("--if-exists", "del-port", ovs.tap)
        self.box.delete_link(ovs.tap)
        self.hook("after_device_destroy", ovs)
        self.show_devices()

    def hook(self, hook_point, vnic):
        """Run the real hook executable for *vnic* as VDSM would; the device XML after it."""
        from .simulate import EXIT_MEANING, hook_environment

        path = os.path.join(self.box.directory, "domxml-%s" % vnic.tap)
        with open(path, "wb") as stream:
            stream.write(vnic.xml)
        env = hook_environment(path, vnic.properties, {}, VM_ID)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = package_parent + os.pathsep + env.get("PYTHONPATH", "")
        self.checkpoint()
        say("-- %s, vNIC %s (%s, port %s)" % (hook_point, vnic.tap, vnic.plugin, vnic.port))
        # The config as the hook's argument: the environment is the custom properties'.
        argv = hook_command(hook_point) + ["--config", self.config]
        done = subprocess.run(self.box.command(argv), env=env,
                              capture_output=True, text=True, check=False)
        for line in done.stderr.splitlines():
            say("   | " + line)
        with open(path, "rb") as stream:
            xml = stream.read()
        say("   exit %d (%s)" % (done.returncode, EXIT_MEANING.get(done.returncode, "warning")))
        if xml != vnic.xml and not self.args.quiet_xml:
            say("   device XML now:")
            for line in xml.decode("utf-8", "replace").splitlines():
                say("     " + line)
        if done.returncode != 0:
            raise HookFailed("%s exited %d for %s" % (hook_point, done.returncode, vnic.tap))
        return xml

    def show_devices(self):
        ports = set(self.box.ovs.vsctl("list-ports", "br-int").split())
        say("-- devices in %s:" % self.box.name)
        for name, link in sorted(self.box.links().items()):
            if not name.startswith(("tap", "brq", "qbr", "qvb", "qvo", ";vdsmdummy;")):
                continue
            where = "on %s" % link["master"] if link["master"] else "no master"
            if name in ports:
                where = "OVS port on br-int, external_ids %s" % self.box.ovs.vsctl(
                    "get", "Interface", name, "external_ids")
            say("   %-15s %-6s %-5s mtu %-5d %s" % (name, link["kind"], "up" if link["up"] else "down",
                                                   link["mtu"], where))

    def interrupt(self, signum, frame):
        """Ctrl-C, SIGTERM and SIGHUP stop the demo, with the shell's exit status."""
        if os.getpid() != self.pid:  # a forked helper: die as it would have without us
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.stopped = self.stopped or 128 + signum
        raise KeyboardInterrupt()

    def clean_up(self):
        step("clean-up")
        name, directory = self.box.name, self.box.directory
        self.box.delete()
        say("removed network namespace %s (and every device in it), stopped Open vSwitch, "
            "removed %s" % (name, directory))


def libvirt_create(box, vnic, ovs_commands=None):
    """Create *vnic*'s tap in *box* from its device XML as libvirt does; say what was done.

    With *ovs_commands* (a list) the OVS port's ``ovs-vsctl`` commands are appended there
    instead of run, for a caller that adds many vNICs' ports in one transaction (each
    ovs-vsctl reads the whole database first: thousands of ports make that seconds).
    """
    from lxml import etree

    iface = etree.fromstring(vnic.xml)
    tap = iface.find("target").get("dev")
    mtu = int(iface.find("mtu").get("size")) if iface.find("mtu") is not None else None
    source = iface.find("source")
    bridge = source.get("bridge") if source is not None else None
    virtualport = iface.find("virtualport")
    if virtualport is not None and virtualport.get("type") == "openvswitch":
        port = virtualport.find("parameters").get("interfaceid")
        box.add_tap(tap, mtu=mtu, mac=vnic.mac)
        # The transaction libvirt runs (virNetDevOpenvswitchAddPort).
        commands = [
            "--", "--if-exists", "del-port", tap, "--", "add-port", bridge, tap,
            "--", "set", "Interface", tap, "external-ids:attached-mac=%s" % vnic.mac,
            "external-ids:iface-id=%s" % port, "external-ids:vm-id=%s" % VM_ID,
            "external-ids:iface-status=active"]
        if ovs_commands is None:
            box.ovs.vsctl(*commands)
        else:
            ovs_commands += commands
        return "libvirt: tap %s, OVS port on %s with iface-id=%s" % (tap, bridge, port)
    if bridge and iface.get("type") == "bridge":
        box.add_tap(tap, master=bridge, mtu=mtu, mac=vnic.mac)
        return "libvirt: tap %s on bridge %s" % (tap, bridge)
    box.add_tap(tap, mtu=mtu, mac=vnic.mac)
    return "libvirt: tap %s, attached to nothing (type=%s)" % (tap, iface.get("type"))


def _netlink_errors():
    from pyroute2.netlink.exceptions import NetlinkError

    return (NetlinkError,)


def hook_command(hook_point):
    """argv of the hook executable: this checkout's, else the installed one."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for path in (os.path.join(package_parent, "hooks", hook_point),
                 os.path.join(INSTALLED_HOOKS, hook_point, "50_quantum_vnic")):
        if os.path.isfile(path):
            return [sys.executable, path]
    return [sys.executable, "-m", "vnic_drivers.hook_main", hook_point]


def simulate_instead():
    """The same VM's before_device_create through ``simulate --dry-run``."""
    import argparse
    import tempfile

    from . import simulate

    code = 0
    with tempfile.TemporaryDirectory(prefix="qvnic-demo-") as workdir:
        for vnic in demo_vnics():
            step("before_device_create, vNIC %s (%s, port %s), dry run" % (vnic.tap, vnic.plugin, vnic.port))
            path = os.path.join(workdir, "domxml-%s.xml" % vnic.tap)
            with open(path, "wb") as stream:
                stream.write(vnic.xml)
            sys.stdout.flush()
            code = code or simulate.run(argparse.Namespace(
                hook="before_device_create", domxml=path, vm_id=VM_ID, config=None, dry_run=True,
                property=["%s=%s" % pair for pair in sorted(vnic.properties.items())], vm_property=[]))
            sys.stderr.flush()
    return code

"""Real kernel objects for the Linux Bridge tests, inside a test's own network namespace.

:class:`Topology` builds what a host has when a Linux Bridge vNIC starts: VDSM's
``;vdsmdummy;`` bridge, the agent's ``brq…`` bridge and a tap made the way libvirt makes
it: opened on ``/dev/net/tun`` by a process that keeps the descriptor (as QEMU does, so
the tap vanishes when that process ends), enslaved to the dummy bridge and up. State is
read back through netlink (pyroute2 ``NetNS``).
"""

import subprocess
import sys

# Opens a tap like libvirt's virNetDevTapCreate (IFF_TAP | IFF_NO_PI), optionally
# persistent (outlives its descriptor, like a leaked tap), then holds it like QEMU until
# stdin closes.
_TAP_HOLDER = r"""
import fcntl, os, struct, sys
TUNSETIFF, TUNSETPERSIST, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x400454CB, 0x0002, 0x1000
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", sys.argv[1].encode(), IFF_TAP | IFF_NO_PI))
if sys.argv[2] == "persist":
    fcntl.ioctl(fd, TUNSETPERSIST, 1)
print("ready", flush=True)
sys.stdin.read()
"""

DUMMY_BRIDGE = ";vdsmdummy;"


class Topology:
    """Bridges and taps in network namespace *netns*; :meth:`close` ends the tap holders."""

    def __init__(self, netns):
        self.netns = netns
        self._holders = []

    def _ns(self):
        from pyroute2 import NetNS

        return NetNS(self.netns)

    def add_bridge(self, name):
        with self._ns() as ns:
            ns.link("add", ifname=name, kind="bridge")
            ns.link("set", index=ns.link_lookup(ifname=name)[0], state="up")

    def add_tap(self, name, bridge=DUMMY_BRIDGE, persist=False, up=True):
        """A libvirt-style tap: created on /dev/net/tun, on *bridge* (if any), up."""
        holder = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c", _TAP_HOLDER,
             name, "persist" if persist else "transient"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self._holders.append(holder)
        if holder.stdout.readline().strip() != "ready":
            raise RuntimeError("could not create tap %s in %s" % (name, self.netns))
        with self._ns() as ns:
            index = ns.link_lookup(ifname=name)[0]
            if bridge:
                ns.link("set", index=index, master=ns.link_lookup(ifname=bridge)[0])
            if up:
                ns.link("set", index=index, state="up")
        return holder

    def add_device(self, name, kind, bridge=None, **extra):
        """A device of *kind* ("veth" needs peer=, "dummy", ...), on *bridge* (if any), up."""
        with self._ns() as ns:
            ns.link("add", ifname=name, kind=kind, **extra)
            index = ns.link_lookup(ifname=name)[0]
            if bridge:
                ns.link("set", index=index, master=ns.link_lookup(ifname=bridge)[0])
            ns.link("set", index=index, state="up")

    def links(self):
        """{name: link(name)} of every device in the namespace."""
        with self._ns() as ns:
            names = [link.get_attr("IFLA_IFNAME") for link in ns.get_links()]
        return {name: self.link(name) for name in names}

    def remove(self, name):
        with self._ns() as ns:
            ns.link("del", index=ns.link_lookup(ifname=name)[0])

    def enslave(self, device, bridge):
        with self._ns() as ns:
            ns.link("set", index=ns.link_lookup(ifname=device)[0],
                    master=ns.link_lookup(ifname=bridge)[0] if bridge else 0)

    @staticmethod
    def release(holder):
        """End a tap holder, as QEMU exits: a transient tap disappears with it."""
        holder.stdin.close()
        holder.wait(timeout=10)

    def link(self, name):
        """{'master', 'up', 'mtu', 'kind'} of *name* read through netlink, or None."""
        with self._ns() as ns:
            found = ns.link_lookup(ifname=name)
            if not found:
                return None
            link = ns.get_links(found[0])[0]
            master = link.get_attr("IFLA_MASTER")
            info = link.get_attr("IFLA_LINKINFO")
            return {
                "master": ns.get_links(master)[0].get_attr("IFLA_IFNAME") if master else None,
                "up": bool(link["flags"] & 1),
                "mtu": link.get_attr("IFLA_MTU"),
                "kind": info.get_attr("IFLA_INFO_KIND") if info else None,
            }

    def close(self):
        for holder in self._holders:
            if holder.poll() is None:
                self.release(holder)

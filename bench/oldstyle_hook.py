#!/usr/bin/env python3
"""A replica of an old-style VDSM hook (as VDSM's openstacknet hook did it), for bench/helper.py.

Hybrid plugging for a vNIC with security groups at ``before_device_create``: read the
device XML with ``xml.dom.minidom``, point it at ``qbr…``, and build the host side with
one ``sudo`` + command process per step (``ip``/``brctl`` for the Linux bridge and the
veth pair, ``ovs-vsctl`` for the port), then write the XML back. The machine has no
``brctl`` (bridge-utils), so its steps are the equivalent ``ip link`` commands, one
process each, as many as openstacknet ran. Not shipped; only measured.

    oldstyle_hook.py OVSDB_REMOTE     (env: _hook_domxml, vnic_id, VDSM's properties)
"""

import os
import subprocess
import sys
from xml.dom import minidom


def sudo(*argv):
    subprocess.check_call(["sudo", "-n"] + list(argv))


def main():
    remote = sys.argv[1]
    path = os.environ["_hook_domxml"]
    port = os.environ["vnic_id"]
    qbr, qvb, qvo, tap = ("%s%s" % (prefix, port[:11]) for prefix in ("qbr", "qvb", "qvo", "tap"))
    dom = minidom.parse(path)
    iface = dom.getElementsByTagName("interface")[0]
    mac = iface.getElementsByTagName("mac")[0].getAttribute("address")
    for source in iface.getElementsByTagName("source"):
        source.setAttribute("bridge", qbr)
    for target in iface.getElementsByTagName("target"):
        target.setAttribute("dev", tap)

    sudo("ip", "link", "add", qbr, "type", "bridge")                        # brctl addbr
    sudo("ip", "link", "set", qbr, "type", "bridge", "forward_delay", "0")  # brctl setfd 0
    sudo("ip", "link", "set", qbr, "type", "bridge", "stp_state", "0")      # brctl stp off
    sudo("ip", "link", "set", qbr, "up")
    sudo("ip", "link", "add", qvb, "type", "veth", "peer", "name", qvo)
    sudo("ip", "link", "set", qvb, "up")
    sudo("ip", "link", "set", qvo, "up")
    sudo("ip", "link", "set", qvb, "master", qbr)                           # brctl addif
    sudo("ovs-vsctl", "--db=" + remote, "--no-wait", "--", "--if-exists", "del-port", qvo,
         "--", "add-port", "br-int", qvo, "--", "set", "Interface", qvo,
         "external-ids:iface-id=%s" % port, "external-ids:iface-status=active",
         "external-ids:attached-mac=%s" % mac, "external-ids:vm-uuid=%s" % os.environ.get("vmId", ""))

    with open(path, "w", encoding="utf-8") as stream:
        stream.write(dom.toxml())


if __name__ == "__main__":
    main()

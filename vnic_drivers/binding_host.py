"""The host id a Quantum port must be bound to for this host's agent to wire it.

The engine copies ``openstack_binding_host_ids[plugin_type]`` from the host's
capabilities into the port's ``binding:host_id``. Neutron's (and Quantum's) Linux Bridge
and Open vSwitch agents report, and bind ports, under their ``host`` option, whose
default is the hostname as ``socket.gethostname()`` gives it. So the value is, in order:

1. ``[hook] binding_host_id`` in quantum-vnic's config (the admin knows better);
2. the ``host`` option of ``[DEFAULT]`` in the agent's config files, read in the order
   the agent reads them (later files win): the Quantum files, then the Neutron ones
   (``neutron-dist.conf``, ``neutron.conf``, the plugin/agent ini files of the plugin,
   then ``conf.d``), as RDO's and the upstream units pass them;
3. ``socket.gethostname()``.

The files are looked for below ``[hook] agent_config_root`` (default ``/``).
"""

import os
import socket

from .log import LOG


# Config files of each plugin's agent, relative to the root, in the agent's reading order.
_QUANTUM = ("usr/share/quantum/quantum-dist.conf", "etc/quantum/quantum.conf")
_NEUTRON = ("usr/share/neutron/neutron-dist.conf", "etc/neutron/neutron.conf",
            "etc/neutron/plugins/ml2/ml2_conf.ini")
AGENT_FILES = {
    "OPEN_VSWITCH": _QUANTUM + (
        "etc/quantum/plugins/openvswitch/ovs_quantum_plugin.ini",  # Grizzly
    ) + _NEUTRON + (
        "etc/neutron/plugins/openvswitch/ovs_neutron_plugin.ini",  # Havana, Icehouse
        "etc/neutron/plugins/ml2/openvswitch_agent.ini",  # Mitaka and later
    ),
    "LINUX_BRIDGE": _QUANTUM + (
        "etc/quantum/plugins/linuxbridge/linuxbridge_conf.ini",
    ) + _NEUTRON + (
        "etc/neutron/plugins/linuxbridge/linuxbridge_conf.ini",
        "etc/neutron/plugins/ml2/linuxbridge_agent.ini",
    ),
}
# --config-dir directories of the RDO units: every *.conf in them, in name order.
AGENT_DIRS = {
    "OPEN_VSWITCH": ("etc/neutron/conf.d/common", "etc/neutron/conf.d/neutron-openvswitch-agent"),
    "LINUX_BRIDGE": ("etc/neutron/conf.d/common", "etc/neutron/conf.d/neutron-linuxbridge-agent"),
}
CONFIG_NAME = "[hook] binding_host_id in %s"


def agent_config_files(root, plugin_type):
    """The agent's config files of *plugin_type* that exist below *root*, in reading order."""
    found = []
    for relative in AGENT_FILES[plugin_type]:
        path = os.path.join(root, relative)
        if os.path.isfile(path):
            found.append(path)
    for relative in AGENT_DIRS[plugin_type]:
        directory = os.path.join(root, relative)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        found += [os.path.join(directory, name) for name in names
                  if name.endswith(".conf") and os.path.isfile(os.path.join(directory, name))]
    return found


def _host_option(path):
    """The ``host`` option of ``[DEFAULT]`` in *path*, or None (unset, or not readable)."""
    import configparser

    # oslo.config files: [DEFAULT] holds `host`; repeated sections and options are allowed.
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with open(path, encoding="utf-8") as stream:
            parser.read_file(stream)
    except (OSError, UnicodeDecodeError, configparser.Error) as err:
        LOG.warning("cannot read the agent's config %s (%s); its host option, if any, is "
                    "not taken into account", path, str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None
    value = parser.defaults().get("host", "").strip()
    return value or None


def binding_host_id(config, plugin_type):
    """``(value, source)``: the binding host id for *plugin_type* and where it came from."""
    configured = config.get("hook", "binding_host_id")
    if configured:
        return configured, CONFIG_NAME % config.path
    value = source = None
    for path in agent_config_files(config.get("hook", "agent_config_root"), plugin_type):
        host = _host_option(path)
        if host is not None:
            value, source = host, "host in %s" % path
    if value is not None:
        return value, source
    return socket.gethostname(), "socket.gethostname()"

"""``after_get_caps``: tell the engine which host id to bind this host's Quantum ports to.

The engine sets a port's ``binding:host_id`` to what the host reports under
``openstack_binding_host_ids`` in its capabilities, per plugin type (as VDSM's own
openstacknet hook did). The Linux Bridge and OVS agents bind ports by their ``host``
option, so that is what is reported for ``LINUX_BRIDGE`` and ``OPEN_VSWITCH``
(:func:`vnic_drivers.binding_host.binding_host_id`: the config's override, the agent's
``host``, else the hostname). Neither needs OVS nor any privileged operation.

VDSM hands the capabilities over as JSON in the file named by ``$_hook_json``; the file
is rewritten atomically, and only when something changed. Values other hooks put under
``openstack_binding_host_ids`` (other plugin types) are kept.
"""

import json

from . import hooking
from .binding_host import binding_host_id
from .errors import InputError
from .log import LOG

CAPS_KEY = "openstack_binding_host_ids"
PLUGIN_TYPES = ("LINUX_BRIDGE", "OPEN_VSWITCH")



def _read_caps(path):
    caps = hooking.load_json(hooking.read_bytes(path), "capabilities in %s" % path)
    if not isinstance(caps, dict):
        raise InputError("capabilities in %s are a JSON %s, expected an object" % (path, type(caps).__name__))
    return caps


def update(config, logger=LOG):
    """Add ``openstack_binding_host_ids[LINUX_BRIDGE, OPEN_VSWITCH]`` to VDSM's capabilities."""
    path = hooking.hook_file(hooking.JSON_ENV)
    caps = _read_caps(path)
    binding_ids = caps.get(CAPS_KEY)
    if not isinstance(binding_ids, dict):
        binding_ids = {}
    changed = binding_ids is not caps.get(CAPS_KEY)
    for plugin_type in PLUGIN_TYPES:
        host_id, source = binding_host_id(config, plugin_type)
        logger.debug("%s[%s] = %s (%s)", CAPS_KEY, plugin_type, host_id, source)
        if binding_ids.get(plugin_type) != host_id:
            binding_ids[plugin_type] = host_id
            changed = True
    if changed:
        caps[CAPS_KEY] = binding_ids
        hooking.write_bytes_atomically(path, json.dumps(caps).encode("utf-8"))

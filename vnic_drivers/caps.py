"""``after_get_caps``: tell the engine this host's identity for Quantum port binding.

The engine sets a port's ``binding:host_id`` to what the host reports under
``openstack_binding_host_ids`` in its capabilities, per plugin type (as VDSM's own
openstacknet hook does). For ``OPEN_VSWITCH`` that is the Open_vSwitch table's
``external_ids:system-id``, or its ``external_ids:hostname`` when no system-id is set.

VDSM hands the capabilities over as JSON in the file named by ``$_hook_json``; the file
is rewritten atomically, and only when something was added. With OVS down (or not used
on this host) the capabilities stay as they are, one warning line says why, and the hook
exits 0: a host without OVS is a valid host.
"""

import json
import logging

from . import hooking, host as host_module
from .errors import HostError, InputError

CAPS_KEY = "openstack_binding_host_ids"
PLUGIN_TYPE = "OPEN_VSWITCH"
# In order of preference.
IDENTITY_KEYS = ("system-id", "hostname")

LOG = logging.getLogger("quantum_vnic")


def _read_caps(path):
    caps = hooking.load_json(hooking.read_bytes(path), "capabilities in %s" % path)
    if not isinstance(caps, dict):
        raise InputError("capabilities in %s are a JSON %s, expected an object" % (path, type(caps).__name__))
    return caps


def update(config, logger=LOG):
    """Add ``openstack_binding_host_ids[OPEN_VSWITCH]`` to the capabilities VDSM handed over."""
    path = hooking.hook_file(hooking.JSON_ENV)
    caps = _read_caps(path)
    try:
        # Which OVSDB is the privileged side's own config's choice, not an argument.
        identity = host_module.connect().call("ovs_host_identity")
    except HostError as err:
        logger.warning("%s; %s not reported", err, CAPS_KEY)
        return
    if identity is None:  # a dry run
        return
    host_id = next((identity[key] for key in IDENTITY_KEYS if key in identity), None)
    if host_id is None:
        logger.warning("OVSDB at %s has neither external_ids:system-id nor hostname in its "
                       "Open_vSwitch table (ovs-ctl sets them at start); %s not reported",
                       config.get("openvswitch", "ovsdb"), CAPS_KEY)
        return
    binding_ids = caps.get(CAPS_KEY)
    if not isinstance(binding_ids, dict):
        binding_ids = caps[CAPS_KEY] = {}
    if binding_ids.get(PLUGIN_TYPE) == host_id:
        return
    binding_ids[PLUGIN_TYPE] = host_id
    hooking.write_bytes_atomically(path, json.dumps(caps).encode("utf-8"))
    logger.debug("%s[%s] = %s", CAPS_KEY, PLUGIN_TYPE, host_id)

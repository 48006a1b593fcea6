"""Where every hook enters: hook point -> parse, validate, pick driver, act, write, exit.

VDSM runs ``hooks/<hook_point>`` (installed as
``/usr/libexec/vdsm/hooks/<hook_point>/50_quantum_vnic``), which calls :func:`main`.

=================================  ========  =========================================
hook point                         action    what the driver does
=================================  ========  =========================================
before_device_create               create    rewrite the XML, prepare host objects
before_nic_hotplug                 create    same, for the device being attached
before_device_migrate_destination  prepare   host objects only (VDSM drops the XML)
after_device_create                plug      finish wiring the tap libvirt made
after_nic_hotplug                  plug
after_device_migrate_destination   plug
after_device_destroy               unplug    remove what we created; idempotent
after_nic_hotunplug                unplug
after_nic_hotplug_fail             unplug    roll back a failed hot-plug
after_get_caps                     (host)    add the OVS binding host id (caps.py)
=================================  ========  =========================================

Exit codes: 0 done (or not our device); on an error ``before_*`` points exit 2 (VDSM
aborts the VM start / hot-plug), ``after_*`` points exit 1 (logged, never aborts).
"""

import os
import sys

from . import hooking, vnic as vnic_module
from .errors import HookError

HOOK_POINTS = {
    "before_device_create": "create",
    "before_nic_hotplug": "create",
    "before_device_migrate_destination": "prepare",
    "after_device_create": "plug",
    "after_nic_hotplug": "plug",
    "after_device_migrate_destination": "plug",
    "after_device_destroy": "unplug",
    "after_nic_hotunplug": "unplug",
    "after_nic_hotplug_fail": "unplug",
}

# Host-level hook points: no device and no provider_type gate (see vnic_drivers/caps.py).
HOST_HOOK_POINTS = ("after_get_caps",)


def failure_exit_code(hook_point):
    """2 (stop: abort the operation) before it happens, 1 (log and go on) after."""
    return hooking.EXIT_FAILED_STOP if hook_point.startswith("before_") else hooking.EXIT_FAILED


def main(hook_point, environ=None):
    """Run *hook_point* for the device VDSM handed over; returns the exit code."""
    environ = os.environ if environ is None else environ
    if hook_point in HOST_HOOK_POINTS:
        return _run(hook_point, environ)
    if hook_point not in HOOK_POINTS:
        sys.stderr.write("quantum-vnic: unknown hook point %r\n" % hook_point)
        return hooking.EXIT_FAILED
    # Fast path: every device with custom properties runs the hooks; leave the
    # others before importing anything heavy.
    if not vnic_module.is_quantum_vnic(environ):
        return hooking.EXIT_OK
    return _run(hook_point, environ)


def _run(hook_point, environ):
    from . import config as config_module
    from . import log

    logger = log.setup(hook_point)  # defaults until the config says otherwise
    try:
        config = config_module.load()
    except HookError as err:
        logger.error("%s", err)
        return failure_exit_code(hook_point)
    log.setup(hook_point, config.get("hook", "log_level"), config.get("hook", "syslog"))
    try:
        if hook_point in HOST_HOOK_POINTS:
            from . import caps

            caps.update(config, logger)
        else:
            _dispatch(HOOK_POINTS[hook_point], hook_point, environ, config, logger)
    except HookError as err:
        logger.error("%s", err)
        return err.exit_code if err.exit_code is not None else failure_exit_code(hook_point)
    except Exception:  # a bug, not an expected error: keep the traceback for the report
        logger.exception("unexpected failure; please report this with the traceback")
        return failure_exit_code(hook_point)
    return hooking.EXIT_OK


def _dispatch(action, hook_point, environ, config, logger):
    from . import base, domxml, host as host_module

    path = hooking.hook_file()
    if action == "create":
        original = hooking.read_bytes(path)
        iface = domxml.parse_interface(original, "device XML in %s" % path)
        mac = domxml.mac_address(iface)
    else:
        # Only some steps need the device XML (the MAC, for OVS ports): read it on first
        # use, so tear-down never depends on the file and most runs skip the parse.
        def mac():
            data = hooking.read_bytes(path)
            return domxml.mac_address(domxml.parse_interface(data, "device XML in %s" % path))

    vnic = vnic_module.from_environment(environ, mac=mac, default_mtu=config.get("hook", "mtu"))
    api = None
    if action != "unplug" and config.get("quantum", "url"):  # the API's facts (vnic_drivers/quantum)
        from .quantum import hook_steps

        api = hook_steps.complete(vnic, environ, config, hook_point, action)
    driver = base.driver_for(vnic, config, host_module.connect())
    logger.debug("%s: %r with %s", hook_point, vnic, type(driver).__name__)

    if action == "create":
        driver.rewrite(iface, vnic)
        updated = domxml.serialize(iface, original)
        driver.prepare(vnic)
        try:
            if updated != original:
                hooking.write_bytes_atomically(path, updated)
        except BaseException:
            driver.unplug(vnic)  # leave nothing behind when the device will not come
            raise
        logger.info("%s: vNIC %s rewritten for %s", hook_point, vnic.port_id, vnic.plugin_type)
    elif action == "prepare":
        driver.prepare(vnic)
    elif action == "plug":
        driver.plug(vnic)
        if api is not None:
            api.after_plug(vnic)
    else:
        driver.unplug(vnic)


def entry_point():
    """``python -m vnic_drivers.hook_main HOOK_POINT``: for tools that run a hook."""
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m vnic_drivers.hook_main HOOK_POINT\n")
        return hooking.EXIT_FAILED
    return main(sys.argv[1])


if __name__ == "__main__":
    sys.exit(entry_point())

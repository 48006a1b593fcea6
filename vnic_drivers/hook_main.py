"""Where every hook enters: hook point -> parse, validate, pick driver, act, write, exit.

VDSM runs ``hooks/<hook_point>`` (installed as
``/usr/libexec/vdsm/hooks/<hook_point>/50_quantum_vnic``), which calls :func:`main`.

=================================  ========  =========================================
hook point                         action    what the driver does
=================================  ========  =========================================
before_device_create               create    rewrite the XML, prepare host objects
before_nic_hotplug                 create    same, for the device being attached
before_device_migrate_destination  prepare   host objects only (VDSM drops the XML)
before_update_device               update    put the NIC back on its Quantum wiring,
                                             keep what the update changed
after_device_create                plug      finish wiring the tap libvirt made
after_nic_hotplug                  plug
after_device_migrate_destination   plug
after_update_device                plug      re-check (and redo) the wiring
after_update_device_fail           keep      nothing: libvirt kept the old device
after_device_destroy               unplug    remove what we created; idempotent
after_nic_hotunplug                unplug
after_nic_hotplug_fail             unplug    roll back a failed hot-plug
after_get_caps                     (host)    add the binding host ids (caps.py)
=================================  ========  =========================================

The actions ``create``, ``prepare`` and ``update`` read the device XML and record the
vNIC's MAC (:mod:`vnic_drivers.records`); the others never read the file, which VDSM
leaves empty at ``after_device_create`` and ``after_device_destroy``.

The ``after_*`` actions (``plug``, ``keep``, ``unplug``) are first offered whole to the
resident helper (:mod:`vnic_drivers.helper.hook_client`), before any config is read: it
runs :func:`finish` as root with root's copy of the same config and hands back the log
lines and the exit code. When there is no helper, or it declines (the step needs the
Quantum API or the MAC record, which are vdsm's), the hook runs the action itself.

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
    "before_update_device": "update",
    "after_device_create": "plug",
    "after_nic_hotplug": "plug",
    "after_device_migrate_destination": "plug",
    "after_update_device": "plug",
    "after_update_device_fail": "keep",
    "after_device_destroy": "unplug",
    "after_nic_hotunplug": "unplug",
    "after_nic_hotplug_fail": "unplug",
}

# Host-level hook points: no device and no provider_type gate (see vnic_drivers/caps.py).
HOST_HOOK_POINTS = ("after_get_caps",)

# Actions that read the device XML VDSM hands over; every other action works from the
# environment, the record a before_* point left, and the host (see vnic_drivers/records.py).
XML_ACTIONS = ("create", "prepare", "update")
# The actions that ask the Quantum API when [quantum] url is set (vnic_drivers/quantum/hook_steps.py).
API_ACTIONS = ("create", "prepare", "plug")
# The actions the resident helper can run whole for a hook process (helper/hook_runner.py).
HELPER_ACTIONS = ("plug", "keep", "unplug")

USAGE = "usage: %s [--config FILE] [--dry-run]  (VDSM runs it with no argument)"


def failure_exit_code(hook_point):
    """2 (stop: abort the operation) before it happens, 1 (log and go on) after."""
    return hooking.EXIT_FAILED_STOP if hook_point.startswith("before_") else hooking.EXIT_FAILED


class Options:
    """What the command line of the hook process asks for; VDSM gives none (the defaults).

    This is the only channel for the hook's own controls. Not the environment: VDSM builds
    a hook's environment from its own and adds every VM and device custom property, whatever
    its name, so a variable could be set by anyone who may edit a VM's properties. The
    argv of the script is VDSM's (empty) or that of whoever runs it by hand.
    """

    def __init__(self, config=None, dry_run=False):
        self.config = config
        self.dry_run = dry_run
        self.helper_gave_up = None  # set by main: the helper took this hook and failed it


def parse_argv(argv, prog):
    """:class:`Options` from *argv*; None (after a one-line message) when it is not valid."""
    if not argv:
        return Options()  # VDSM's case: no parser imported
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise ValueError(message)

    parser = Parser(prog=prog, add_help=False)
    parser.add_argument("--config")
    parser.add_argument("--dry-run", action="store_true")
    try:
        args = parser.parse_args(list(argv))
    except ValueError as err:
        sys.stderr.write("quantum-vnic: %s; %s\n" % (err, USAGE % prog))
        return None
    return Options(args.config, args.dry_run)


def main(hook_point, environ=None, argv=None):
    """Run *hook_point* for the device VDSM handed over; returns the exit code.

    *argv* (default: this process's arguments) may name another config file and ask for
    a dry run; VDSM passes no argument.
    """
    environ = os.environ if environ is None else environ
    if hook_point not in HOOK_POINTS and hook_point not in HOST_HOOK_POINTS:
        sys.stderr.write("quantum-vnic: unknown hook point %r\n" % hook_point)
        return hooking.EXIT_FAILED
    argv = sys.argv[1:] if argv is None else argv
    options = parse_argv(argv, hook_point)
    if options is None:
        return failure_exit_code(hook_point)
    if hook_point in HOST_HOOK_POINTS:
        return _run(hook_point, environ, options)
    # Fast path: every device with custom properties runs the hooks; leave the
    # others before importing anything heavy.
    if not vnic_module.is_quantum_vnic(environ):
        return hooking.EXIT_OK
    # VDSM's case (no arguments, not root) at an after_* point: the helper runs it whole.
    if not argv and HOOK_POINTS[hook_point] in HELPER_ACTIONS and os.geteuid() != 0:
        from .helper import hook_client

        outcome = hook_client.run(hook_point, environ)
        if isinstance(outcome, int):
            return outcome
        options.helper_gave_up = outcome  # None, or why not to wait for it again
    return _run(hook_point, environ, options)


def _run(hook_point, environ, options):
    from . import config as config_module
    from . import log

    logger = log.setup(hook_point)  # defaults until the config says otherwise
    try:
        # For the whole process: the privileged side, run in-process as root, loads it too.
        config_module.select(options.config)
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
            _dispatch(HOOK_POINTS[hook_point], hook_point, environ, config, options, logger)
    except HookError as err:
        logger.error("%s", err)
        return err.exit_code if err.exit_code is not None else failure_exit_code(hook_point)
    except Exception:  # a bug, not an expected error: keep the traceback for the report
        logger.exception("unexpected failure; please report this with the traceback")
        return failure_exit_code(hook_point)
    return hooking.EXIT_OK


def _dispatch(action, hook_point, environ, config, options, logger):
    from . import base, domxml, host as host_module, records

    if action in XML_ACTIONS:
        path = hooking.hook_file()
        original = hooking.read_bytes(path)
        iface = domxml.parse_interface(original, "device XML in %s" % path)
        mac = domxml.mac_address(iface)
    else:
        # VDSM passes an empty file at after_device_create and after_device_destroy (and
        # whatever it last had elsewhere): never read it. The one value a later step may
        # need, the MAC (OVS plug mode hook: attached-mac), comes from the record the
        # before_* point left or, without one, from libvirt; only when first asked for.
        def mac(vnic):
            return records.mac_for(config, vnic)

    vnic = vnic_module.from_environment(environ, mac=mac, default_mtu=config.get("hook", "mtu"))
    if action == "update" and iface.find("mtu") is not None:
        vnic.mtu = None  # keep the MTU the update carries (libvirt cannot change it live)
    api = None
    if action in API_ACTIONS and config.get("quantum", "url"):  # the API's facts (vnic_drivers/quantum)
        from .quantum import hook_steps

        api = hook_steps.complete(vnic, environ, config, hook_point, action)
    host = host_module.connect(dry_run=options.dry_run, config=config, helper_gave_up=options.helper_gave_up)
    driver = base.driver_for(vnic, config, host)
    logger.debug("%s: %r with %s", hook_point, vnic, type(driver).__name__)

    if action in ("create", "update"):
        driver.rewrite(iface, vnic)
        updated = domxml.serialize(iface, original)
        if action == "create":
            driver.prepare(vnic)
        try:
            if updated != original:
                hooking.write_bytes_atomically(path, updated)
        except BaseException:
            if action == "create":
                driver.unplug(vnic)  # leave nothing behind when the device will not come
            raise
        _record(config, vnic, options, logger)
        if action == "create":
            logger.info("%s: vNIC %s rewritten for %s", hook_point, vnic.port_id, vnic.plugin_type)
        else:
            logger.info("%s: vNIC %s kept on its %s wiring", hook_point, vnic.port_id, vnic.plugin_type)
    elif action == "prepare":
        driver.prepare(vnic)
        _record(config, vnic, options, logger)
    else:
        finish(action, hook_point, vnic, driver, config, logger, api=api, dry_run=options.dry_run)


def finish(action, hook_point, vnic, driver, config, logger, api=None, dry_run=False):
    """The ``after_*`` actions: ``plug``, ``keep`` or ``unplug`` *vnic* with *driver*.

    Run by the hook process itself, or by the resident helper for it
    (:mod:`vnic_drivers.helper.hook_runner`, never with *api*).
    """
    if action == "plug":
        driver.plug(vnic)
        if api is not None:
            api.after_plug(vnic)
    elif action == "keep":
        # libvirt refused the update: the device, and so its host side, is as before.
        logger.info("%s: update of vNIC %s failed; host wiring left as it was", hook_point, vnic.port_id)
    else:
        if not dry_run:
            from . import records

            # First: the record says a VM is starting or running with this vNIC (quantum-vnic
            # cleanup leaves such vNICs alone), and after this point none is, even if the
            # unplug fails or is killed half-way and leaves devices for cleanup.
            records.remove(config, vnic, logger)
        driver.unplug(vnic)


def _record(config, vnic, options, logger):
    from . import records

    if options.dry_run:
        logger.debug("dry-run: would record MAC %s of port %s", vnic.mac, vnic.port_id)
    else:
        records.save(config, vnic, logger)


def exit_now(code):
    """End the hook process with *code* once its output is flushed, skipping interpreter
    shutdown (module teardown, GC: ~20 ms of a hook's run). The hook scripts call it.
    Nothing is buffered elsewhere: files are closed by then, log handlers write through."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def entry_point():
    """``python -m vnic_drivers.hook_main HOOK_POINT [--config FILE] [--dry-run]``: for
    tools that run a hook (simulate, the demo)."""
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.stderr.write("usage: python -m vnic_drivers.hook_main HOOK_POINT [--config FILE] [--dry-run]\n")
        return hooking.EXIT_FAILED
    return main(sys.argv[1], argv=sys.argv[2:])


if __name__ == "__main__":
    sys.exit(entry_point())

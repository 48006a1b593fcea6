"""The host's ini file (``/etc/vdsm/quantum_vnic.conf``) and its built-in defaults.

Every option is declared once in :data:`SCHEMA` with its parser and default; an unknown
section or option, or a value its parser refuses, is a one-line error naming the file,
the option and what was expected. The file is optional: without it the defaults apply.
"""

import os
import re

from . import naming
from .errors import InputError

DEFAULT_PATH = "/etc/vdsm/quantum_vnic.conf"
PATH_ENV = "QUANTUM_VNIC_CONF"


def _choice(*allowed):
    def parse(value, what):
        value = value.strip().lower()
        if value not in allowed:
            raise InputError("%s=%r: expected one of %s" % (what, value, ", ".join(allowed)))
        return value

    return parse


def _optional(parse):
    def parse_optional(value, what):
        return None if value.strip() == "" else parse(value, what)

    return parse_optional


def _boolean(value, what):
    value = value.strip().lower()
    if value in ("1", "yes", "true", "on"):
        return True
    if value in ("0", "no", "false", "off"):
        return False
    raise InputError("%s=%r: expected true or false" % (what, value))


def _seconds(value, what):
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 300.0:
        raise InputError("%s=%r: expected seconds from 0 to 300" % (what, value))
    return number


def _log_level(value, what):
    value = value.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise InputError("%s=%r: expected DEBUG, INFO, WARNING or ERROR" % (what, value))
    return value


def _bridge(value, what):
    return naming.device_name(value.strip(), what, allow_dummy=True)


def _ovsdb_remote(value, what):
    value = value.strip()
    if not (value.startswith("unix:") or value.startswith("tcp:") or value.startswith("ssl:")):
        raise InputError("%s=%r: expected unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT" % (what, value))
    return value


def _libvirt_uri(value, what):
    value = value.strip()
    if not re.fullmatch(r"[a-z][a-z0-9+]*://[^\s]*", value):
        raise InputError("%s=%r: expected a libvirt URI such as qemu:///system" % (what, value))
    return value


# section -> option -> (parser, default as it would be written in the file)
SCHEMA = {
    "hook": {
        "log_level": (_log_level, "INFO"),
        "syslog": (_boolean, "false"),
        "mtu": (_optional(naming.mtu), ""),
    },
    "linux_bridge": {
        # bridge: the tap sits on dummy_bridge until plugged; ethernet: libvirt makes
        # an unattached tap (type='ethernet') and the agent or the hook attaches it.
        "mode": (_choice("bridge", "ethernet"), "bridge"),
        "dummy_bridge": (_bridge, naming.VDSM_DUMMY_BRIDGE),
        "wait_timeout": (_seconds, "0"),
    },
    "openvswitch": {
        "integration_bridge": (_bridge, "br-int"),
        # virtualport: libvirt adds the port; hook: the hook adds an unattached tap.
        "plug": (_choice("virtualport", "hook"), "virtualport"),
        # hybrid: qbr/qvb/qvo when the port has security groups; none: never.
        "firewall": (_choice("hybrid", "none"), "hybrid"),
        "ovsdb": (_ovsdb_remote, "unix:/var/run/openvswitch/db.sock"),
        "wait_timeout": (_seconds, "0"),
    },
    "cleanup": {
        # Where quantum-vnic cleanup (and doctor) ask which vNICs running VMs use.
        "libvirt_uri": (_libvirt_uri, "qemu:///system"),
    },
}


class Config:
    """Parsed options, read as ``config.get("section", "option")``."""

    def __init__(self, values, path):
        self._values = values
        self.path = path

    def get(self, section, option):
        return self._values[section][option]

    def as_dict(self):
        return {section: dict(options) for section, options in self._values.items()}


def defaults():
    """A Config with every option at its built-in default."""
    return _build({}, "<defaults>")


def _build(raw, path):
    values = {}
    for section, options in SCHEMA.items():
        values[section] = {}
        for option, (parse, default) in options.items():
            text = raw.get(section, {}).get(option, default)
            try:
                values[section][option] = parse(text, option)
            except InputError as err:
                raise InputError(
                    "config %s: [%s] %s; fix the file or remove the option to use the "
                    "default %r" % (path, section, err, default)
                ) from None
    return Config(values, path)


def load(path=None):
    """Read the config at *path*, ``$QUANTUM_VNIC_CONF`` or the default location.

    A missing file at the default location means defaults; a missing file that was
    named explicitly is an error (the admin asked for it).
    """
    import configparser

    explicit = path or os.environ.get(PATH_ENV)
    path = explicit or DEFAULT_PATH
    parser = configparser.ConfigParser(interpolation=None, default_section="__no_default__")
    try:
        with open(path, encoding="utf-8") as stream:
            parser.read_file(stream)
    except FileNotFoundError:
        if explicit:
            raise InputError("config %s does not exist; create it or unset %s" % (path, PATH_ENV)) from None
        return defaults()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError("config %s cannot be read: %s" % (path, err)) from None
    except configparser.Error as err:
        first_line = str(err).splitlines()[0]
        raise InputError("config %s is not a valid ini file: %s" % (path, first_line)) from None

    raw = {}
    for section in parser.sections():
        if section not in SCHEMA:
            raise InputError(
                "config %s: unknown section [%s]; known: %s"
                % (path, section, ", ".join("[%s]" % s for s in SCHEMA))
            )
        for option, value in parser.items(section):
            if option not in SCHEMA[section]:
                raise InputError(
                    "config %s: unknown option %r in [%s]; known: %s"
                    % (path, option, section, ", ".join(SCHEMA[section]))
                )
            raw.setdefault(section, {})[option] = value
    return _build(raw, path)

"""The host's ini file (``/etc/vdsm/quantum_vnic.conf``) and its built-in defaults.

Every option is declared once in :data:`SCHEMA` with its parser and default; an unknown
section or option, or a value its parser refuses, is a one-line error naming the file,
the option and what was expected. The file is optional: without it the defaults apply.
"""

import os

from . import naming
from .helper import DEFAULT_SOCKET
from .errors import InputError

DEFAULT_PATH = "/etc/vdsm/quantum_vnic.conf"

# The file this process reads instead of DEFAULT_PATH, set only in-process by an entry
# point from its own argv or arguments (a hook's --config, simulate/doctor --config).
# Never from the environment: VDSM copies its environment into a hook's and adds every
# VM and device custom property to it, whatever the name, so any variable read here could
# be set by whoever edits a VM. The privileged side run in-process (as root) calls load()
# too and so reads the same file; through sudo it is a new process and reads DEFAULT_PATH.
_selected_path = None


def select(path):
    """Make *path* (or, with None, the default) the config file of this whole process."""
    global _selected_path
    _selected_path = None if path is None else os.path.abspath(path)


def selected_path():
    """The file :func:`load` reads when given no path."""
    return _selected_path or DEFAULT_PATH


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


def _absolute_path(value, what):
    value = value.strip()
    if not value.startswith("/") or "\0" in value:
        raise InputError("%s=%r: expected an absolute path" % (what, value))
    return os.path.normpath(value)


def _libvirt_uri(value, what):
    value = value.strip()
    if "://" not in value or any(char.isspace() for char in value):
        raise InputError("%s=%r: expected a libvirt URI such as qemu:///system" % (what, value))
    return value


def _host_id(value, what):
    # Neutron's agents compare it byte for byte with their own `host` option.
    value = value.strip()
    if len(value) > 255 or any(char.isspace() or not char.isprintable() for char in value):
        raise InputError("%s=%r: expected a host name as the Neutron agent's `host` option "
                         "has it (printable, no spaces, at most 255 characters)" % (what, value[:60]))
    return value


def _ovsdb_remote(value, what):
    value = value.strip()
    if not (value.startswith("unix:") or value.startswith("tcp:") or value.startswith("ssl:")):
        raise InputError("%s=%r: expected unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT" % (what, value))
    return value


def _api_url(value, what):
    # Validated here so the hook never hands requests a URL it would guess about; the
    # userinfo part is refused: credentials belong in the credentials file.
    from urllib.parse import urlsplit

    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc \
            or parts.query or parts.fragment:
        raise InputError("%s: expected http(s)://HOST[:PORT][/PATH] with no user, query or "
                         "fragment (the Quantum API endpoint, e.g. http://controller:9696)" % what)
    return value


def _timeout(value, what):
    number = _seconds(value, what)
    if number <= 0:
        raise InputError("%s=%r: expected seconds above 0 (and at most 300)" % (what, value))
    return number


def _count(value, what):
    value = value.strip()
    if not value.isdigit() or int(value) > 10:
        raise InputError("%s=%r: expected a whole number from 0 to 10" % (what, value))
    return int(value)


def _socket_path(value, what):
    value = _absolute_path(value, what)
    if len(value) > 107:  # sun_path holds 108 bytes with the terminating NUL
        raise InputError("%s=%r: a unix socket path has at most 107 characters" % (what, value))
    return value


_USER_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz_")
_USER_CHARS = _USER_FIRST | frozenset("0123456789.-")


def _is_user_name(name):
    # A POSIX-ish login name, as useradd accepts by default (no `re`: see naming.py).
    return 0 < len(name) <= 32 and name[0] in _USER_FIRST and _USER_CHARS.issuperset(name)


def _user_list(value, what):
    """User names or numeric uids, separated by commas or spaces (resolved by the helper)."""
    users = tuple(part for part in value.replace(",", " ").split() if part)
    for user in users:
        if not ((user.isascii() and user.isdigit()) or _is_user_name(user)):
            raise InputError("%s=%r: expected user names or uids separated by commas" % (what, value))
    return users


# section -> option -> (parser, default as it would be written in the file)
SCHEMA = {
    "hook": {
        "log_level": (_log_level, "INFO"),
        "syslog": (_boolean, "false"),
        "mtu": (_optional(naming.mtu), ""),
        # Where before_* hook points record what after_* points need later (the MAC);
        # must be writable by vdsm. /run: a record does not outlive a reboot, nor a VM.
        "state_dir": (_absolute_path, "/run/vdsm/quantum-vnic"),
        # Read-only connection used when no record exists (a VM started before the install).
        "libvirt_uri": (_libvirt_uri, "qemu:///system"),
        # openstack_binding_host_ids in after_get_caps: empty = the agents' `host` option,
        # else the hostname (vnic_drivers/binding_host.py).
        "binding_host_id": (_optional(_host_id), ""),
        # Where the agents' config files are looked for (/etc/neutron/... below it).
        "agent_config_root": (_absolute_path, "/"),
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
    "quantum": {
        # The Quantum (Neutron) API endpoint; empty: the hooks never ask the provider.
        "url": (_optional(_api_url), ""),
        "auth": (_choice("noauth", "keystone-v2", "keystone-v3"), "noauth"),
        # The Keystone user and password: its own file, owned by vdsm (or root), mode 0600.
        "credentials": (_absolute_path, "/etc/vdsm/quantum_vnic.credentials"),
        # CA bundle for https; empty: the system's CAs. Verification is never off.
        "ca_file": (_optional(_absolute_path), ""),
        "connect_timeout": (_timeout, "2"),
        "read_timeout": (_timeout, "5"),
        # The most seconds one hook run spends on lookups, retries included.
        "budget": (_timeout, "8"),
        "retries": (_count, "2"),
        # true: a failed lookup or a binding mismatch stops the VM start (exit 2).
        "strict": (_boolean, "false"),
        # After the device is created, wait up to this long for the port to be ACTIVE.
        "active_wait": (_seconds, "0"),
        # Where Keystone tokens are kept between hook runs; empty: in memory only.
        "token_cache": (_optional(_absolute_path), "/run/vdsm/quantum_vnic.token"),
    },
    # The resident helper (vnic_drivers/helper/): its socket, who may use it, and when
    # it gives up on a client, or exits when nobody asked anything for a while.
    "helper": {
        "socket": (_socket_path, DEFAULT_SOCKET),
        "allowed_users": (_user_list, "vdsm"),
        "idle_timeout": (_seconds, "60"),
        "client_timeout": (_seconds, "5"),
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
    """Read the config at *path*, the file :func:`select` named, or the default location.

    A missing file at the default location means defaults; a missing file that was
    named explicitly is an error (the admin asked for it).
    """
    explicit = path or _selected_path
    path = explicit or DEFAULT_PATH
    try:
        stream = open(path, encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise InputError("config %s does not exist; create it or name another file" % path) from None
        return defaults()
    except OSError as err:
        raise InputError("config %s cannot be read: %s" % (path, err)) from None
    import configparser  # only with a file to parse

    parser = configparser.ConfigParser(interpolation=None, default_section="__no_default__")
    try:
        with stream:
            parser.read_file(stream)
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

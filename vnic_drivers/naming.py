"""Validation of every engine/XML-supplied value, and the device names the agents expect.

Nothing here touches the host. Every value that later reaches the kernel, OVSDB or a
command line passes through one of these validators first; each raises
:class:`~vnic_drivers.errors.InputError` with one line naming the value and what was
expected.

The checks are plain character-set tests, not regular expressions: every hook process
validates ids, and ``re`` costs ~6 ms of an ``after_*`` hook that otherwise imports
nothing heavy.
"""

from .errors import InputError

# Linux IFNAMSIZ is 16 including the terminating NUL.
MAX_DEVICE_NAME = 15
# The Quantum agents key devices on the first 11 characters of the port/network id.
ID_PREFIX_LEN = 11

TAP_PREFIX = "tap"
LINUX_BRIDGE_PREFIX = "brq"
HYBRID_BRIDGE_PREFIX = "qbr"
HYBRID_VETH_BRIDGE_SIDE_PREFIX = "qvb"
HYBRID_VETH_OVS_SIDE_PREFIX = "qvo"

# VDSM's placeholder bridge; not a valid name by libvirt's schema, but real on hosts.
VDSM_DUMMY_BRIDGE = ";vdsmdummy;"

_HEX = frozenset("0123456789abcdef")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
# A conservative subset of what the kernel accepts for a device name: no '/', ':',
# whitespace or quotes, nothing a command line or an OVSDB condition could misread.
_DEVICE_CHARS = _ALNUM | frozenset(".-")
_TOKEN_CHARS = _DEVICE_CHARS
MAX_TOKEN = 64
# The lengths of a UUID's groups: 8-4-4-4-12 hex digits.
_UUID_GROUPS = (8, 4, 4, 4, 12)


def _is_uuid(text):
    groups = text.split("-")
    return (len(text) == 36 and tuple(map(len, groups)) == _UUID_GROUPS
            and _HEX.issuperset(text.replace("-", "")))


def _is_mac(text):
    pairs = text.split(":")
    return len(pairs) == 6 and all(len(pair) == 2 for pair in pairs) and _HEX.issuperset(text.replace(":", ""))


def _is_device_name(text):
    return (0 < len(text) <= MAX_DEVICE_NAME and text[0] in _ALNUM
            and _DEVICE_CHARS.issuperset(text))


def _is_token(text):
    return 0 < len(text) <= MAX_TOKEN and _TOKEN_CHARS.issuperset(text)

MTU_MIN = 68
MTU_MAX = 65535


def _shown(value):
    """The value as it appears in an error: quoted, control characters escaped, short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def uuid(value, what):
    """A canonical UUID (any case accepted, returned lower-case as Neutron stores it)."""
    if not isinstance(value, str) or not _is_uuid(value.strip().lower()):
        raise InputError(
            "%s=%s is not a UUID: expected 8-4-4-4-12 hex digits, e.g. "
            "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9" % (what, _shown(value))
        )
    return value.strip().lower()


def device_name(value, what, allow_dummy=False):
    """A Linux network device name that is safe everywhere it is used."""
    if allow_dummy and value == VDSM_DUMMY_BRIDGE:
        return value
    if not isinstance(value, str) or not _is_device_name(value):
        raise InputError(
            "%s=%s is not a valid device name: expected 1-%d characters of "
            "letters, digits, '_', '.', '-'" % (what, _shown(value), MAX_DEVICE_NAME)
        )
    return value


def mac(value, what="mac address"):
    """A colon-separated unicast-or-not MAC address, returned lower-case."""
    if not isinstance(value, str) or not _is_mac(value.strip().lower()):
        raise InputError(
            "%s=%s is not a MAC address: expected six hex pairs like 00:1a:4a:16:01:51"
            % (what, _shown(value))
        )
    return value.strip().lower()


def mtu(value, what="mtu"):
    """An MTU in the range the kernel accepts for Ethernet-like devices."""
    try:
        number = int(str(value).strip(), 10)
    except ValueError:
        number = None
    if number is None or not MTU_MIN <= number <= MTU_MAX:
        raise InputError(
            "%s=%s is not a valid MTU: expected a whole number from %d to %d"
            % (what, _shown(value), MTU_MIN, MTU_MAX)
        )
    return number


def token_list(value, what):
    """A comma/space-separated list of ids or names (e.g. security groups)."""
    tokens = value.replace(",", " ").split() if isinstance(value, str) else None
    if tokens is None or not all(_is_token(t) for t in tokens):
        raise InputError(
            "%s=%s is malformed: expected ids separated by commas" % (what, _shown(value))
        )
    return tuple(tokens)


def _prefixed(prefix, some_id):
    name = prefix + some_id[:ID_PREFIX_LEN]
    assert len(name) <= MAX_DEVICE_NAME
    return name


def tap_name(port_id):
    """``tap`` + port id[:11]: the name both Quantum agents look for."""
    return _prefixed(TAP_PREFIX, port_id)


def linux_bridge_name(network_id):
    """``brq`` + network id[:11]: the Linux Bridge agent's bridge for a network."""
    return _prefixed(LINUX_BRIDGE_PREFIX, network_id)


def hybrid_names(port_id):
    """(qbr, qvb, qvo) names for hybrid plugging of a port."""
    return (
        _prefixed(HYBRID_BRIDGE_PREFIX, port_id),
        _prefixed(HYBRID_VETH_BRIDGE_SIDE_PREFIX, port_id),
        _prefixed(HYBRID_VETH_OVS_SIDE_PREFIX, port_id),
    )

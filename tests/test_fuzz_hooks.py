"""A bounded ``hypothesis`` fuzz of the hooks: random and mutated device XML, random
property bytes in the environment, random hook points and configs.

Whatever the input, a hook must keep VDSM's contract:

- never a traceback, and an exit code its hook point allows (0, or 2 at ``before_*`` and
  1 at ``after_*``);
- on an error exactly one ``ERROR`` line, and the file byte-for-byte as it was;
- an ``after_*`` point never changes the file;
- an output a ``before_*`` point accepted is a well-formed ``<interface>`` without DOCTYPE,
  a second run on it changes nothing, and libvirt's test driver accepts it whenever it
  accepted the input (``;vdsmdummy;`` is parse-only there, as in test_libvirt_accepts).

A hook process costs ~60-90 ms, so most examples run in-process through
:func:`vnic_drivers.hook_main.main` with a temp file and an environment of their own; a
smaller number run the real executables as VDSM does (:func:`tests.vdsm.run_hook`). Host
changes are dry runs: they print, never touch the machine. Reproducible and bounded for
CI: a fixed number of examples, derandomized, no example database, no deadline.
"""

import contextlib
import io
import itertools
import os
import tempfile

import pytest

from tests.conftest import NETWORK_ID, PORT_ID
from tests.vdsm import REPO, hook_argv, run_hook
from tests.vdsm import test_config as suite_config  # not collected as a test

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (pip install hypothesis)")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

IN_PROCESS_EXAMPLES = 1000
EXECUTABLE_EXAMPLES = 30
CAPS_EXAMPLES = 200

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=list(HealthCheck))

VM_ID = "d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de"
# Half the examples at the points that rewrite the file, half anywhere.
REWRITING_POINTS = ("before_device_create", "before_nic_hotplug", "before_update_device")
HOOK_POINTS = st.one_of(
    st.sampled_from(REWRITING_POINTS),
    st.sampled_from(REWRITING_POINTS + (
        "before_device_migrate_destination", "after_device_create", "after_nic_hotplug",
        "after_device_migrate_destination", "after_update_device", "after_update_device_fail",
        "after_device_destroy", "after_nic_hotunplug", "after_nic_hotplug_fail")),
)
CONFIGS = (None, "[linux_bridge]\nmode = ethernet\n", "[openvswitch]\nplug = hook\n",
           "[openvswitch]\nfirewall = none\nintegration_bridge = br-custom\n", "[hook]\nmtu = 9000\n",
           "[linux_bridge]\ndummy_bridge = br-dummy\n")


def _seeds():
    seeds = []
    for directory in ("examples", os.path.join("tests", "golden")):
        for name in sorted(os.listdir(os.path.join(REPO, directory))):
            if name.endswith(".xml"):
                with open(os.path.join(REPO, directory, name), "rb") as stream:
                    seeds.append(stream.read())
    return seeds


SEEDS = _seeds()
# Fragments that reach the parser's and the rewrite's corners when spliced in anywhere.
TOKENS = [
    b"<", b">", b"/>", b"</interface>", b"<interface type='bridge'>", b"<!DOCTYPE interface>",
    b"<!DOCTYPE i [<!ENTITY m '00:1a:4a:16:01:51'>]>", b"&m;", b"&amp;", b"&#0;", b"&#xD800;",
    b"&lt;", b"<!--", b"-->", b"<!-- c -->", b"<![CDATA[x]]>", b"<?pi x?>", b"<?xml version='1.0'?>",
    b"\x00", b"\xff\xfe", "\u00e9\u2028".encode(), b"\r\n", b"\t", b" ",
    b"<target dev='vnet0'/>", b"<source bridge='br0' network='default'/>", b"<source/>",
    b"<virtualport type='openvswitch'><parameters interfaceid='x'/></virtualport>",
    b"<virtualport/>", b"<mtu size='9000'/>", b"<mtu/>", b"<mac address='zz'/>", b"<mac/>",
    b" type='ethernet'", b" type='network'", b"xmlns='urn:x'", b" xmlns:q='urn:q'", b"<q:mac/>",
    b"<target dev='tap0a1b2c3d-4e'/>", b"<model type='virtio'/>",
]

CHILDREN = ("mac", "source", "target", "model", "mtu", "virtualport", "parameters", "alias",
            "address", "link", "boot", "driver", "filterref", "bandwidth", "rom", "x")
ATTRIBUTES = ("address", "bridge", "dev", "type", "size", "interfaceid", "network", "name",
              "slot", "mode", "state", "order")
XML_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFFFD,
                                 blacklist_categories=("Cs",)), max_size=16)


@st.composite
def mutated_xml(draw):
    """A seed device with a few random splices, cuts, copies and byte flips."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        operation = draw(st.sampled_from(("insert", "insert", "delete", "flip", "truncate", "copy")))
        at = draw(st.integers(0, len(data)))
        if operation == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(TOKENS), st.binary(min_size=1, max_size=8)))
        elif operation == "delete":
            del data[at:at + draw(st.integers(1, 24))]
        elif operation == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif operation == "truncate":
            del data[at:]
        elif operation == "copy":
            start = draw(st.integers(0, len(data)))
            data[at:at] = data[start:start + draw(st.integers(1, 40))]
    return bytes(data)


def _element(draw, depth):
    from lxml import etree

    element = etree.Element(draw(st.sampled_from(CHILDREN)))
    for name in draw(st.lists(st.sampled_from(ATTRIBUTES), max_size=3, unique=True)):
        element.set(name, draw(XML_TEXT))
    if depth < 2:
        for _ in range(draw(st.integers(0, 3))):
            element.append(_element(draw, depth + 1))
    if draw(st.booleans()):
        element.text = draw(XML_TEXT)
    return element


@st.composite
def random_interface(draw):
    """A well-formed ``<interface>`` of random children, attributes and text."""
    from lxml import etree

    root = etree.Element("interface")
    if draw(st.booleans()):
        root.set("type", draw(st.sampled_from(("bridge", "ethernet", "network", "direct", ""))))
    for _ in range(draw(st.integers(0, 6))):
        child = _element(draw, 1)
        child.tail = draw(st.sampled_from(("", "\n  ", " ")))
        root.append(child)
    prolog = draw(st.sampled_from((b"", b"<?xml version='1.0' encoding='utf-8'?>\n", b"<!-- x -->\n")))
    return prolog + etree.tostring(root, encoding="utf-8") + draw(st.sampled_from((b"", b"\n")))


DEVICE_XML = st.one_of(mutated_xml(), mutated_xml(), random_interface(), st.sampled_from(SEEDS),
                       st.binary(max_size=120))
RANDOM_VALUE = st.binary(max_size=40).filter(lambda value: b"\x00" not in value).map(os.fsdecode)


# Mostly what the engine sends (so the rewrite runs), with a few properties replaced by
# random bytes or dropped (so validation runs on every one of them).
GOOD_PROPERTIES = st.fixed_dictionaries(
    {"provider_type": st.sampled_from(("OPENSTACK_NETWORK", " OPENSTACK_NETWORK\n")),
     "vnic_id": st.sampled_from((PORT_ID, PORT_ID.upper(), " %s " % PORT_ID)),
     "plugin_type": st.sampled_from(("LINUX_BRIDGE", "OPEN_VSWITCH")),
     "vmId": st.just(VM_ID)},
    optional={"network_id": st.just(NETWORK_ID),
              "security_groups": st.sampled_from(("sg-web,sg-ssh", "sg1")),
              "mtu": st.sampled_from(("1450", "68", "65535", "9000 "))},
)
PROPERTY_NAMES = ("provider_type", "vnic_id", "plugin_type", "vmId", "network_id",
                  "security_groups", "mtu")


@st.composite
def properties(draw):
    values = draw(GOOD_PROPERTIES)
    for name in draw(st.lists(st.sampled_from(PROPERTY_NAMES), max_size=2, unique=True)):
        values[name] = draw(st.one_of(st.none(), RANDOM_VALUE, st.sampled_from(("", "EXTERNAL", "0", "-1"))))
    return values


PROPERTIES = properties()


def _present(properties):
    return {key: value for key, value in properties.items() if value is not None}


# --- the oracle ---------------------------------------------------------------------

def failure_code(hook_point):
    return 2 if hook_point.startswith("before_") else 1


def check_contract(hook_point, properties, before, code, stderr, after):
    """The contract every run keeps; returns the output to check with libvirt, or None."""
    assert "Traceback" not in stderr and "unexpected failure" not in stderr, stderr
    assert code in (0, failure_code(hook_point)), (code, stderr)
    own = [line for line in stderr.splitlines() if not line.startswith("dry-run: ")]
    if code != 0:
        assert after == before, "the file changed on an error"
        errors = [line for line in own if ": ERROR: " in line]
        assert len(errors) == 1 and len(own) == 1, stderr
        return None
    assert not any(": ERROR: " in line for line in own), stderr
    rewrites = hook_point in REWRITING_POINTS
    if not rewrites or (properties.get("provider_type") or "").strip() != "OPENSTACK_NETWORK":
        assert after == before, "%s changed the file" % hook_point
        return None
    from vnic_drivers import domxml

    domxml.parse_interface(after)  # well-formed, an <interface>, no DOCTYPE
    return after


class LibvirtCheck:
    """Defines a device, inside a minimal domain, in libvirt's test driver."""

    DOMAIN = ("<domain type='test'><name>fuzz-%d</name><memory unit='KiB'>65536</memory>"
              "<os><type arch='x86_64'>hvm</type></os><devices>%s</devices></domain>")

    def __init__(self):
        import libvirt

        self.libvirt = libvirt
        libvirt.registerErrorHandler(lambda *_: None, None)  # errors are answers here
        self.conn = libvirt.open("test:///default")
        self.names = itertools.count()

    def accepts(self, device, validate):
        """Whether libvirt defines *device*: against its schema when *validate*, else
        parse-only (what ``;vdsmdummy;``, which the schema's name pattern refuses, needs)."""
        from lxml import etree

        from vnic_drivers import domxml
        from vnic_drivers.errors import InputError

        try:
            element = etree.tostring(domxml.parse_interface(device), encoding="unicode")
        except InputError:
            return False
        flags = self.libvirt.VIR_DOMAIN_DEFINE_VALIDATE if validate else 0
        try:
            domain = self.conn.defineXMLFlags(self.DOMAIN % (next(self.names), element), flags)
        except self.libvirt.libvirtError:
            return False
        domain.undefine()
        return True

    def keeps_accepting(self, before, after):
        """libvirt accepts *after* whenever it accepted *before*, checked the same way
        (the schema unless *after* carries ``;vdsmdummy;``); whether it accepted *before*."""
        validate = b";vdsmdummy;" not in after
        if not self.accepts(before, validate):
            return False
        assert self.accepts(after, validate), ("libvirt refuses the rewrite", validate, before, after)
        return True

    def close(self):
        self.conn.close()


@pytest.fixture(scope="module")
def libvirt_check():
    pytest.importorskip("libvirt", reason="libvirt-python is not installed (pip install libvirt-python)")
    check = LibvirtCheck()
    yield check
    check.close()


# --- in-process runs ------------------------------------------------------------------

@contextlib.contextmanager
def hook_environment(workdir, properties):
    """os.environ as VDSM sets it for one hook (and nothing of the test run's)."""
    environ = dict(_present(properties), _hook_domxml=os.path.join(workdir, "domxml"),
                   _hook_json=os.path.join(workdir, "domxml"), PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    # The hook reads os.environ itself (hooking.hook_file): swap it whole, then restore.
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        yield environ
    finally:
        os.environ.clear()
        os.environ.update(saved)


def write_configs(workdir):
    """One file per entry of CONFIGS, with the suite's [hook] defaults (tests/vdsm.py)."""
    for index, config in enumerate(CONFIGS):
        with open(os.path.join(workdir, "config-%d" % index), "w", encoding="utf-8") as stream:
            stream.write(suite_config(config))


def run_in_process(workdir, hook_point, data, properties, config):
    """(exit code, stderr, file afterwards) of hook_main.main on *data*, a dry run."""
    from vnic_drivers import hook_main

    argv = hook_argv(os.path.join(workdir, "config-%d" % CONFIGS.index(config)), dry_run=True)
    with hook_environment(workdir, properties) as environ:
        path = environ["_hook_domxml"]
        with open(path, "wb") as stream:
            stream.write(data)
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = hook_main.main(hook_point, dict(environ), argv=argv)
        with open(path, "rb") as stream:
            return code, stderr.getvalue(), stream.read()


def in_memory_workdir():
    # On tmpfs when there is one: a thousand rewrites and their renames stay off the disk.
    memory = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None
    return tempfile.TemporaryDirectory(prefix="qvnic-fuzz-", dir=memory)


def test_fuzz_hooks_in_process(libvirt_check):
    tally = {"examples": 0, "errors": 0, "rewritten": 0, "libvirt accepted": 0}
    with in_memory_workdir() as workdir:
        write_configs(workdir)

        @settings(FUZZ, max_examples=IN_PROCESS_EXAMPLES)
        @given(hook_point=HOOK_POINTS, data=DEVICE_XML, properties=PROPERTIES,
               config=st.sampled_from(CONFIGS))
        def fuzz(hook_point, data, properties, config):
            code, stderr, after = run_in_process(workdir, hook_point, data, properties, config)
            tally["examples"] += 1
            tally["errors"] += code != 0
            output = check_contract(hook_point, properties, data, code, stderr, after)
            if output is None:
                return
            tally["rewritten"] += 1
            again = run_in_process(workdir, hook_point, output, properties, config)
            assert again[0] == 0 and again[2] == output, ("a second run changed it", again[1])
            tally["libvirt accepted"] += libvirt_check.keeps_accepting(data, output)

        fuzz()
    print("in-process fuzz:", tally)
    # Not vacuous: the fuzz reached both the error paths and real rewrites libvirt checked.
    assert tally["examples"] >= IN_PROCESS_EXAMPLES * 0.9, tally
    assert tally["errors"] >= 50 and tally["rewritten"] >= 50 and tally["libvirt accepted"] >= 20, tally


# --- the real executables -------------------------------------------------------------

def test_fuzz_hook_executables(libvirt_check):
    tally = {"examples": 0, "errors": 0, "rewritten": 0}

    @settings(FUZZ, max_examples=EXECUTABLE_EXAMPLES)
    @given(hook_point=HOOK_POINTS, data=DEVICE_XML, properties=PROPERTIES,
           config=st.sampled_from(CONFIGS))
    def fuzz(hook_point, data, properties, config):
        properties = _present(properties)
        vm_id = properties.pop("vmId", "")
        run = run_hook(hook_point, data, properties, vm_id=vm_id, config=config, dry_run=True,
                       device_xml_known=True, timeout=60)
        tally["examples"] += 1
        tally["errors"] += run.returncode != 0
        output = check_contract(hook_point, dict(properties, vmId=vm_id), data, run.returncode,
                                run.stderr, run.after)
        if output is not None:
            tally["rewritten"] += 1
            libvirt_check.keeps_accepting(data, output)

    fuzz()
    print("executable fuzz:", tally)
    assert tally["examples"] >= EXECUTABLE_EXAMPLES * 0.9, tally
    assert tally["errors"] >= 1 and tally["rewritten"] >= 1, tally


# --- after_get_caps: the capabilities JSON --------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@st.composite
def capabilities(draw):
    """Random JSON (mostly objects, as VDSM sends), some nested far too deep, some mangled."""
    import json

    kind = draw(st.sampled_from(("object", "object", "any", "deep", "mangled", "bytes")))
    if kind == "bytes":
        return draw(st.binary(max_size=80))
    if kind == "deep":
        depth = draw(st.integers(1, 3000))
        opener, closer = draw(st.sampled_from((("[", "]"), ('{"a":', "}"))))
        return (opener * depth + ("1" if opener != "[" else "") + closer * depth).encode()
    value = draw(JSON_VALUES if kind == "any" else st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=5))
    data = json.dumps(value).encode()
    if kind == "mangled" and data:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from((b"[", b"{", b'"', b"\\", b"\xff", b""))) + data[at + 1:]
    return data


def test_fuzz_capabilities_in_process():
    """Whatever VDSM's capabilities file holds: exit 0 and every capability kept with the
    binding host ids added, or exit 1, one line and the file unchanged."""
    import json

    tally = {"examples": 0, "errors": 0}
    with in_memory_workdir() as workdir:
        write_configs(workdir)

        @settings(FUZZ, max_examples=CAPS_EXAMPLES)
        @given(data=capabilities())
        def fuzz(data):
            code, stderr, after = run_in_process(workdir, "after_get_caps", data, {}, None)
            tally["examples"] += 1
            tally["errors"] += code != 0
            assert "Traceback" not in stderr and code in (0, 1), (code, stderr)
            own = [line for line in stderr.splitlines() if not line.startswith("dry-run: ")]
            if code != 0:
                assert after == data and len(own) == 1 and ": ERROR: " in own[0], stderr
                return
            assert not any(": ERROR: " in line for line in own), stderr
            caps, sent = json.loads(after), json.loads(data)
            ids = caps.pop("openstack_binding_host_ids")
            sent.pop("openstack_binding_host_ids", None)
            assert caps == sent  # everything else as VDSM sent it
            assert {"LINUX_BRIDGE", "OPEN_VSWITCH"} <= set(ids), ids

        fuzz()
    print("capabilities fuzz:", tally)
    assert tally["examples"] >= CAPS_EXAMPLES * 0.9 and 20 <= tally["errors"] <= tally["examples"] - 20, tally

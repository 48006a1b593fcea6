"""``quantum-vnic agent-patch`` and ``agent_patches/`` on the real Linux Bridge agents.

Neutron: the agent file comes from the real ``neutron`` wheels 10.0.5 and 25.2.3
(``pip download --no-deps``, cached in ``$XDG_CACHE_HOME/quantum-vnic-tests`` or the
checkout's ``.cache/``; the tests skip, saying why, when the download fails).

Grizzly: its agent was never on PyPI, so the Grizzly diff is tested on a minimal
faithful excerpt (``tests/agent_fixtures/``: the module constants the patch uses and
``add_tap_interface`` line for line as Grizzly ships it). The diff was also checked
once, by hand, against the full Grizzly-era file of the openstack/neutron history.

Each agent file is applied to, checked, re-applied (a no-op), reverted (byte-for-byte),
refused when altered, applied with plain ``patch -p1`` like an admin would, compiled,
and its patched ``add_tap_interface`` run against real bridges in a network namespace
(see ``tests/agent_exercise.py`` for what runs for real and what stands in).
"""

import glob
import os
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import NETWORK_ID, PORT_ID
from tests.lb_topology import DUMMY_BRIDGE, Topology
from tests.vdsm import REPO
from vnic_drivers import agent_patch

NEUTRON_RELEASES = ("10.0.5", "25.2.3")
GRIZZLY, NEUTRON = agent_patch.VARIANTS
GRIZZLY_EXCERPT = os.path.join(REPO, "tests", "agent_fixtures", "grizzly_linuxbridge_quantum_agent_excerpt.py")
TAP = "tap" + PORT_ID[:11]
BRQ = "brq" + NETWORK_ID[:11]

# Every agent-patch action runs the patch program, even check (a dry run).
pytestmark = pytest.mark.skipif(shutil.which("patch") is None,
                                reason="needs the patch program (apt-get install patch)")


def wheel_cache():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(REPO, ".cache")
    return os.path.join(base, "quantum-vnic-tests", "neutron")


@pytest.fixture(scope="session")
def neutron_agents():
    """release -> the agent file's bytes from the real wheel, or the reason it is missing."""
    cache = wheel_cache()
    os.makedirs(cache, exist_ok=True)
    agents = {}
    for release in NEUTRON_RELEASES:
        wheels = glob.glob(os.path.join(cache, "neutron-%s-*.whl" % release))
        if not wheels:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 "--disable-pip-version-check", "-q", "-d", cache, "neutron==%s" % release],
                capture_output=True, text=True, timeout=600, check=False,
            )
            wheels = glob.glob(os.path.join(cache, "neutron-%s-*.whl" % release))
            if done.returncode != 0 or not wheels:
                lines = (done.stderr.strip() or "no output").splitlines()
                agents[release] = "pip download neutron==%s failed: %s" % (release, lines[-1])
                continue
        with zipfile.ZipFile(wheels[0]) as wheel:
            agents[release] = wheel.read(NEUTRON.relative_path)
    return agents


class Agent:
    """An agent file installed below *site* as the package would have it."""

    def __init__(self, label, variant, site, original):
        self.label = label
        self.variant = variant
        self.site = site
        self.path = os.path.join(site, variant.relative_path)
        self.original = original
        os.makedirs(os.path.dirname(self.path))
        with open(self.path, "wb") as stream:
            stream.write(original)
        os.chmod(self.path, 0o640)

    def read(self):
        with open(self.path, "rb") as stream:
            return stream.read()

    @property
    def bridge_api(self):
        """How this release's bridge_lib moves ports: brctl until Neutron moved to pyroute2."""
        return "netlink" if self.label == "neutron-25.2.3" else "brctl"


@pytest.fixture(params=["grizzly"] + ["neutron-%s" % r for r in NEUTRON_RELEASES])
def agent(request, tmp_path, neutron_agents):
    if request.param == "grizzly":
        with open(GRIZZLY_EXCERPT, "rb") as stream:
            return Agent(request.param, GRIZZLY, str(tmp_path / "site"), stream.read())
    original = neutron_agents[request.param.split("-", 1)[1]]
    if isinstance(original, str):
        pytest.skip(original)
    return Agent(request.param, NEUTRON, str(tmp_path / "site"), original)


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "vnic_drivers.cli", "agent-patch"] + list(args),
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_check_tells_the_variant_and_that_it_is_not_patched(agent):
    done = cli("check", agent.path)
    assert done.returncode == 1, done
    assert "(%s); not patched" % agent.variant.name in done.stdout


def test_apply_patches_once_keeps_a_backup_and_compiles(agent):
    done = cli("apply", agent.path)
    assert done.returncode == 0, done
    patched = agent.read()
    assert b"current_bridge" in patched and patched != agent.original
    compile(patched, agent.path, "exec")  # still a valid module
    with open(agent.path + agent_patch.BACKUP_SUFFIX, "rb") as stream:
        assert stream.read() == agent.original
    assert stat.S_IMODE(os.stat(agent.path).st_mode) == 0o640

    again = cli("apply", agent.path)
    assert again.returncode == 0 and "already patched; nothing to do" in again.stdout, again
    assert agent.read() == patched
    check = cli("check", agent.path)
    assert check.returncode == 0 and check.stdout.rstrip().endswith("; patched"), check


def test_revert_restores_the_original_byte_for_byte(agent):
    assert cli("apply", agent.path).returncode == 0
    done = cli("revert", agent.path)
    assert done.returncode == 0 and "reverted" in done.stdout, done
    assert agent.read() == agent.original
    assert not os.path.exists(agent.path + agent_patch.BACKUP_SUFFIX)
    again = cli("revert", agent.path)
    assert again.returncode == 0 and "not patched; nothing to do" in again.stdout, again
    assert agent.read() == agent.original


def test_the_shipped_diff_applies_with_plain_patch(agent):
    """What an admin without quantum-vnic would run; same result as ``apply``."""
    diff = os.path.join(REPO, "agent_patches", agent.variant.diff)
    done = subprocess.run(["patch", "-p1", "--fuzz=0", "-d", agent.site, "-i", diff],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done
    by_hand = agent.read()
    with open(agent.path, "wb") as stream:
        stream.write(agent.original)
    assert cli("apply", agent.path).returncode == 0
    assert agent.read() == by_hand


def test_an_altered_agent_is_refused_and_left_untouched(agent):
    altered = agent.original.replace(b"# Check if device needs to be added to bridge",
                                     b"# Check whether the device must join the bridge")
    assert altered != agent.original
    with open(agent.path, "wb") as stream:
        stream.write(altered)
    for action in ("check", "apply", "revert"):
        done = cli(action, agent.path)
        assert done.returncode == 2, done
        assert "not an agent file this patch knows" in done.stderr and "nothing changed" in done.stderr
        assert "Traceback" not in done.stderr
        assert agent.read() == altered
        assert not os.path.exists(agent.path + agent_patch.BACKUP_SUFFIX)


def test_a_file_that_is_no_agent_at_all_is_refused(tmp_path):
    path = tmp_path / "linuxbridge_neutron_agent.py"
    path.write_text("print('hello')\n")
    done = cli("apply", str(path))
    assert done.returncode == 2 and "not an agent file this patch knows" in done.stderr, done
    assert path.read_text() == "print('hello')\n"
    missing = cli("check", str(tmp_path / "nowhere.py"))
    assert missing.returncode == 2 and "is not a file" in missing.stderr, missing


def other_installed_agents():
    return [path for directory in agent_patch.search_dirs() for variant in agent_patch.VARIANTS
            for path in [os.path.join(directory, variant.relative_path)] if os.path.isfile(path)]


def test_without_path_the_installed_agent_is_found(tmp_path):
    if other_installed_agents():
        pytest.skip("a Linux Bridge agent is installed on this machine: %s" % other_installed_agents())
    with open(GRIZZLY_EXCERPT, "rb") as stream:
        installed = Agent("grizzly", GRIZZLY, str(tmp_path / "site"), stream.read())
    env = dict(os.environ, PYTHONPATH=installed.site)
    done = cli("check", env=env)
    assert done.returncode == 1 and installed.path in done.stdout, done

    Agent("grizzly", GRIZZLY, str(tmp_path / "site2"), installed.original)
    env["PYTHONPATH"] = os.pathsep.join([installed.site, str(tmp_path / "site2")])
    several = cli("apply", env=env)
    assert several.returncode == 2 and "several Linux Bridge agents" in several.stderr, several
    assert installed.read() == installed.original

    nothing = cli("check", env=dict(os.environ, PYTHONPATH=str(tmp_path / "empty")))
    assert nothing.returncode == 2 and "no Linux Bridge agent found" in nothing.stderr, nothing


def exercise(netns, agent, start_on):
    """Run the agent file's add_tap_interface in *netns* on a tap that starts on
    *start_on*; returns (what it returned, the tap's master afterwards)."""
    import json

    topology = Topology(netns)
    try:
        for bridge in (DUMMY_BRIDGE, BRQ, "brq99999999-99"):
            if topology.link(bridge) is None:
                topology.add_bridge(bridge)
        topology.add_tap(TAP, bridge=start_on)
        done = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, os.path.join(REPO, "tests", "agent_exercise.py"),
             "grizzly" if agent.variant is GRIZZLY else "neutron-" + agent.bridge_api,
             agent.path, NETWORK_ID, TAP],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 0, done
        result = json.loads(done.stdout)
        assert topology.link(TAP)["master"] == result["master"]
        return result["returned"], result["master"]
    finally:
        topology.close()


def test_unpatched_agent_leaves_the_tap_on_the_dummy_bridge(agent, netns):
    """The bug the patch fixes, shown on the real agent code and real bridges."""
    returned, master = exercise(netns, agent, start_on=DUMMY_BRIDGE)
    assert master == DUMMY_BRIDGE
    if agent.variant is GRIZZLY:  # brctl addif refuses a tap that has a master
        assert "Device or resource busy" in returned


@pytest.mark.parametrize("start_on", [DUMMY_BRIDGE, "brq99999999-99", BRQ, None])
def test_patched_agent_moves_the_tap_to_its_own_bridge(agent, netns, start_on):
    assert cli("apply", agent.path).returncode == 0
    returned, master = exercise(netns, agent, start_on=start_on)
    assert master == BRQ
    assert not (isinstance(returned, str) and returned.startswith("raised")), returned

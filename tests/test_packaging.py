"""The RPM, built for real with rpmbuild from this tree, the files it ships, and its life
on a host: installed into a scratch root, run, upgraded, erased.

The expected file list is derived from the tree (every module of ``vnic_drivers`` with its
byte-code, every ``hooks/*``, every ``agent_patches/*.diff``, every ``examples/*.xml``),
so adding a hook or a module needs no test change, while a file that goes missing, an
extra file, a wrong mode or a lost ``%config`` flag fails here. The Requires on Python
packages are derived from what the code imports.

The package is built for the Python running the tests (EL9's 3.9 in ``./dev test-el9``,
where this is the default build; this machine's otherwise), so that the installed hooks
can run with it; the default build's EL9 target is checked on its own.
"""

import ast
import configparser
import importlib.util
import io
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import sysconfig
import tarfile

import pytest

from tests.vdsm import REPO

PACKAGING = os.path.join(REPO, "packaging")
HOOKS_DIR = "/usr/libexec/vdsm/hooks"
PRIVILEGED = "/usr/libexec/quantum-vnic/quantum-vnic-privileged"
HELPER = "/usr/libexec/quantum-vnic/quantum-vnic-helper"
UNITS = ("/usr/lib/systemd/system/quantum-vnic-helper.socket",
         "/usr/lib/systemd/system/quantum-vnic-helper.service")
SUDOERS = "/etc/sudoers.d/50_vdsm_hook_quantum_vnic"
CONFIG = "/etc/vdsm/quantum_vnic.conf"
EXAMPLES = "/usr/share/quantum-vnic/examples"
# What the package needs besides the Python modules it imports.
REQUIRED = {"vdsm", "sudo", "patch"}
# The EL9 package providing each third-party module the code imports.
PACKAGE_OF_IMPORT = {
    "lxml": "python3-lxml",
    "pyroute2": "python3-pyroute2",
    "ovs": "python3-openvswitch",
    "requests": "python3-requests",
    "libvirt": "python3-libvirt",
}
# The Python running the tests is the target: its byte-code, its site-packages.
PYTHON3_VERSION = "%d.%d" % sys.version_info[:2]
SITELIB = "/usr/lib/python%s/site-packages" % PYTHON3_VERSION
CACHE_TAG = sys.implementation.cache_tag  # cpython-39


def _skip_reason():
    for tool in ("rpmbuild", "rpm", "rpm2archive"):
        if shutil.which(tool) is None:
            return "needs %s (apt-get install rpm)" % tool
    if shutil.which("git") is None:
        return "needs git to list the source tree"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def _rpm_query(rpm_path, *args):
    return subprocess.run(["rpm", "-qp", *args, rpm_path], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(binary rpm path, {path: tarinfo}, {path: bytes}) of the RPM built from this tree."""
    binary = _build(tmp_path_factory.mktemp("rpm"), PYTHON3=sys.executable)
    with open(binary, "rb") as package:
        archive = subprocess.run(["rpm2archive", "-"], stdin=package, capture_output=True,
                                 check=True).stdout
    members, contents = {}, {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            path = member.name[1:] if member.name.startswith("./") else member.name
            members[path] = member
            if member.isfile():
                contents[path] = tar.extractfile(member).read()
    return binary, members, contents


def _build(outdir, **env):
    """The binary RPM packaging/build-rpm makes into *outdir* with *env* added."""
    env = dict({key: value for key, value in os.environ.items()
                if key not in ("PYTHON3", "PYTHON3_VERSION", "RPM_RELEASE", "DIST")}, **env)
    done = subprocess.run([os.path.join(PACKAGING, "build-rpm"), str(outdir)], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    outputs = done.stdout.split()
    binaries = [path for path in outputs if path.endswith(".noarch.rpm")]
    assert len(binaries) == 1, outputs
    assert any(path.endswith(".src.rpm") for path in outputs), outputs
    assert any(path.endswith(".tar.gz") for path in outputs), outputs
    return binaries[0]


def _tree_files(pattern_dir, suffix=""):
    """Files git would package below *pattern_dir* (tracked or new, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", pattern_dir],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()
    return sorted(path for path in listed
                  if path.endswith(suffix) and os.path.exists(os.path.join(REPO, path)))


def expected_files():
    files = {SUDOERS, CONFIG, "/usr/bin/quantum-vnic", PRIVILEGED, HELPER, *UNITS,
             "/usr/share/doc/quantum-vnic-%s/README.md" % _setup_version()}
    for path in _tree_files("vnic_drivers", ".py"):
        directory, module = os.path.split(path)
        files.add("%s/%s" % (SITELIB, path))
        files.update("%s/%s/__pycache__/%s.%s%s.pyc" % (SITELIB, directory, module[:-3], CACHE_TAG, opt)
                     for opt in ("", ".opt-1"))
    files.update("%s/%s" % (EXAMPLES, os.path.basename(path)) for path in _tree_files("examples", ".xml"))
    files.update("%s/%s/50_quantum_vnic" % (HOOKS_DIR, os.path.basename(path))
                 for path in _tree_files("hooks"))
    files.update("/usr/share/quantum-vnic/agent_patches/%s" % os.path.basename(path)
                 for path in _tree_files("agent_patches", ".diff"))
    return files


def _setup_version():
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as stream:
        return re.search(r'version="([^"]+)"', stream.read()).group(1)


def test_noarch_and_version_match_setup_py(built):
    rpm_path, _, _ = built
    arch, version = _rpm_query(rpm_path, "--qf", "%{ARCH} %{VERSION}").split()
    assert arch == "noarch"
    assert version == _setup_version(), "packaging/quantum-vnic.spec Version must match setup.py"


def test_file_list_is_exactly_the_tree(built):
    rpm_path, _, _ = built
    dump = _dump(rpm_path)
    assert set(_rpm_query(rpm_path, "-l").split()) == set(dump)
    files = {path for path, row in dump.items() if stat.S_ISREG(row[0])}
    directories = {path for path, row in dump.items() if stat.S_ISDIR(row[0])}
    assert files == expected_files()
    # The directories the package owns; vdsm's (the hook directories, /etc/vdsm) stay vdsm's.
    packages = {os.path.dirname(path) for path in _tree_files("vnic_drivers", ".py")}
    assert directories == {"%s/%s" % (SITELIB, package) for package in packages} | {
        "%s/%s/__pycache__" % (SITELIB, package) for package in packages} | {
        "/usr/libexec/quantum-vnic", "/usr/share/quantum-vnic", EXAMPLES,
        "/usr/share/quantum-vnic/agent_patches", "/usr/share/doc/quantum-vnic-%s" % _setup_version(),
    }


def _dump(rpm_path):
    """{path: (mode, owner, group, is_config)} from ``rpm -qp --dump``."""
    rows = {}
    for line in _rpm_query(rpm_path, "--dump").splitlines():
        path, _size, _mtime, _digest, mode, owner, group, config = line.split()[:8]
        rows[path] = (int(mode, 8), owner, group, config == "1")
    return rows


def test_modes_owners_and_config_flags(built):
    rpm_path, _, _ = built
    dump = _dump(rpm_path)
    configs = {path for path, row in dump.items() if row[3]}
    assert configs == {SUDOERS, CONFIG}
    assert set(_rpm_query(rpm_path, "--configfiles").split()) == {SUDOERS, CONFIG}
    # noreplace: an admin's edits survive an upgrade (rpm shows it as the 'n' flag).
    flags = _rpm_query(rpm_path, "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]")
    for path in (SUDOERS, CONFIG):
        assert re.search(r"^%s c?n" % re.escape(path), flags, re.M), flags
    executables = {PRIVILEGED, HELPER, "/usr/bin/quantum-vnic"} | {
        path for path in dump if path.startswith(HOOKS_DIR + "/")}
    for path, (mode, owner, group, _) in dump.items():
        assert (owner, group) == ("root", "root"), path
        assert not mode & (stat.S_IWGRP | stat.S_IWOTH), "%s is writable by others" % path
        if path == SUDOERS:
            assert stat.S_IMODE(mode) == 0o440
        elif path in executables:
            assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755, path
        elif stat.S_ISREG(mode):
            assert stat.S_IMODE(mode) == 0o644, path


def _imported_top_level_modules():
    """{module: first file importing it} over the package and the installed scripts."""
    sources = _tree_files("vnic_drivers", ".py") + _tree_files("hooks") + [
        "packaging/quantum-vnic", "packaging/quantum-vnic-privileged"]
    found = {}
    for path in sources:
        with open(os.path.join(REPO, path), "rb") as stream:
            tree = ast.parse(stream.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    found.pop("vnic_drivers", None)
    return found


def _is_standard_library(module):
    if module in sys.builtin_module_names:
        return True
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False  # not installed here: certainly not the standard library
    if spec.origin in ("built-in", "frozen"):
        return True
    paths = sysconfig.get_paths()
    return any(os.path.realpath(spec.origin).startswith(os.path.realpath(paths[key]) + os.sep)
               for key in ("stdlib", "platstdlib")) and "-packages" not in spec.origin


def test_requires_exactly_what_the_code_imports(built):
    rpm_path, _, _ = built
    requires = {line.split()[0]: line for line in _rpm_query(rpm_path, "--requires").splitlines()}
    python_packages = {}
    for module, path in _imported_top_level_modules().items():
        if _is_standard_library(module):
            continue
        assert module in PACKAGE_OF_IMPORT, (
            "%s imports %s: add its EL9 package to PACKAGE_OF_IMPORT here and a Requires to "
            "packaging/quantum-vnic.spec" % (path, module))
        python_packages[PACKAGE_OF_IMPORT[module]] = path
    for package, path in python_packages.items():
        assert package in requires, "packaging/quantum-vnic.spec: add Requires: %s (%s imports it)" % (
            package, path)
    unused = {name for name in requires if name.startswith("python3-")} - set(python_packages)
    assert not unused, "packaging/quantum-vnic.spec: nothing imports the module of Requires: %s" % (
        ", ".join(sorted(unused)))
    assert REQUIRED <= set(requires)
    # The site-packages path and the byte-code tie the package to one Python.
    assert requires["python(abi)"] == "python(abi) = %s" % PYTHON3_VERSION


def test_conflicts_with_vdsms_own_openstacknet_hook(built):
    rpm_path, _, _ = built
    assert _rpm_query(rpm_path, "--conflicts").split() == ["vdsm-hook-openstacknet"]


def test_byte_code_is_the_target_pythons_and_matches_the_shipped_sources(built):
    """Every module's .pyc is valid for the target Python as installed: its magic, and the
    mtime and size of the source as rpm restores them (else Python would rewrite it)."""
    rpm_path, members, contents = built
    dump = {path: line.split() for path, line in
            ((line.split()[0], line) for line in _rpm_query(rpm_path, "--dump").splitlines())}
    compiled = [path for path in contents if path.endswith(".pyc")]
    assert compiled
    for pyc in compiled:
        data = contents[pyc]
        assert data[:4] == importlib.util.MAGIC_NUMBER, pyc
        flags, mtime, size = struct.unpack("<III", data[4:16])
        assert flags == 0, "%s: not a timestamp-based .pyc" % pyc
        directory, name = pyc.split("/__pycache__/")
        source = "%s/%s.py" % (directory, name.split(".")[0])
        assert (mtime, size) == (int(dump[source][2]), int(dump[source][1])), pyc
        # Compiled for where it is installed (tracebacks name the installed file).
        code = __import__("marshal").loads(data[16:])
        assert code.co_filename == source, pyc


def test_default_build_targets_el9(tmp_path):
    """No options: Python 3.9's paths, python(abi), byte-code and the .el9 tag."""
    if PYTHON3_VERSION == "3.9":
        python = sys.executable
    else:
        python = _python39()
        if python is None:
            pytest.skip("needs a Python 3.9 interpreter to build for EL9 (packaging/build-rpm "
                        "refuses without one; see test_build_refuses_without_the_target_python)")
    rpm_path = _build(tmp_path, PATH=os.path.dirname(python) + os.pathsep + os.environ["PATH"])
    assert os.path.basename(rpm_path) == "quantum-vnic-%s-1.el9.noarch.rpm" % _setup_version()
    assert "python(abi) = 3.9" in _rpm_query(rpm_path, "--requires").splitlines()
    files = _rpm_query(rpm_path, "-l").split()
    assert "/usr/lib/python3.9/site-packages/vnic_drivers/__pycache__/hook_main.cpython-39.pyc" in files
    assert not [path for path in files if "python3." in path and "python3.9" not in path]


def _python39():
    for candidate in ["python3.9", "/usr/bin/python3.9"] + sorted(
            __import__("glob").glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9"))):
        done = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 9))"],
                              capture_output=True, text=True, check=False) if shutil.which(candidate) else None
        if done is not None and done.stdout.strip() == "True":
            return shutil.which(candidate)
    return None


def test_build_refuses_without_the_target_python(tmp_path):
    """No interpreter of the target version: no package, one line saying what to do
    (never byte-code from another Python, which would be ignored and rewritten by root)."""
    env = dict(os.environ, PYTHON3_VERSION="3.99")
    env.pop("PYTHON3", None)
    done = subprocess.run([os.path.join(PACKAGING, "build-rpm"), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "build-rpm: no Python 3.99 interpreter to byte-compile the package for its target"), lines
    assert "PYTHON3=/path/to/python3.99" in lines[0]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    # A PYTHON3 of another version than the one asked for is refused the same way.
    done = subprocess.run([os.path.join(PACKAGING, "build-rpm"), str(tmp_path / "out")],
                          env=dict(env, PYTHON3=sys.executable), capture_output=True, text=True,
                          check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "build-rpm: PYTHON3=%s is Python %s, not the target 3.99; unset one of PYTHON3, "
        "PYTHON3_VERSION" % (sys.executable, PYTHON3_VERSION))


def test_scripts_run_isolated_with_system_python(built):
    _, _, contents = built
    scripts = [path for path in contents if path.startswith(HOOKS_DIR + "/")]
    scripts += [PRIVILEGED, HELPER, "/usr/bin/quantum-vnic"]
    for path in scripts:
        first = contents[path].split(b"\n", 1)[0]
        assert first == b"#!/usr/bin/python3 -I", (path, first)
    for path in scripts:
        if path.startswith(HOOKS_DIR):
            hook = path.split("/")[-2]
            assert b'main("%s")' % hook.encode() in contents[path], path


def test_sudoers_drop_in_is_valid_and_allows_only_the_entry_point(built, tmp_path):
    if shutil.which("visudo") is None:
        pytest.skip("needs visudo (apt-get install sudo)")
    _, _, contents = built
    path = tmp_path / "50_vdsm_hook_quantum_vnic"
    path.write_bytes(contents[SUDOERS])
    path.chmod(0o440)
    done = subprocess.run(["visudo", "-cf", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rules = [line for line in contents[SUDOERS].decode().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules == [
        "Cmnd_Alias QUANTUM_VNIC_PRIVILEGED = %s" % PRIVILEGED,
        "Defaults!QUANTUM_VNIC_PRIVILEGED env_reset, !env_keep, !requiretty",
        "vdsm ALL = (root) NOPASSWD: QUANTUM_VNIC_PRIVILEGED",
    ]
    from vnic_drivers.host import DEFAULT_PRIVILEGED_COMMAND

    assert DEFAULT_PRIVILEGED_COMMAND == PRIVILEGED


def test_packaged_python_compiles(built, tmp_path):
    _, _, contents = built
    import py_compile

    for path, data in contents.items():
        if path.endswith(".pyc"):
            continue
        if path.endswith(".py") or path.startswith(HOOKS_DIR) or path in (PRIVILEGED, HELPER, "/usr/bin/quantum-vnic"):
            source = tmp_path / "module.py"
            source.write_bytes(data)
            py_compile.compile(str(source), cfile=str(tmp_path / "module.pyc"), doraise=True)


def test_default_config_documents_every_option_with_its_default():
    """The shipped file, uncommented, is exactly the built-in defaults: no drift."""
    from vnic_drivers import config

    with open(os.path.join(PACKAGING, "quantum_vnic.conf"), encoding="utf-8") as stream:
        text = stream.read()
    assert config.load(os.path.join(PACKAGING, "quantum_vnic.conf")).as_dict() == config.defaults().as_dict()
    uncommented = re.sub(r"^#(\w+ =)", r"\1", text, flags=re.M)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(uncommented)
    for section, options in config.SCHEMA.items():
        for option, (_parse, default) in options.items():
            assert parser.has_option(section, option), (
                "packaging/quantum_vnic.conf: document [%s] %s (default %r)" % (section, option, default))
            assert parser.get(section, option) == default, (section, option)


def test_build_script_fails_clearly_without_rpmbuild(tmp_path):
    # PATH without rpmbuild: one line saying what to install, non-zero exit.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "dirname", "mkdir", "sed", "env"):
        os.symlink(shutil.which(tool), str(bindir / tool))
    done = subprocess.run([os.path.join(PACKAGING, "build-rpm"), str(tmp_path / "out")],
                          env={"PATH": str(bindir)}, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "build-rpm: rpmbuild not found; install rpm (Debian) or rpm-build (Fedora/EL)"]



def test_helper_units_and_scriptlets(built):
    """Socket activation as the README says: 0660 socket for vdsm's group, the unit's
    socket path is the config's default, the usual systemd scriptlets."""
    rpm_path, _, contents = built
    from vnic_drivers import config

    socket_unit = contents[UNITS[0]].decode()
    service_unit = contents[UNITS[1]].decode()
    default_socket = config.defaults().get("helper", "socket")
    assert "ListenStream=%s\n" % default_socket in socket_unit
    assert "SocketMode=0660\n" in socket_unit and "SocketGroup=kvm\n" in socket_unit
    assert "ExecStart=%s\n" % HELPER in service_unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in service_unit
    # ProtectSystem=strict: what the helper writes by default must be writable for it:
    # its socket's directory, OVS's, and the state dir whose MAC records run_hook removes.
    assert "ProtectSystem=strict\n" in service_unit
    writable = [path.lstrip("-") for line in service_unit.splitlines()
                if line.startswith("ReadWritePaths=") for path in line.split("=", 1)[1].split()]
    defaults = config.defaults()
    for path in (os.path.dirname(default_socket), defaults.get("hook", "state_dir"),
                 defaults.get("openvswitch", "ovsdb")[len("unix:"):].rsplit("/", 1)[0]):
        assert any(path == allowed or path.startswith(allowed + "/") for allowed in writable), (path, writable)
    scripts = _rpm_query(rpm_path, "--scripts")
    # Whatever the macros expand to (EL's systemd-update-helper, or the spec's fallbacks
    # on Debian), each phase names the helper's units.
    bodies = dict(re.findall(r"^(\w+) scriptlet.*\n((?:(?!\w+ scriptlet).*\n?)*)", scripts, re.M))
    for phase in ("postinstall", "preuninstall", "postuninstall"):
        assert "quantum-vnic-helper" in bodies.get(phase, ""), scripts


# --- the package on a host: a scratch root (rpm --root), never this machine's rpm database


def _needs_root():
    if os.geteuid() != 0:
        pytest.skip("needs root to install files owned by root into a scratch root (rpm --root)")


class ScratchRoot:
    """An empty directory with its own rpm database, as / of an EL9 host would be."""

    def __init__(self, path):
        self.path = str(path)
        os.makedirs(self.path)
        self.rpm("--initdb")

    def rpm(self, *args):
        # --nodeps: vdsm, python3-lxml... are not in this database; --dbpath: Debian's rpm
        # keeps its database in ~/.rpmdb, EL's in /var/lib/rpm (relative to --root).
        done = subprocess.run(["rpm", "--root", self.path, "--dbpath", "/var/lib/rpm"] + list(args),
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def install(self, rpm_path, upgrade=False):
        # --noscripts: the scratch root is no booted EL9 (no /bin/sh, no systemctl) for the
        # helper units' systemd scriptlets; test_helper_units_and_scriptlets checks those.
        self.rpm("--nodeps", "--noscripts", "-U" if upgrade else "-i", rpm_path)

    def erase(self):
        self.rpm("--nodeps", "--noscripts", "-e", "quantum-vnic")

    def host_path(self, path):
        return self.path + path

    def entries(self):
        """Every path below the root (as seen from inside it), its rpm database excepted."""
        found = set()
        for directory, dirnames, filenames in os.walk(self.path):
            inside = directory[len(self.path):] or "/"
            if inside.startswith("/var/lib/rpm"):
                continue
            for name in dirnames + filenames:
                found.add(os.path.join(inside, name))
        return found

    def verify(self):
        """``rpm -V``: the installed files as packaged (empty when nothing changed)."""
        done = subprocess.run(["rpm", "--root", self.path, "--dbpath", "/var/lib/rpm", "-V", "--nodeps",
                               "quantum-vnic"], capture_output=True, text=True, check=False)
        return done.stdout.strip()


def _owned_by_package(rpm_path):
    return set(_rpm_query(rpm_path, "-l").split())


def _installed_cases():
    """The golden cases of tests/test_hook_rewrite.py whose input is a shipped example."""
    from tests.test_hook_rewrite import CASES, GOLDEN

    for case, (hook_point, source, properties, config) in sorted(CASES.items()):
        if isinstance(source, str):
            # --dry-run, as the golden tests run them: no host change, no MAC record.
            yield case, hook_point, source, properties, config, ["--dry-run"], os.path.join(GOLDEN, case + ".xml")


def _run_installed_hook(root, workdir, hook_point, example, properties, config, extra_args):
    """The installed hook executable, run with the target Python in isolated mode, the
    scratch root's site-packages its only addition (never this tree)."""
    xml = os.path.join(workdir, "domxml")
    shutil.copyfile(root.host_path("%s/%s" % (EXAMPLES, example)), xml)
    env = {"PATH": os.environ["PATH"], "_hook_domxml": xml, "vmId": "d1b3a52e-6f6b-4c1d-9a3e-3c1f00d0c0de"}
    # The packaged config (every option at its default), or the case's own, as the hook's
    # argument (hooks take no control from the environment).
    config_path = root.host_path(CONFIG)
    if config is not None:
        config_path = os.path.join(workdir, "case.conf")
        with open(config_path, "w", encoding="utf-8") as stream:
            stream.write(config)
    env.update(properties)
    hook = root.host_path("%s/%s/50_quantum_vnic" % (HOOKS_DIR, hook_point))
    argv = [hook, "--config", config_path] + list(extra_args)
    launcher = ("import runpy, sys; sys.path.insert(0, %r); sys.argv = %r; "
                "runpy.run_path(%r, run_name='__main__')" % (root.host_path(SITELIB), argv, hook))
    done = subprocess.run([sys.executable, "-I", "-c", launcher], env=env, cwd=workdir,
                          capture_output=True, text=True, check=False)
    with open(xml, "rb") as stream:
        return done, stream.read()


def test_installs_runs_and_erases_without_a_trace(built, tmp_path):
    """Installed into a scratch root, the hooks run from it (with the target Python, on the
    shipped examples) and load the shipped byte-code, rewriting none; rpm -e then
    leaves nothing of the package, no __pycache__ included."""
    _needs_root()
    rpm_path, _, _ = built
    root = ScratchRoot(tmp_path / "root")
    before = root.entries()
    root.install(rpm_path)
    owned = _owned_by_package(rpm_path)
    assert owned <= root.entries()
    workdir = tmp_path / "work"
    workdir.mkdir()
    cases = list(_installed_cases())
    assert {case[2] for case in cases} == {os.path.basename(path) for path in _tree_files("examples", ".xml")}
    for case, hook_point, example, properties, config, extra_args, golden in cases:
        done, after = _run_installed_hook(root, str(workdir), hook_point, example, properties, config, extra_args)
        assert done.returncode == 0, (case, done.stderr)
        with open(golden, "rb") as stream:
            assert after.decode() == stream.read().decode(), case
    # The byte-code was valid: nothing rewritten, nothing new (root could have written).
    assert root.verify() == ""
    new = root.entries() - before
    assert owned <= new
    assert all(os.path.isdir(root.host_path(path)) for path in new - owned), new - owned  # parents
    root.erase()
    left = root.entries() - before
    assert not [path for path in left if "__pycache__" in path or "quantum" in path or "vnic" in path], left
    # What remains are the parents rpm made for our files: the system's and vdsm's
    # directories (/usr/lib/python3.X/site-packages, /usr/libexec/vdsm/hooks/<hook>).
    assert not left & owned
    assert all(os.path.isdir(root.host_path(path)) for path in left), left


def test_upgrade_keeps_the_admins_config(built, tmp_path):
    _needs_root()
    rpm_path, _, _ = built
    second = _build(tmp_path / "second", PYTHON3=sys.executable, RPM_RELEASE="2")
    assert re.search(r"-%s-2(\.\w+)?\.noarch\.rpm$" % re.escape(_setup_version()), second), second
    root = ScratchRoot(tmp_path / "root")
    root.install(rpm_path)
    config = root.host_path(CONFIG)
    with open(config, "a", encoding="utf-8") as stream:
        stream.write("\n# edited by the admin\n[hook]\nlog_level = DEBUG\n")
    with open(config, "rb") as stream:
        edited = stream.read()
    root.install(second, upgrade=True)
    assert root.rpm("-q", "--qf", "%{RELEASE}\n", "quantum-vnic").split()[0].startswith("2")
    with open(config, "rb") as stream:
        assert stream.read() == edited
    assert not os.path.exists(config + ".rpmnew") and not os.path.exists(config + ".rpmsave")
    # Everything else is the new package's, exactly.
    assert [line for line in root.verify().splitlines() if not line.endswith(CONFIG)] == []
    root.erase()
    # rpm keeps an edited config on erase, as .rpmsave; nothing else of ours remains.
    left = {path for path in root.entries() if "quantum" in path or "vnic" in path or "__pycache__" in path}
    assert left == {CONFIG + ".rpmsave"}

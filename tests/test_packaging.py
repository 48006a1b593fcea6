"""The RPM, built for real with rpmbuild from this tree, and the files it ships.

The expected file list is derived from the tree (every module of ``vnic_drivers``, every
``hooks/*``, every ``agent_patches/*.diff``), so adding a hook or a module needs no test
change, while a file that goes missing, an extra file, a wrong mode or a lost
``%config`` flag fails here.
"""

import configparser
import io
import os
import re
import shutil
import stat
import subprocess
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
REQUIRED = ("vdsm", "sudo", "patch", "python3-lxml", "python3-pyroute2", "python3-openvswitch", "python3-requests")
# Build for a fixed Python so the expected paths do not depend on this host's.
PYTHON3_VERSION = "3.9"
SITELIB = "/usr/lib/python%s/site-packages" % PYTHON3_VERSION


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
    outdir = tmp_path_factory.mktemp("rpm")
    env = dict(os.environ, PYTHON3_VERSION=PYTHON3_VERSION)
    done = subprocess.run([os.path.join(PACKAGING, "build-rpm"), str(outdir)], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    outputs = done.stdout.split()
    binaries = [path for path in outputs if path.endswith(".noarch.rpm")]
    assert len(binaries) == 1, outputs
    assert any(path.endswith(".src.rpm") for path in outputs), outputs
    assert any(path.endswith(".tar.gz") for path in outputs), outputs
    with open(binaries[0], "rb") as package:
        archive = subprocess.run(["rpm2archive", "-"], stdin=package, capture_output=True,
                                 check=True).stdout
    members, contents = {}, {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            path = member.name[1:] if member.name.startswith("./") else member.name
            members[path] = member
            if member.isfile():
                contents[path] = tar.extractfile(member).read()
    return binaries[0], members, contents


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
    files.update("%s/%s" % (SITELIB, path) for path in _tree_files("vnic_drivers", ".py"))
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
        "/usr/libexec/quantum-vnic", "/usr/share/quantum-vnic",
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


def test_requires(built):
    rpm_path, _, _ = built
    requires = {line.split()[0] for line in _rpm_query(rpm_path, "--requires").splitlines()}
    assert set(REQUIRED) <= requires
    assert "python(abi)" in requires  # the site-packages path ties it to one Python


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
    scripts = _rpm_query(rpm_path, "--scripts")
    # Whatever the macros expand to (EL's systemd-update-helper, or the spec's fallbacks
    # on Debian), each phase names the helper's units.
    bodies = dict(re.findall(r"^(\w+) scriptlet.*\n((?:(?!\w+ scriptlet).*\n?)*)", scripts, re.M))
    for phase in ("postinstall", "preuninstall", "postuninstall"):
        assert "quantum-vnic-helper" in bodies.get(phase, ""), scripts

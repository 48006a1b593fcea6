"""The interpreter the bench measures with: this Python as an oVirt host runs it.

The machine's python3 is not a host's: its ``site`` processes ``.pth`` files a host does
not have (this checkout's editable install, a sandbox's CA injector: ~30 ms on every
start), a constant that sits in both sides of every ratio. So the bench uses a virtual
environment of the same interpreter (``python -m venv``, no system site-packages) holding
only the libraries the package needs at run time (``setup.py``'s ``install_requires``
and ``host`` extra, at the versions this interpreter has), cached once per machine under
``tests/cache.py``'s ``cache_root()`` like ``./dev``'s EL9 venv.

Every run then takes its own copy (hard links where it can) and installs the package into
it as the RPM does (``packaging/quantum-vnic.spec``): ``vnic_drivers/`` of the checkout
being measured copied into site-packages and byte-compiled (vdsm cannot write
``__pycache__``; the RPM ships the ``.pyc``), each ``hooks/<point>`` as
``<point>/50_quantum_vnic`` with the shebang ``#!<venv python> -I``, and the privileged
entry point and the resident helper the same way. Standard library only (it runs before anything is imported).
"""

import ast
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAMP = ".quantum-vnic-stamp"
HOOKS_DIR = "vdsm-hooks"  # <venv>/vdsm-hooks/<point>/50_quantum_vnic, as /usr/libexec/vdsm/hooks
HOOK_FILE = "50_quantum_vnic"
LIBEXEC = "libexec/quantum-vnic"  # relative to the venv: the root programs, as the RPM's
VERSIONS = ("lxml", "pyroute2", "ovs", "requests")  # what the table header names


def runtime_requirements(setup_py=os.path.join(REPO, "setup.py")):
    """``install_requires`` + ``extras_require["host"]`` of setup.py (read, not run)."""
    with open(setup_py, encoding="utf-8") as stream:
        tree = ast.parse(stream.read(), setup_py)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            keywords = {k.arg: k.value for k in node.keywords}
            names = list(ast.literal_eval(keywords["install_requires"]))
            names += ast.literal_eval(keywords["extras_require"]).get("host", [])
            return sorted(set(names))
    raise SystemExit("bench: no setup() call in %s" % setup_py)


def _pins(names):
    """``name==version`` of this interpreter's installed distributions (constraints)."""
    from importlib import metadata

    pins = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and dist.version:
            pins[name.lower()] = "%s==%s" % (name, dist.version)
    missing = [name for name in names if name.lower() not in pins]
    if missing:
        raise SystemExit("bench: %s not installed in %s; run ./dev deps"
                         % (", ".join(missing), sys.executable))
    return sorted(pins.values())


def _run(argv, what):
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["exit %d" % done.returncode]
        raise SystemExit("bench: %s failed: %s" % (what, tail[0]))
    return done.stdout


def _site_packages(venv):
    return os.path.join(venv, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")


def _build(venv, requirements, pins):
    """A venv of this interpreter with *requirements* (constrained to *pins*) and no pip."""
    sys.stderr.write("bench: building %s (%s, %s); later runs reuse it\n"
                     % (venv, sys.executable, " ".join(requirements)))
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", venv], "python -m venv")
    python = os.path.join(venv, "bin", "python")
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as constraints:
        constraints.write("\n".join(pins) + "\n")
        constraints.flush()
        _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
              "-c", constraints.name] + requirements, "pip install into %s" % venv)
    # A host has no pip or setuptools in its hook interpreter's path (setuptools adds a .pth).
    _run([python, "-m", "pip", "uninstall", "-q", "-y", "pip", "setuptools"], "pip uninstall")
    shutil.rmtree(os.path.join(venv, "bin", "__pycache__"), ignore_errors=True)


@contextlib.contextmanager
def _locked(path):
    with open(path + ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another bench run building or copying it
        yield


def cached_venv():
    """The cached venv (libraries only) for this interpreter; built when missing or stale."""
    sys.path.insert(0, REPO)
    from tests.cache import cache_root

    requirements = runtime_requirements()
    pins = _pins(requirements)
    root = cache_root()
    os.makedirs(root, exist_ok=True)
    venv = os.path.join(root, "bench-py%d.%d" % sys.version_info[:2])
    stamp = hashlib.sha256(json.dumps([os.path.realpath(sys.executable), sys.version, requirements,
                                       [p for p in pins if p.split("==")[0].lower() in
                                        {r.lower() for r in requirements}]]).encode()).hexdigest()[:16]
    with _locked(venv):
        try:
            with open(os.path.join(venv, STAMP), encoding="utf-8") as stream:
                current = stream.read().strip()
        except OSError:
            current = None
        if current != stamp:
            _build(venv, requirements, pins)
            with open(os.path.join(venv, STAMP), "w", encoding="utf-8") as stream:
                stream.write(stamp + "\n")
    return venv


def _link_or_copy(source, target):
    try:
        os.link(source, target)  # the files are only read; new .pyc are new files
    except OSError:
        shutil.copy2(source, target)


def _install_script(source, target, python):
    """*source* at *target* with its shebang replaced by ``#!python -I`` (the spec's sed)."""
    with open(source, encoding="utf-8") as stream:
        lines = stream.read().splitlines(True)
    if not lines[0].startswith("#!"):
        raise SystemExit("bench: %s has no shebang line" % source)
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    with open(target, "w", encoding="utf-8") as stream:
        stream.write("#!%s -I\n" % python)
        stream.writelines(lines[1:])
    os.chmod(target, 0o755)


def install(target, repo=REPO):
    """A copy of the cached venv at *target* with *repo*'s package installed as the RPM
    installs it; returns ``{"python", "hooks", "privileged", "helper", "versions"}``."""
    cache = cached_venv()
    with _locked(cache):
        shutil.copytree(cache, target, symlinks=True, copy_function=_link_or_copy,
                        ignore=shutil.ignore_patterns(STAMP))
    python = os.path.join(target, "bin", "python")
    site = _site_packages(target)
    shutil.copytree(os.path.join(repo, "vnic_drivers"), os.path.join(site, "vnic_drivers"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([python, "-I", "-m", "compileall", "-q", "-f", "-o", "0", "-o", "1",
          "--invalidation-mode", "timestamp", os.path.join(site, "vnic_drivers")], "compileall")
    hooks = os.path.join(target, HOOKS_DIR)
    for name in sorted(os.listdir(os.path.join(repo, "hooks"))):
        _install_script(os.path.join(repo, "hooks", name), os.path.join(hooks, name, HOOK_FILE), python)
    programs = {}
    for name in ("privileged", "helper"):
        programs[name] = os.path.join(target, LIBEXEC, "quantum-vnic-" + name)
        _install_script(os.path.join(repo, "packaging", "quantum-vnic-" + name), programs[name], python)
    for directory, _, _ in os.walk(target):
        os.chmod(directory, 0o755)  # vdsm runs it; root's umask may be stricter
    return dict(programs, python=python, hooks=hooks, versions=describe(python))


def describe(python):
    """What *python* is: version, executable, the libraries' versions, any ``.pth`` file,
    and whether it sees the base interpreter's site-packages (it must not)."""
    code = (
        "import glob, json, site, sys\n"
        "from importlib import metadata\n"
        "names = %r\n"
        "packages = site.getsitepackages()\n"
        "print(json.dumps({'python': sys.version.split()[0], 'implementation': sys.implementation.name,\n"
        "  'base': sys._base_executable, 'prefix': sys.prefix,\n"
        "  'libraries': {n: metadata.version(n) for n in names},\n"
        "  'pth': [p for d in packages for p in glob.glob(d + '/*.pth')],\n"
        "  'base_site': [p for p in sys.path if p.startswith(sys.base_prefix + '/') and p.endswith('site-packages')]}))\n"
        % (VERSIONS,))
    found = json.loads(_run([python, "-I", "-c", code], "%s -I (describe)" % python))
    if found["pth"] or found["base_site"]:
        raise SystemExit("bench: %s is not clean: .pth %s, base site-packages %s"
                         % (python, found["pth"], found["base_site"]))
    return found


if __name__ == "__main__":
    # python3 bench/clean_python.py DIR: install into DIR and say what it is (a check by hand).
    print(json.dumps(install(sys.argv[1]), indent=1))

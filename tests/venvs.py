"""Installing into the test virtualenvs (the Neutron and Keystone servers', EL9's): with
``uv`` when there is one, else with the venv's own pip.

``uv`` installs the same pinned versions in seconds where pip takes minutes (Neutron's
127 packages: about 20 s against 100 to 130 s on a 2-core machine); ``./dev deps``
installs it. It gets the package index settings pip has (``pip config list``: index-url,
extra-index-url, find-links, cert, timeout, trusted-host, proxy, no-cache-dir) and pip's way
of choosing among several indexes (the best version from any of them), and byte-compiles
what it installs, as pip does. Whatever makes uv fail, pip then does the install: uv only
makes it faster.

The virtualenv itself is always made by the target interpreter's ``venv`` (with its own
pip and, before Python 3.12, setuptools), so a venv has the same contents whichever tool
filled it. Standard library only: ``./dev`` and the server modules run this as a script.

Script: ``python3 tests/venvs.py VENV [-c CONSTRAINTS] REQUIREMENT...`` installs into the
existing VENV (``./dev``'s EL9 venv).
"""

import os
import shlex
import shutil
import subprocess
import sys
import time

# pip's settings that uv has an option for: pip config key -> what to do with its value.
_LIST_OPTIONS = {"extra-index-url": "--extra-index-url", "find-links": "--find-links",
                 "trusted-host": "--allow-insecure-host"}


class Failed(Exception):
    """The install failed with uv (or had no uv) and with pip; ``str()`` says why."""


def uv_binary():
    """The uv executable: the ``uv`` package's beside this interpreter, else ``uv`` on PATH."""
    try:
        import uv

        found = uv.find_uv_bin()
        if found and os.access(found, os.X_OK):
            return found
    except (ImportError, OSError, AttributeError):
        pass
    return shutil.which("uv")


def pip_settings(python=None):
    """pip's effective settings ({key: value}) as ``pip config list`` shows them: the
    config files, then ``PIP_*`` variables over them ({} if pip cannot tell)."""
    try:
        done = subprocess.run([python or sys.executable, "-m", "pip", "config", "list"],
                              capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found = {}
    for scope in ("global", "install", ":env:"):  # pip's order: the command's section, then the environment
        for line in done.stdout.splitlines():
            key, _, value = line.partition("=")
            section, _, name = key.rpartition(".")
            if section == scope and value:
                try:
                    found[name] = " ".join(shlex.split(value))
                except ValueError:
                    continue
    return found


def uv_options(settings):
    """uv pip's options and environment for pip's *settings*: ([option, ...], {name: value})."""
    options, env = ["--index-strategy", "unsafe-best-match"], {}
    if settings.get("index-url"):
        options += ["--index-url", settings["index-url"].split()[0]]
    for key, option in _LIST_OPTIONS.items():
        for value in settings.get(key, "").split():
            options += [option, value]
    if settings.get("no-cache-dir", "").lower() in ("1", "true", "yes", "on"):
        options.append("--no-cache")
    if settings.get("cert") and not os.environ.get("SSL_CERT_FILE"):
        env["SSL_CERT_FILE"] = settings["cert"]
    if settings.get("default-timeout") or settings.get("timeout"):
        env["UV_HTTP_TIMEOUT"] = str(int(float(settings.get("default-timeout") or settings["timeout"])))
    if settings.get("proxy"):
        for name in ("HTTP_PROXY", "HTTPS_PROXY"):
            if not os.environ.get(name) and not os.environ.get(name.lower()):
                env[name] = settings["proxy"]
    return options, env


def _tail(output, lines=6):
    kept = [line for line in output.splitlines()
            if line.strip() and "is ignored: it is neither" not in line and "Running pip as" not in line]
    return " | ".join(kept[-lines:])


def install(venv, requirements, constraints=None, log=None, timeout=None, cwd=None):
    """Install *requirements* (pip requirement strings) into the existing *venv*, pinned by
    the *constraints* file; returns ``"uv"`` or ``"pip"`` (what did it). *log*: a file the
    tools' output and a line per attempt are appended to. Raises :class:`Failed`."""
    python = os.path.join(venv, "bin", "python")
    pins = ["-c", constraints] if constraints else []

    def attempt(tool, argv, env=None):
        started = time.monotonic()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                                  cwd=cwd, env=dict(os.environ, **(env or {})))
            code, output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired:
            code, output = None, "no result after %ss" % timeout
        except OSError as err:
            code, output = None, str(err)
        if log:
            with open(log, "a", encoding="utf-8") as stream:
                stream.write("venvs: %s install into %s: %s in %.1f s\n%s\n" % (
                    tool, venv, "done" if code == 0 else "FAILED (%s)" % code, time.monotonic() - started,
                    output))
        return code, output

    uv = uv_binary()
    uv_said = "no uv here"
    if uv:
        options, env = uv_options(pip_settings())
        code, output = attempt("uv", [uv, "pip", "install", "-q", "--python", python, "--compile-bytecode"]
                               + options + pins + list(requirements), env)
        if code == 0:
            return "uv"
        uv_said = "uv failed (exit %s): %s" % (code, _tail(output, 3))
    code, output = attempt("pip", [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
                           + pins + list(requirements))
    if code == 0:
        return "pip"
    raise Failed("pip install %s failed (exit %s): %s (before it, %s)" % (
        " ".join(requirements), code, _tail(output), uv_said))


def main(argv):
    """``venvs.py VENV [-c CONSTRAINTS] REQUIREMENT...``: :func:`install`, output on failure."""
    import argparse

    parser = argparse.ArgumentParser(description="install into a test virtualenv (uv, else pip)")
    parser.add_argument("venv")
    parser.add_argument("-c", "--constraints")
    parser.add_argument("requirements", nargs="+")
    args = parser.parse_args(argv)
    try:
        tool = install(args.venv, args.requirements, args.constraints)
    except Failed as err:
        sys.stderr.write("venvs: %s\n" % err)
        return 1
    sys.stderr.write("venvs: installed %s into %s with %s\n" % (" ".join(args.requirements), args.venv, tool))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

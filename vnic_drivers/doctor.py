"""``quantum-vnic doctor``: check this host the way an admin would after installing.

One line per check: its status, what was found and, when something is wrong, the fix.
``--json`` prints the same as one JSON object for tools. Exit 1 when a check failed
(something blocks VM networking), else 0; warnings (works, but not as intended) and
skipped checks do not change the exit code.

Checks are the functions in :data:`CHECKS`, run in order; each gets the
:class:`Context` and returns a :class:`Result`. Which plugin's checks apply is decided
once: the plugins named with ``--plugin``, else those whose agent runs here, else both.
Doctor only reads: it never changes the host (``quantum-vnic agent-patch apply`` does).
"""

import json
import os
import stat
import subprocess
import sys

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
PLUGINS = ("LINUX_BRIDGE", "OPEN_VSWITCH")
# Process names of the Quantum (Grizzly) and Neutron agents, per plugin.
AGENTS = {
    "LINUX_BRIDGE": ("neutron-linuxbridge-agent", "quantum-linuxbridge-agent"),
    "OPEN_VSWITCH": ("neutron-openvswitch-agent", "quantum-openvswitch-agent"),
}
HOOKS_DIR = "/usr/libexec/vdsm/hooks"
HOOK_FILE = "50_quantum_vnic"
SUDOERS = "/etc/sudoers.d/50_vdsm_hook_quantum_vnic"
VDSM_USER = "vdsm"
COMMAND_TIMEOUT = 20
OVSDB_TIMEOUT = 5.0
REINSTALL = "reinstall the package: dnf reinstall quantum-vnic"


class Result:
    """The outcome of one check: status, one line of what was found, and the fix."""

    def __init__(self, status, message, fix=None):
        self.status = status
        self.message = message
        self.fix = fix

    def as_dict(self, name):
        return {"check": name, "status": self.status, "message": self.message, "fix": self.fix}


class Context:
    """What the checks share: paths (overridable for tests), the config, facts found."""

    def __init__(self, args):
        from . import config as config_module
        from .errors import HookError

        self.args = args
        try:
            self.config = config_module.load(args.config)
            self.config_error = None
        except HookError as err:
            self.config = config_module.defaults()
            self.config_error = str(err)
        self.agents = running_agents()
        if args.plugin:
            self.plugins, self.plugins_from = tuple(args.plugin), "--plugin"
        elif self.agents:
            self.plugins, self.plugins_from = tuple(sorted(self.agents)), "running agents"
        else:
            self.plugins, self.plugins_from = PLUGINS, "no agent running: checking both"
        self.facts = {}

    def uses(self, plugin):
        return plugin in self.plugins


# --- the checks -------------------------------------------------------------------


def check_config(ctx):
    from . import config as config_module

    path = ctx.args.config or config_module.selected_path()
    if ctx.config_error:
        return Result(FAIL, ctx.config_error, "fix the file; every option and its default: "
                      "/usr/share/doc/quantum-vnic*/README.md")
    if not os.path.exists(path):
        return Result(OK, "%s absent: built-in defaults apply" % path)
    return Result(OK, "%s is valid" % path)


def expected_hooks():
    """The hook points the package installs a script for."""
    from . import hook_main

    return sorted(set(hook_main.HOOK_POINTS) | set(getattr(hook_main, "HOST_HOOK_POINTS", ())))


def check_hooks(ctx):
    hooks = expected_hooks()
    problems = {hook: _file_problem(os.path.join(ctx.args.hooks_dir, hook, HOOK_FILE), executable=True)
                for hook in hooks}
    problems = {hook: problem for hook, problem in problems.items() if problem}
    if len(problems) == len(hooks):
        return Result(FAIL, "no hook installed: none of the %d %s/HOOK/%s is usable (%s)" % (
            len(hooks), ctx.args.hooks_dir, HOOK_FILE, problems[hooks[0]]), REINSTALL)
    if problems:
        return Result(FAIL, "%d of %d hooks not usable: %s" % (
            len(problems), len(hooks), "; ".join(problems.values())), REINSTALL)
    return Result(OK, "%d hooks installed and executable in %s" % (len(hooks), ctx.args.hooks_dir))


def check_sudoers(ctx):
    path = ctx.args.sudoers
    problem = _file_problem(path, mode=0o440) or _file_problem(ctx.args.privileged, executable=True)
    if problem:
        return Result(FAIL, problem, REINSTALL)
    if os.geteuid() != 0:
        return Result(SKIP, "run doctor as root to validate %s" % path)
    done = _run(["visudo", "-cf", path])
    if done is None:
        return Result(FAIL, "visudo not found: sudo is not installed", "dnf install sudo")
    if done.returncode != 0:
        return Result(FAIL, "visudo -cf %s: %s" % (path, _last_line(done)), REINSTALL)
    with open(path, encoding="utf-8", errors="replace") as stream:
        if ctx.args.privileged not in stream.read():
            return Result(FAIL, "%s does not allow %s" % (path, ctx.args.privileged), REINSTALL)
    return Result(OK, "%s is valid and allows %s" % (path, ctx.args.privileged))


def check_privilege_path(ctx):
    """vdsm -> sudo -n -> the entry point -> a read-only operation, for real."""
    import pwd

    if os.geteuid() != 0:
        return Result(SKIP, "run doctor as root to try the hooks' sudo path as %s" % VDSM_USER)
    try:
        pwd.getpwnam(VDSM_USER)
    except KeyError:
        return Result(FAIL, "user %s does not exist: VDSM runs the hooks as %s" % (VDSM_USER, VDSM_USER),
                      "install vdsm (dnf install vdsm)")
    done = _run(["setpriv", "--reuid=" + VDSM_USER, "--regid=" + VDSM_USER, "--init-groups", "--",
                 "sudo", "-n", ctx.args.privileged, "link_state"], stdin='{"name": "lo"}')
    if done is None or done.returncode != 0:
        reason = "setpriv not found" if done is None else _last_line(done)
        return Result(FAIL, "%s cannot run %s with sudo -n: %s" % (VDSM_USER, ctx.args.privileged, reason),
                      "check %s is included by /etc/sudoers (#includedir /etc/sudoers.d)" % ctx.args.sudoers)
    return Result(OK, "%s runs %s through sudo -n" % (VDSM_USER, ctx.args.privileged))


def check_agents(ctx):
    if not ctx.agents:
        return Result(FAIL, "no Quantum agent is running (looked for %s)" % ", ".join(
            name for names in AGENTS.values() for name in names),
            "start the agent of your plugin: systemctl start neutron-openvswitch-agent "
            "(or neutron-linuxbridge-agent)")
    found = ", ".join("%s (pid %d)" % (name, pid) for _, (name, pid) in sorted(ctx.agents.items()))
    missing = [plugin for plugin in ctx.plugins if plugin not in ctx.agents]
    if missing:
        return Result(FAIL, "running: %s; not running: the %s agent" % (found, " and ".join(missing)),
                      "start it: systemctl start %s" % AGENTS[missing[0]][0])
    return Result(OK, "running: %s" % found)


def check_ovsdb(ctx):
    if not ctx.uses("OPEN_VSWITCH"):
        return Result(SKIP, "Open vSwitch plugin not in use (%s)" % ctx.plugins_from)
    if ctx.config_error:
        # The defaults may name another OVS than the one the admin meant: ask none.
        return Result(SKIP, "the config is invalid (see above): not guessing which OVSDB to ask")
    from .errors import HookError

    remote = ctx.config.get("openvswitch", "ovsdb")
    try:
        ctx.facts["bridges"] = ovsdb_bridges(remote)
    except HookError as err:
        return Result(FAIL, str(err), "start Open vSwitch (systemctl start openvswitch) or fix "
                      "[openvswitch] ovsdb%s" % ("" if os.geteuid() == 0 else "; run doctor as root"))
    return Result(OK, "ovsdb-server answers at %s" % remote)


def check_integration_bridge(ctx):
    bridge = ctx.config.get("openvswitch", "integration_bridge")
    if not ctx.uses("OPEN_VSWITCH"):
        return Result(SKIP, "Open vSwitch plugin not in use (%s)" % ctx.plugins_from)
    if "bridges" not in ctx.facts:
        return Result(SKIP, "OVSDB unreachable: cannot look for %s" % bridge)
    if bridge not in ctx.facts["bridges"]:
        return Result(FAIL, "integration bridge %s does not exist in OVSDB" % bridge,
                      "start neutron-openvswitch-agent (it creates it) or: ovs-vsctl add-br %s" % bridge)
    return Result(OK, "integration bridge %s exists" % bridge)


def check_dummy_bridge(ctx):
    dummy = ctx.config.get("linux_bridge", "dummy_bridge")
    if not ctx.uses("LINUX_BRIDGE"):
        return Result(SKIP, "Linux Bridge plugin not in use (%s)" % ctx.plugins_from)
    if ctx.config.get("linux_bridge", "mode") != "bridge":
        return Result(SKIP, "not used: [linux_bridge] mode = %s" % ctx.config.get("linux_bridge", "mode"))
    ports = bridge_ports(dummy)
    if ports is None:
        return Result(FAIL, "bridge %s does not exist: libvirt cannot create Linux Bridge vNICs" % dummy,
                      "restart vdsmd (it creates it) or: ip link add '%s' type bridge" % dummy)
    stuck = sorted(port for port in ports if port.startswith("tap"))
    if stuck:
        return Result(WARN, "%s holds %d tap(s) no agent moved: %s" % (dummy, len(stuck), ", ".join(stuck)),
                      "check the Linux Bridge agent's log and quantum-vnic agent-patch check")
    return Result(OK, "bridge %s exists, no tap left on it" % dummy)


def check_agent_patch(ctx):
    if not ctx.uses("LINUX_BRIDGE"):
        return Result(SKIP, "Linux Bridge plugin not in use (%s)" % ctx.plugins_from)
    return agent_patch_state(ctx.args.agent_file)


def check_binding_host(ctx):
    """What after_get_caps reports: the engine binds this host's ports to it."""
    from .binding_host import binding_host_id

    found = ["%s: %s (%s)" % ((plugin,) + binding_host_id(ctx.config, plugin)) for plugin in ctx.plugins]
    return Result(OK, "ports bind to " + "; ".join(found))


def check_helper(ctx):
    """The resident helper: socket present, vdsm may open it, it answers, vdsm is allowed."""
    import grp
    import pwd

    path = ctx.config.get("helper", "socket")
    enable = "systemctl enable --now quantum-vnic-helper.socket"
    try:
        info = os.stat(path)
    except OSError:
        return Result(WARN, "no helper socket at %s: hooks use sudo (slower)" % path, enable)
    if not stat.S_ISSOCK(info.st_mode):
        return Result(FAIL, "%s is not a socket" % path, "remove it, then " + enable)
    try:
        vdsm = pwd.getpwnam(VDSM_USER)
    except KeyError:
        return Result(FAIL, "user %s does not exist: VDSM runs the hooks as %s" % (VDSM_USER, VDSM_USER),
                      "install vdsm (dnf install vdsm)")
    try:
        group = grp.getgrgid(info.st_gid)
        in_group = info.st_gid == vdsm.pw_gid or VDSM_USER in group.gr_mem
        group_name = group.gr_name
    except KeyError:
        in_group, group_name = info.st_gid == vdsm.pw_gid, str(info.st_gid)
    if not (info.st_uid == 0 and in_group and stat.S_IMODE(info.st_mode) & 0o060 == 0o060
            and not stat.S_IMODE(info.st_mode) & 0o007):
        return Result(FAIL, "%s is %s:%s %04o; vdsm must reach it through its group, others not"
                      % (path, info.st_uid, group_name, stat.S_IMODE(info.st_mode)),
                      "SocketMode=0660 and SocketGroup= a group of %s in quantum-vnic-helper.socket"
                      % VDSM_USER)
    if os.geteuid() != 0:
        return Result(SKIP, "run doctor as root to ask the helper at %s as %s" % (path, VDSM_USER))
    # As vdsm, for real: the kernel's view of the caller is what the helper checks.
    probe = ("import json, sys; sys.path[:0] = %r; from vnic_drivers.helper import client; "
             "print(json.dumps(client.call(%r, 'ping', {}, %r)))"
             % ([os.path.dirname(os.path.dirname(os.path.abspath(__file__)))],
                path, ctx.config.get("helper", "client_timeout") or 5))
    done = _run(["setpriv", "--reuid=%d" % vdsm.pw_uid, "--regid=%d" % vdsm.pw_gid, "--init-groups",
                 "--", sys.executable, "-I", "-c", probe])
    if done is None or done.returncode != 0:
        reason = "setpriv not found" if done is None else _last_line(done)
        fix = ("add %s to [helper] allowed_users in %s, then systemctl reload quantum-vnic-helper"
               % (VDSM_USER, ctx.config.path) if "not allowed" in reason
               else "journalctl -u quantum-vnic-helper")
        return Result(FAIL, "the helper at %s does not answer %s: %s" % (path, VDSM_USER, reason), fix)
    from .helper import DEFAULT_SOCKET

    if path != DEFAULT_SOCKET:
        return Result(WARN, "quantum-vnic-helper answers %s on %s, but after_* hooks look for it at %s "
                      "before they read the config: they find it later (slower)"
                      % (VDSM_USER, path, DEFAULT_SOCKET),
                      "leave [helper] socket at its default %s (and ListenStream= of "
                      "quantum-vnic-helper.socket)" % DEFAULT_SOCKET)
    return Result(OK, "quantum-vnic-helper answers %s on %s" % (VDSM_USER, path))


# --- the Quantum API ([quantum] url): reachable, credentials, agents, ports -------------

API_BUDGET = 15.0
AGENT_TYPES = {"LINUX_BRIDGE": "Linux bridge agent", "OPEN_VSWITCH": "Open vSwitch agent"}


def _api_off(ctx):
    if ctx.config_error:
        return Result(SKIP, "the config is invalid (see above): not guessing which provider to ask")
    if not ctx.config.get("quantum", "url"):
        return Result(SKIP, "[quantum] url is empty: the hooks never ask the provider")
    return None


def _api_unusable(ctx, fact, what):
    """Why a check that lists this host's *what* cannot ask the API (off, or *fact* missing
    because it did not answer), as a SKIP; or None."""
    off = _api_off(ctx)
    if off:
        return off
    if fact not in ctx.facts:
        return Result(SKIP, "the API did not answer: cannot list this host's %s" % what)
    return None


def _binding_hosts(ctx):
    """{plugin: (binding host id, where it came from)} for the plugins in use."""
    from .binding_host import binding_host_id

    return {plugin: binding_host_id(ctx.config, plugin) for plugin in ctx.plugins}


def check_quantum_api(ctx):
    off = _api_off(ctx)
    if off:
        return off
    from .errors import HookError
    from .quantum import client

    ctx.facts["binding_hosts"] = hosts = _binding_hosts(ctx)
    try:
        api = ctx.facts["api"] = client.Client(ctx.config, budget=API_BUDGET)
        ctx.facts["agents"] = {host: api.agents(host) for host, _ in set(hosts.values())}
    except client.ApiError as err:
        ctx.facts.pop("api", None)
        if err.status in (401, 403):
            return Result(FAIL, "%s: the credentials were refused" % err,
                          "fix the user, password and project in %s" % ctx.config.get("quantum", "credentials"))
        return Result(FAIL, str(err), "check [quantum] url, ca_file and that the provider is up")
    except HookError as err:  # the auth could not even ask (credentials file, Keystone)
        ctx.facts.pop("api", None)
        return Result(FAIL, str(err), "fix [quantum] auth and %s" % ctx.config.get("quantum", "credentials"))
    return Result(OK, "%s answers (auth %s, credentials accepted)" % (api.url, ctx.config.get("quantum", "auth")))


def check_quantum_agents(ctx):
    unusable = _api_unusable(ctx, "agents", "agents")
    if unusable:
        return unusable
    found, missing = [], []
    for plugin, (host, source) in sorted(ctx.facts["binding_hosts"].items()):
        agents = [agent for agent in ctx.facts["agents"][host] if agent.get("agent_type") == AGENT_TYPES[plugin]]
        alive = [agent for agent in agents if agent.get("alive") and agent.get("admin_state_up", True)]
        if alive:
            found.append("%s on host %s" % (AGENT_TYPES[plugin], host))
        else:
            missing.append("no %s%s with host=%s (this host's binding id, from %s)" % (
                "live " if agents else "", AGENT_TYPES[plugin], host, source))
    if missing:
        return Result(FAIL, "; ".join(missing + ["alive: " + (", ".join(found) or "none")]),
                      "start the agent here and make its host option the binding id; ports for "
                      "this host do not bind without it")
    return Result(OK, "alive in the API: %s" % ", ".join(found))


def check_quantum_ports(ctx):
    unusable = _api_unusable(ctx, "api", "ports")
    if unusable:
        return unusable
    from .quantum import client

    ports = []
    try:
        for host, _ in sorted(set(ctx.facts["binding_hosts"].values())):
            ports.extend(ctx.facts["api"].ports_on_host(host))
    except client.ApiError as err:
        return Result(FAIL, str(err), "check the provider's log")
    if not ports:
        return Result(OK, "no port is bound to this host")
    failed = sorted(port.get("id", "?") for port in ports if port.get("binding:vif_type") == "binding_failed")
    ports.sort(key=lambda port: str(port.get("id", "")))
    shown = ", ".join("%s %s" % (port.get("id", "?"), port.get("status", "?")) for port in ports[:10])
    if len(ports) > 10:
        shown += " and %d more" % (len(ports) - 10)
    line = "%d port(s) bound to this host: %s" % (len(ports), shown)
    if failed:
        return Result(WARN, "%s; binding failed: %s" % (line, ", ".join(failed)),
                      "start this host's agent, then re-bind the ports (restart their VMs)")
    return Result(OK, line)


def check_leftovers(ctx):
    """Devices and OVS ports of vNICs no running VM uses (what ``quantum-vnic cleanup`` removes)."""
    from . import cleanup
    from .errors import HookError
    from .host import leftovers

    if os.geteuid() != 0:
        return Result(SKIP, "run doctor as root to look for devices no VM uses")
    if ctx.config_error:
        return Result(SKIP, "the config is invalid (see above): not guessing which libvirt or OVSDB to ask")
    uri = ctx.config.get("hook", "libvirt_uri")
    try:
        used = cleanup.in_use(uri)
        # OVSDB only when the ovsdb check reached it: never a socket doctor was not meant to ask.
        remote = ctx.config.get("openvswitch", "ovsdb") if "bridges" in ctx.facts else None
        found = cleanup.leftovers(leftovers.inventory(
            remote, ctx.config.get("openvswitch", "integration_bridge")), used)
    except cleanup.Refused as err:
        return Result(SKIP, "cannot look for leftovers: %s" % err)
    except HookError as err:
        return Result(WARN, "cannot list devices: %s" % err)
    if found:
        return Result(WARN, "%d vNIC(s) left devices or OVS ports that no running VM uses: %s" % (
            len(found), "; ".join(cleanup.describe(vnic) for vnic in found)),
            "quantum-vnic cleanup --dry-run shows what it would remove; quantum-vnic cleanup removes it")
    return Result(OK, "no device or OVS port of quantum-vnic outlived its VM (%d running VM(s))"
                  % used["domains"])


CHECKS = [
    ("config", check_config),
    ("binding host id", check_binding_host),
    ("hooks", check_hooks),
    ("sudoers", check_sudoers),
    ("sudo path", check_privilege_path),
    ("helper", check_helper),
    ("agents", check_agents),
    ("ovsdb", check_ovsdb),
    ("integration bridge", check_integration_bridge),
    ("dummy bridge", check_dummy_bridge),
    ("agent patch", check_agent_patch),
    ("quantum api", check_quantum_api),
    ("quantum agents", check_quantum_agents),
    ("quantum ports", check_quantum_ports),
    ("leftovers", check_leftovers),
]


# --- what the checks read from the host (read-only) --------------------------------


def ovsdb_bridges(remote):
    """Names of the bridges in the Open_vSwitch database at *remote*; HookError if unreachable."""
    from .host import ovsdb

    with ovsdb.connect(remote, timeout=OVSDB_TIMEOUT) as db:
        rows = db.transact({"op": "select", "table": "Bridge", "where": [], "columns": ["name"]})[0]["rows"]
    return {row["name"] for row in rows}


def agent_patch_state(path=None):
    """The Linux Bridge agent patch's state (:mod:`vnic_drivers.agent_patch`)."""
    from . import agent_patch
    from .errors import HookError

    try:
        path = path or agent_patch.find_agent()
    except HookError:
        return Result(WARN, "the Linux Bridge agent's source was not found in the system's "
                      "site-packages: cannot tell whether it is patched",
                      "quantum-vnic doctor --agent-file PATH (the agent's .py file)")
    try:
        variant, state = agent_patch.identify(path)
    except HookError as err:
        return Result(WARN, str(err), "quantum-vnic agent-patch check PATH")
    if state != agent_patch.PATCHED:
        return Result(WARN, "%s (%s) is not patched: the agent will not move taps off the "
                      "dummy bridge" % (path, variant.title), "quantum-vnic agent-patch apply")
    return Result(OK, "%s (%s) is patched" % (path, variant.title))


def running_agents(proc="/proc"):
    """{plugin: (agent name, pid)} of the Quantum agents running on this host."""
    by_name = {name: plugin for plugin, names in AGENTS.items() for name in names}
    found = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as stream:
                argv = stream.read().split(b"\0")
        except OSError:
            continue  # exited meanwhile, or not ours to read
        # The agent itself, or "python3 /usr/bin/neutron-...-agent --config-file ...".
        for arg in argv[:2]:
            name = os.path.basename(arg.decode("utf-8", "replace"))
            if name in by_name:
                found.setdefault(by_name[name], (name, int(entry)))
    return found


def bridge_ports(bridge):
    """Names of the devices enslaved to *bridge*, or None when it does not exist."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=bridge)
        if not found:
            return None
        return [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()
                if link.get_attr("IFLA_MASTER") == found[0]]


def _file_problem(path, mode=None, executable=False):
    """Why *path* is not a root-owned regular file fit for its use, or None."""
    try:
        info = os.stat(path)
    except OSError as err:
        return "%s: %s" % (path, err.strerror.lower())
    if not stat.S_ISREG(info.st_mode):
        return "%s is not a regular file" % path
    if info.st_uid != 0:
        return "%s is not owned by root" % path
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "%s is writable by group or others" % path
    if mode is not None and stat.S_IMODE(info.st_mode) != mode:
        return "%s has mode %04o, expected %04o" % (path, stat.S_IMODE(info.st_mode), mode)
    if executable and not info.st_mode & stat.S_IXOTH:
        return "%s is not executable by %s" % (path, VDSM_USER)
    return None


def _run(argv, stdin=None):
    """Run *argv*; the CompletedProcess, or None when the program is not installed."""
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT, check=False)
    except FileNotFoundError:
        return None
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 1, "", "no answer after %ds" % COMMAND_TIMEOUT)


def _last_line(done):
    lines = (done.stderr or done.stdout or "").strip().splitlines()
    return lines[-1] if lines else "exit status %d" % done.returncode


# --- the command ---------------------------------------------------------------------


def add_arguments(parser):
    from .host import DEFAULT_PRIVILEGED_COMMAND

    parser.add_argument("--json", action="store_true", help="print one JSON object for tools")
    parser.add_argument("--plugin", action="append", choices=PLUGINS,
                        help="plugin this host serves (repeat); default: from the running agents")
    parser.add_argument("--config", metavar="FILE",
                        help="config file instead of /etc/vdsm/quantum_vnic.conf")
    parser.add_argument("--hooks-dir", default=HOOKS_DIR, metavar="DIR",
                        help="VDSM's hook directory (default: %(default)s)")
    parser.add_argument("--sudoers", default=SUDOERS, metavar="FILE",
                        help="the sudoers drop-in (default: %(default)s)")
    parser.add_argument("--privileged", default=DEFAULT_PRIVILEGED_COMMAND, metavar="FILE",
                        help="the privileged entry point (default: %(default)s)")
    parser.add_argument("--agent-file", metavar="FILE",
                        help="the Linux Bridge agent's .py file (default: looked for)")


def diagnose(args):
    """[(name, Result)] for every check, in order."""
    ctx = Context(args)
    results = []
    for name, check in CHECKS:
        try:
            result = check(ctx)
        except Exception as err:  # a check's bug must not hide the other checks
            result = Result(FAIL, "check crashed: %s: %s" % (type(err).__name__, err),
                            "please report this")
        results.append((name, result))
    return ctx, results


def run(args):
    if args.config:
        from .config import select

        # --config is for the whole process, not only for the checks: what loads the
        # config by itself must read this same file, above all a privileged operation
        # run in-process as root (it takes the OVSDB remote and the bridge from it).
        # Through sudo, root reads /etc/vdsm/quantum_vnic.conf, as for VDSM.
        select(args.config)
    ctx, results = diagnose(args)
    failed = [name for name, result in results if result.status == FAIL]
    if args.json:
        json.dump({"ok": not failed, "plugins": list(ctx.plugins), "plugins_from": ctx.plugins_from,
                   "checks": [result.as_dict(name) for name, result in results]},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        from .log import one_line

        width = max(len(name) for name, _ in results)
        for name, result in results:
            line = "%-4s  %-*s  %s" % (result.status, width, name, result.message)
            if result.fix and result.status in (FAIL, WARN):
                line += "; fix: " + result.fix
            sys.stdout.write(one_line(line) + "\n")
        sys.stdout.write("plugins: %s (%s); %s\n" % (
            ", ".join(ctx.plugins), ctx.plugins_from,
            "%d check(s) failed: VM networking is blocked" % len(failed) if failed
            else "nothing blocks VM networking"))
    return 1 if failed else 0

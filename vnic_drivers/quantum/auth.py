"""Authentication of the Quantum API client: none, or a Keystone v2.0 / v3 password token.

``for_config(config)`` reads ``[quantum] auth``, ``credentials`` and ``token_cache`` and
returns an object whose ``headers(session, refresh=False)`` gives the headers a Quantum
request needs: ``{}`` for ``noauth``, ``{"X-Auth-Token": TOKEN}`` for Keystone.

- The credentials live in their own ini file (section ``[keystone]``, see
  :data:`OPTIONS`), never in the main config. Hooks run as ``vdsm`` and root never talks
  to the network, so the file is read by ``vdsm``: it must be owned by the reading user
  (``vdsm``) or by root, and neither group nor others may have any access (what ssh asks
  of a private key). Otherwise it is refused before a byte of it is read.
- A token is kept in the cache file (one small JSON document, mode 0600, written to a new
  ``O_EXCL`` file and renamed into place, so it is never readable by others, not even
  briefly) and reused by every hook process until ``EXPIRY_MARGIN`` seconds before it
  expires. A cache that is not a regular file owned by this user with mode 0600, or that
  does not parse, or that was made for other credentials, is ignored and replaced.
- Fetch-and-store runs under an ``fcntl`` lock on ``CACHE.lock``: when many vNICs start
  at once, one hook asks Keystone and the others read its token. Waiting for the lock is
  bounded by the session's timeouts; after that a hook asks Keystone itself.
- ``refresh=True`` (the client's single retry after a 401) drops the token it gave out
  and takes a new one (another process's newer token from the cache, else Keystone's).
- Failures raise :class:`HostError` (Keystone unreachable, refusing, answering nonsense)
  or :class:`InputError` (the credentials file), one line naming the fix. Neither they,
  the log, nor any ``repr`` carries a password or a token.

``requests`` is imported only when a token has to be fetched.
"""

import json
import os
import stat
import time

from ..errors import HostError, InputError
from ..log import LOG, one_line


MODES = ("noauth", "keystone-v2", "keystone-v3")
SECTION = "keystone"
HOOK_USER = "vdsm"
# A token is not handed out when it expires within this many seconds (capped at half
# its lifetime, so short-lived tokens are still shared): a hook's API calls must not
# outlive it.
EXPIRY_MARGIN = 120.0
DEFAULT_TIMEOUT = (3.0, 10.0)
MAX_FILE_BYTES = 64 * 1024
MAX_TOKEN_CHARS = 16 * 1024
# Keystone not there yet (refused) or briefly overloaded: one more try after a pause.
# Timeouts are not retried: they already used the time the hook can give.
RETRY_STATUSES = (502, 503, 504)
RETRY_DELAY = 0.5

# option -> the modes that accept it. v2.0 calls projects tenants: both names work there.
OPTIONS = {
    "auth_url": MODES[1:],
    "username": MODES[1:],
    "user_id": ("keystone-v3",),
    "password": MODES[1:],
    "tenant_name": ("keystone-v2",),
    "tenant_id": ("keystone-v2",),
    "project_name": MODES[1:],
    "project_id": MODES[1:],
    "user_domain_name": ("keystone-v3",),
    "user_domain_id": ("keystone-v3",),
    "project_domain_name": ("keystone-v3",),
    "project_domain_id": ("keystone-v3",),
    "domain_name": ("keystone-v3",),
    "domain_id": ("keystone-v3",),
}
DEFAULT_DOMAIN = "Default"


def for_config(config):
    """The authentication ``[quantum]`` of *config* (a :class:`vnic_drivers.config.Config`) asks for."""
    mode = config.get("quantum", "auth")
    if mode == "noauth":
        return NoAuth()
    if mode not in MODES:
        raise InputError("[quantum] auth=%r: expected one of %s" % (mode, ", ".join(MODES)))
    credentials = load_credentials(config.get("quantum", "credentials"), mode)
    cache_path = config.get("quantum", "token_cache")
    return KeystoneAuth(credentials, TokenCache(cache_path, credentials.fingerprint()) if cache_path else None)


class NoAuth:
    """Grizzly's default: the API asks for nothing."""

    mode = "noauth"

    def headers(self, session, refresh=False):
        return {}

    def __repr__(self):
        return "NoAuth()"


# --- the credentials file ------------------------------------------------------------


class Credentials:
    """What one Keystone password request needs; ``repr`` shows who, never the password."""

    def __init__(self, mode, path, values):
        self.mode = mode
        self.path = path
        self._values = values

    def get(self, option):
        return self._values.get(option)

    @property
    def password(self):
        return self._values["password"]

    @property
    def auth_url(self):
        """The versioned endpoint: ``.../v3`` or ``.../v2.0`` appended unless already there."""
        url = self._values["auth_url"].rstrip("/")
        suffix = "/v3" if self.mode == "keystone-v3" else "/v2.0"
        return url if url.endswith(suffix) else url + suffix

    def who(self):
        """``user NAME (domain D), project P (domain D)`` for messages."""
        get = self._values.get
        if get("user_id"):
            user = "user id %s" % get("user_id")
        else:
            user = "user %s" % get("username")
            if self.mode == "keystone-v3":
                user += " (domain %s)" % (get("user_domain_id") or get("user_domain_name"))
        project = get("project_id") or get("tenant_id")
        if project:
            return "%s, project id %s" % (user, project)
        project = get("project_name") or get("tenant_name")
        if project and self.mode == "keystone-v3":
            return "%s, project %s (domain %s)" % (
                user, project, get("project_domain_id") or get("project_domain_name"))
        if project:
            return "%s, project %s" % (user, project)
        return "%s, domain %s" % (user, get("domain_id") or get("domain_name"))

    def fingerprint(self):
        """Identifies mode, endpoint, user and scope (not the password) for the cache."""
        import hashlib

        public = {k: v for k, v in sorted(self._values.items()) if k != "password"}
        text = json.dumps([self.mode, self.auth_url, public], sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def __repr__(self):
        return "Credentials(%s, %s, %s, password=***)" % (self.mode, self.auth_url, self.who())


def trusted_owners():
    """Who may own the credentials file: root, this process's user and, for root (doctor),
    the hooks' user, for whom the file is made."""
    owners = {0, os.geteuid()}
    if os.geteuid() == 0:
        import pwd

        try:
            owners.add(pwd.getpwnam(HOOK_USER).pw_uid)
        except KeyError:
            pass
    return owners


def _user_name(uid):
    import pwd

    try:
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def _unsafe(status, owners):
    """Why a file with this ``fstat`` must not be trusted with secrets, or None."""
    if not stat.S_ISREG(status.st_mode):
        return "is not a regular file"
    if status.st_uid not in owners:
        return "is owned by %s" % _user_name(status.st_uid)
    if status.st_mode & 0o077:
        return "is open to group or others (mode %04o)" % stat.S_IMODE(status.st_mode)
    if status.st_size > MAX_FILE_BYTES:
        return "is larger than %d bytes" % MAX_FILE_BYTES
    return None


def _read_if_safe(fd, owners):
    """(why not, None) or (None, the content) of the open file *fd*, which is closed."""
    try:
        problem = _unsafe(os.fstat(fd), owners)
        if problem:
            return problem, None
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, MAX_FILE_BYTES)
            if not chunk:
                return None, b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_FILE_BYTES:  # it grew after fstat
                return "is larger than %d bytes" % MAX_FILE_BYTES, None
    finally:
        os.close(fd)


def load_credentials(path, mode):
    """Read and check the credentials file *path* for *mode*; :class:`InputError` if unusable."""
    import configparser

    fix = "chown %s: %s && chmod 0600 %s" % (HOOK_USER, path, path)
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang the hook.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError("credentials file %s does not exist; create it ([%s] auth_url, username, "
                         "password, project; see README) or set [quantum] auth = noauth"
                         % (path, SECTION)) from None
    except OSError as err:
        raise InputError("credentials file %s cannot be read by %s (%s); %s"
                         % (path, _user_name(os.geteuid()), err.strerror, fix)) from None
    # Checked on the open file, so the file read is the file checked.
    problem, data = _read_if_safe(fd, trusted_owners())
    if problem:
        raise InputError("credentials file %s %s: it holds a password, so only its owner (%s or root) "
                         "may read it; %s" % (path, problem, HOOK_USER, fix))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("credentials file %s is not UTF-8 text" % path) from None

    parser = configparser.ConfigParser(interpolation=None, default_section="__no_default__")
    try:
        parser.read_string(text, source=path)
    except configparser.Error as err:
        # configparser quotes the offending line, which may be the password: give line numbers only.
        lines = [str(n) for n, _ in getattr(err, "errors", [])] or [str(getattr(err, "lineno", "?"))]
        raise InputError("credentials file %s is not a valid ini file (line %s); expected a [%s] section of "
                         "'option = value' lines" % (path, ", ".join(lines), SECTION)) from None
    if parser.sections() != [SECTION]:
        raise InputError("credentials file %s: expected exactly one section, [%s] (found: %s)"
                         % (path, SECTION, ", ".join("[%s]" % s for s in parser.sections()) or "none"))
    values = {}
    for option, value in parser.items(SECTION):
        if option not in OPTIONS:
            raise InputError("credentials file %s: unknown option %r in [%s]; known: %s"
                             % (path, option, SECTION, ", ".join(OPTIONS)))
        if mode not in OPTIONS[option]:
            raise InputError("credentials file %s: %s is not used by [quantum] auth = %s; remove it"
                             % (path, option, mode))
        value = value.strip()
        if value:
            values[option] = value
    _check_credentials(path, mode, values)
    return Credentials(mode, path, values)


def _check_credentials(path, mode, values):
    def need(what):
        raise InputError("credentials file %s: [%s] needs %s for auth = %s" % (path, SECTION, what, mode))

    def at_most_one(*options):
        given = [o for o in options if o in values]
        if len(given) > 1:
            raise InputError("credentials file %s: give only one of %s" % (path, ", ".join(given)))
        return given[0] if given else None

    url = values.get("auth_url", "")
    if not url:
        need("auth_url")
    if not (url.startswith("http://") or url.startswith("https://")) or "@" in url.split("/")[2]:
        # not echoed: it may be the user:password@ the message is about
        raise InputError("credentials file %s: auth_url: expected http(s)://HOST:PORT[/PATH] "
                         "(no user:password@)" % path)
    if "password" not in values:
        need("password")
    if mode == "keystone-v2":
        if "username" not in values:
            need("username")
        if at_most_one("tenant_name", "tenant_id", "project_name", "project_id") is None:
            need("tenant_name or tenant_id (the project)")
        return
    if at_most_one("username", "user_id") is None:
        need("username or user_id")
    if "username" in values:
        if at_most_one("user_domain_name", "user_domain_id") is None:
            values["user_domain_name"] = DEFAULT_DOMAIN
    elif at_most_one("user_domain_name", "user_domain_id"):
        raise InputError("credentials file %s: user_domain_* goes with username, not user_id" % path)
    scope = at_most_one("project_name", "project_id", "domain_name", "domain_id")
    if scope is None:
        need("a scope: project_name, project_id, domain_name or domain_id")
    if scope == "project_name":
        if at_most_one("project_domain_name", "project_domain_id") is None:
            values["project_domain_name"] = DEFAULT_DOMAIN
    elif at_most_one("project_domain_name", "project_domain_id"):
        raise InputError("credentials file %s: project_domain_* goes with project_name only" % path)


# --- tokens and their cache ----------------------------------------------------------


class Token:
    """A token and the local times it was issued and expires; ``repr`` hides the value."""

    __slots__ = ("value", "issued", "expires")

    def __init__(self, value, issued, expires):
        self.value = value
        self.issued = issued
        self.expires = expires

    def usable(self, now, margin):
        """Not within *margin* seconds (at most half its lifetime) of expiring."""
        margin = min(margin, max(self.expires - self.issued, 0.0) / 2)
        return now < self.expires - margin

    def __repr__(self):
        return "Token(***, expires=%s)" % time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.expires))


def _valid_token_text(value):
    return (isinstance(value, str) and 0 < len(value) <= MAX_TOKEN_CHARS
            and all("!" <= c <= "~" for c in value))


class TokenCache:
    """One token in a file only its owner can read, for the credentials of *fingerprint*."""

    VERSION = 1

    def __init__(self, path, fingerprint):
        self.path = path
        self.fingerprint = fingerprint

    def __repr__(self):
        return "TokenCache(%r)" % self.path

    def load(self):
        """The cached token, or None when there is none or it must not be trusted."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as err:
            LOG.warning("token cache %s ignored (%s); it will be replaced", self.path, err.strerror)
            return None
        problem, data = _read_if_safe(fd, {os.geteuid()})
        if problem:
            LOG.warning("token cache %s ignored: it %s; it will be replaced by one of mode 0600",
                        self.path, problem)
            return None
        try:
            doc = json.loads(data.decode("utf-8"))
            if doc["version"] != self.VERSION or doc["for"] != self.fingerprint:
                LOG.debug("token cache %s holds another user's or endpoint's token; not used", self.path)
                return None
            token = Token(doc["token"], float(doc["issued"]), float(doc["expires"]))
            if not _valid_token_text(token.value):
                raise ValueError
        except (ValueError, TypeError, KeyError):
            LOG.debug("token cache %s is not a token document; it will be replaced", self.path)
            return None
        return token

    def store(self, token):
        """Write *token* atomically (0600 from creation); a failure is one warning, not an error."""
        doc = {"version": self.VERSION, "for": self.fingerprint, "token": token.value,
               "issued": token.issued, "expires": token.expires}
        temporary = "%s.%d.%s.tmp" % (self.path, os.getpid(), os.urandom(4).hex())
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as stream:
                    json.dump(doc, stream)
                os.replace(temporary, self.path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as err:
            LOG.warning("token cache %s not written (%s); every hook asks Keystone until its directory "
                        "is writable by uid %d", self.path, err.strerror, os.geteuid())

    def discard(self):
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def locked(self, wait):
        return _CacheLock(self.path + ".lock", wait)


class _CacheLock:
    """An exclusive ``flock`` on the cache's lock file, waited for at most *wait* seconds.

    Best effort: the lock only spares Keystone a stampede, so a lock file that cannot be
    opened or a holder that takes too long means going on without it.
    """

    def __init__(self, path, wait):
        self.path = path
        self.wait = wait
        self.fd = None

    def __enter__(self):
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        except OSError as err:
            LOG.debug("token cache lock %s unavailable (%s); going on without it", self.path, err.strerror)
            return self
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fd = fd
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    LOG.debug("token cache lock %s still held after %.1f s; going on without it",
                              self.path, self.wait)
                    os.close(fd)
                    return self
                time.sleep(0.02)

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None


# --- Keystone ------------------------------------------------------------------------


class KeystoneAuth:
    """Keystone password authentication with a shared token cache (*cache* may be None)."""

    def __init__(self, credentials, cache=None, expiry_margin=EXPIRY_MARGIN, clock=time.time):
        self.credentials = credentials
        self.mode = credentials.mode
        self.cache = cache
        self.expiry_margin = expiry_margin
        self.clock = clock
        self._token = None

    def __repr__(self):
        return "KeystoneAuth(%r, cache=%r)" % (self.credentials, self.cache)

    def headers(self, session, refresh=False):
        return {"X-Auth-Token": self._current(session, refresh).value}

    def _current(self, session, refresh):
        rejected = None
        if refresh:
            rejected, self._token = self._token, None
        elif self._token is not None and self._token.usable(self.clock(), self.expiry_margin):
            return self._token
        if self.cache is None:
            self._token = self._fetch(session)
            return self._token
        if not refresh:
            cached = self.cache.load()
            if cached is not None and cached.usable(self.clock(), self.expiry_margin):
                self._token = cached
                return cached
        with self.cache.locked(wait=sum(_timeout(session))):
            # Another hook may have fetched one while this one waited for the lock.
            cached = self.cache.load()
            newer = not refresh or (rejected is not None and cached is not None and cached.value != rejected.value)
            if cached is not None and newer and cached.usable(self.clock(), self.expiry_margin):
                self._token = cached
                return cached
            if cached is not None and rejected is not None and cached.value == rejected.value:
                self.cache.discard()  # known bad: no hook may take it, even if the fetch fails
            token = self._fetch(session)
            if token.usable(self.clock(), self.expiry_margin):
                self.cache.store(token)
        self._token = token
        return token

    def _fetch(self, session):
        credentials = self.credentials
        if self.mode == "keystone-v3":
            url, body = credentials.auth_url + "/auth/tokens", _v3_request(credentials)
        else:
            url, body = credentials.auth_url + "/tokens", _v2_request(credentials)
        started = self.clock()
        response = _post(session, url, body, credentials)
        token = _v3_token(response, started) if self.mode == "keystone-v3" else _v2_token(response, started)
        if token is None:
            raise self._error(
                "Keystone at %s answered HTTP %d without a %s token; is auth_url in %s a Keystone %s "
                "endpoint?" % (url, response.status_code, self.mode, credentials.path, self.mode[9:]))
        LOG.debug("%s: token for %s obtained, valid %.0f s", self.mode, credentials.who(),
                  token.expires - token.issued)
        return token

    def _error(self, message):
        return HostError(_scrub(message, self.credentials, self._token))


def _timeout(session):
    """(connect, read) seconds: the session's ``quantum_timeout`` (a pair or one number)."""
    timeout = getattr(session, "quantum_timeout", None) or DEFAULT_TIMEOUT
    return tuple(timeout) if isinstance(timeout, (tuple, list)) else (float(timeout), float(timeout))


def _v2_request(credentials):
    get = credentials.get
    auth = {"passwordCredentials": {"username": get("username"), "password": credentials.password}}
    if get("tenant_id") or get("project_id"):
        auth["tenantId"] = get("tenant_id") or get("project_id")
    else:
        auth["tenantName"] = get("tenant_name") or get("project_name")
    return {"auth": auth}


def _named(get, prefix):
    """``{"id": …}`` or ``{"name": …}`` from PREFIX_id / PREFIX_name."""
    return {"id": get(prefix + "_id")} if get(prefix + "_id") else {"name": get(prefix + "_name")}


def _v3_request(credentials):
    get = credentials.get
    if get("user_id"):
        user = {"id": get("user_id")}
    else:
        user = {"name": get("username"), "domain": _named(get, "user_domain")}
    user["password"] = credentials.password
    if get("project_id"):
        scope = {"project": {"id": get("project_id")}}
    elif get("project_name"):
        scope = {"project": {"name": get("project_name"), "domain": _named(get, "project_domain")}}
    else:
        scope = {"domain": _named(get, "domain")}
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}, "scope": scope}}


def _post(session, url, body, credentials):
    """POST *body* to Keystone: the response of a 2xx, else :class:`HostError`."""
    import requests

    timeout = _timeout(session)
    where = "Keystone at %s" % url
    for attempt in (1, 2):
        try:
            # verify given per request: requests lets $REQUESTS_CA_BUNDLE override session.verify
            response = session.post(url, json=body, headers={"Accept": "application/json"},
                                    timeout=timeout, verify=session.verify, allow_redirects=False)
        except requests.exceptions.SSLError:
            raise HostError("%s: TLS verification failed; set [quantum] ca_file to the CA bundle that signed "
                            "Keystone's certificate (or fix auth_url in %s)" % (where, credentials.path)) from None
        except requests.exceptions.Timeout as err:
            waited = timeout[0] if isinstance(err, requests.exceptions.ConnectTimeout) else timeout[1]
            raise HostError("%s did not answer within %g s; check that Keystone is up, or raise "
                            "[quantum] connect_timeout/read_timeout" % (where, waited)) from None
        except requests.exceptions.ConnectionError as err:
            if attempt == 1:
                time.sleep(RETRY_DELAY)
                continue
            raise HostError("%s is unreachable (%s); check auth_url in %s and that Keystone is up"
                            % (where, _reason(err), credentials.path)) from None
        except requests.exceptions.RequestException as err:
            raise HostError("%s: request failed (%s); check auth_url in %s"
                            % (where, type(err).__name__, credentials.path)) from None
        if response.status_code in RETRY_STATUSES and attempt == 1:
            time.sleep(RETRY_DELAY)
            continue
        break
    status = response.status_code
    if 200 <= status < 300:
        return response
    detail = _scrub(_keystone_message(response), credentials, None)
    if status == 401:
        # Keystone says 401 for a wrong password and for an unknown user, project or domain alike.
        raise HostError("%s rejected the credentials of %s (HTTP 401%s); fix the user, password, project or "
                        "domains in %s" % (where, credentials.who(), detail, credentials.path))
    if 400 <= status < 500:
        raise HostError("%s refused a token to %s (HTTP %d%s); check the user, project and domains in %s"
                        % (where, credentials.who(), status, detail, credentials.path))
    raise HostError("%s failed (HTTP %d%s); see Keystone's log" % (where, status, detail))


def _reason(err):
    """The innermost OS error of a connection error (e.g. 'Connection refused'), else its type."""
    pending, seen = [err], set()
    while pending:
        cause = pending.pop(0)
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        # requests wraps urllib3's MaxRetryError (args), which names its cause in .reason
        nested = [getattr(cause, "reason", None), cause.__cause__, cause.__context__] + list(cause.args)
        pending.extend(n for n in nested if isinstance(n, BaseException))
    return type(err).__name__


def _keystone_message(response):
    """``: Keystone's error message`` from an error document, or ''."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return ""
    return ": " + one_line(str(message))[:200] if message else ""


def _scrub(message, credentials, token):
    """*message* without the password or the token, whatever put them there."""
    for secret in (credentials.password, token.value if token is not None else None):
        if secret:
            message = message.replace(secret, "***")
    return message


def _timestamp(text):
    """Seconds since the epoch of Keystone's ISO 8601 times ('Z', an offset or naive UTC)."""
    from datetime import datetime, timezone

    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _token_times(expires, issued, started):
    """Local (issued, expires): the lifetime Keystone gave, counted from when we asked, so
    a skewed clock on either side does not matter when Keystone says when it issued."""
    expires = _timestamp(expires)
    if issued:
        lifetime = expires - _timestamp(issued)
        if lifetime > 0:
            return started, started + lifetime
    return started, expires


def _v3_token(response, started):
    value = response.headers.get("X-Subject-Token")
    try:
        token = response.json()["token"]
        issued, expires = _token_times(token["expires_at"], token.get("issued_at"), started)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return Token(value, issued, expires) if _valid_token_text(value) else None


def _v2_token(response, started):
    try:
        token = response.json()["access"]["token"]
        value = token["id"]
        issued, expires = _token_times(token["expires"], token.get("issued_at"), started)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return Token(value, issued, expires) if _valid_token_text(value) else None

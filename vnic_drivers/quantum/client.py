"""A small, bounded client for the Quantum (Neutron) v2.0 API, on requests.

Bounds, so a provider that is down or slow never hangs a VM start:

- every request has ``[quantum] connect_timeout`` / ``read_timeout``, cut to what is left
  of the run's budget (``[quantum] budget``: all lookups of one hook run, retries and
  back-off included);
- connection errors, timeouts and 5xx are retried ``[quantum] retries`` times with a
  doubling back-off; 4xx never (the answer will not change); a 401 asks the auth for a
  fresh token once;
- once the provider was unreachable, later calls in the same run fail at once instead of
  paying the timeouts again.

Failures are :class:`ApiError` (a :class:`HostError`: one line, no secret; 404 is
:class:`NotFound`). The session ignores the environment (``trust_env = False``): VDSM
puts custom properties in the hook's environment, and none may set a proxy or a CA.
"""

import time

from .. import naming
from ..errors import HookError, HostError
from . import auth as auth_module

API = "/v2.0"
BACKOFF_FIRST = 0.2
# Fields the hooks and doctor read; asking only for them keeps answers small.
PORT_FIELDS = ("id", "network_id", "status", "binding:host_id", "binding:vif_type")


class ApiError(HostError):
    """The API could not answer (unreachable, timeout, TLS, an HTTP error, bad JSON)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class NotFound(ApiError):
    """404: the port or network does not exist (any more)."""


class Client:
    """Requests to one endpoint, sharing one session, one auth and one time budget."""

    def __init__(self, config, budget=None, clock=time.monotonic, sleep=time.sleep):
        self.url = config.get("quantum", "url")
        self._timeouts = (config.get("quantum", "connect_timeout"), config.get("quantum", "read_timeout"))
        self._retries = config.get("quantum", "retries")
        self._ca_file = config.get("quantum", "ca_file")
        self._clock, self._sleep = clock, sleep
        self.budget = config.get("quantum", "budget") if budget is None else budget
        self._deadline = clock() + self.budget
        self._auth = auth_module.for_config(config)
        self._session = None
        self._headers = None
        self._down = None  # the ApiError that showed the provider unreachable

    def __repr__(self):
        return "Client(url=%s, auth=%r)" % (self.url, self._auth)

    def remaining(self):
        return max(0.0, self._deadline - self._clock())

    def extend(self, seconds):
        """Allow *seconds* more from now (the ACTIVE wait has its own bound)."""
        self._deadline = max(self._deadline, self._clock() + seconds)

    # --- the resources -------------------------------------------------------------

    def port(self, port_id):
        port = self._get("%s/ports/%s" % (API, port_id), "port", fields=PORT_FIELDS)
        network_id = port.get("network_id")
        if network_id is not None:
            port["network_id"] = self._valid(naming.uuid, network_id, "port %s network_id" % port_id)
        return port

    def network(self, network_id):
        network = self._get("%s/networks/%s" % (API, network_id), "network", fields=("id", "mtu"))
        if network.get("mtu") not in (None, 0):
            network["mtu"] = self._valid(naming.mtu, str(network["mtu"]), "network %s mtu" % network_id)
        return network

    def agents(self, host):
        return self._get(API + "/agents", "agents", host=host)

    def ports_on_host(self, host):
        return self._get(API + "/ports", "ports", fields=PORT_FIELDS, **{"binding:host_id": host})

    # --- one GET ---------------------------------------------------------------------

    def _valid(self, parse, value, what):
        try:
            return parse(value, what)
        except HookError as err:
            raise ApiError("Quantum API %s answered an invalid %s" % (self.url, err)) from None

    def _session_for(self):
        if self._session is None:
            import requests  # only when an endpoint is configured

            session = requests.Session()
            session.trust_env = False
            session.verify = self._ca_file or True
            session.headers["Accept"] = "application/json"
            self._session = session
        return self._session

    def _get(self, path, key, **params):
        """The JSON member *key* of ``GET url+path?params``, within the bounds above."""
        import requests

        if self._down is not None:
            raise self._down
        session = self._session_for()
        where = "Quantum API %s: GET %s" % (self.url, path)
        attempt, refreshed, refresh_now = 0, False, False
        while True:
            remaining = self.remaining()
            if remaining <= 0:
                raise ApiError("%s: not tried, the run's [quantum] budget of %gs is spent" % (where, self.budget))
            timeout = (min(self._timeouts[0], remaining), min(self._timeouts[1], remaining))
            session.quantum_timeout = timeout
            failure = status = None
            try:
                if self._headers is None or refresh_now:
                    self._headers = self._auth.headers(session, refresh=refresh_now)
                    refresh_now = False
                response = session.get(self.url + path, params=params, headers=self._headers,
                                       timeout=timeout, verify=session.verify, allow_redirects=False)
            except requests.exceptions.SSLError:
                # Not transient: retrying cannot make the certificate verify.
                raise ApiError("%s: TLS verification failed: set [quantum] ca_file to the CA that "
                               "signed the server's certificate" % where) from None
            except requests.exceptions.ConnectTimeout:
                failure = "no connection within %gs" % timeout[0]
            except requests.exceptions.ReadTimeout:
                failure = "no answer within %gs" % timeout[1]
            except requests.exceptions.ConnectionError as err:
                failure = _connection_reason(err)
            except requests.exceptions.RequestException as err:
                raise ApiError("%s: %s" % (where, type(err).__name__)) from None
            else:
                status = response.status_code
                if status == 401 and not refreshed:
                    refreshed = refresh_now = True  # a stale token: one fresh one, one retry
                    continue
                if status < 300:
                    return self._member(response, key, where)
                failure = "HTTP %d%s" % (status, _server_message(response))
                if status < 500:
                    error = NotFound if status == 404 else ApiError
                    raise error("%s: %s" % (where, failure), status=status)
            pause = BACKOFF_FIRST * 2 ** attempt
            if attempt >= self._retries or pause >= self.remaining():
                tries = " (%d attempts)" % (attempt + 1) if attempt else ""
                error = ApiError("%s: %s%s" % (where, failure, tries), status=status)
                if status is None:
                    self._down = error
                raise error
            attempt += 1
            self._sleep(pause)

    def _member(self, response, key, where):
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get(key), (dict, list)):
            raise ApiError("%s: the answer is not a Quantum %r document" % (where, key))
        return body[key]


def _connection_reason(err):
    """A short reason for a requests ConnectionError (its str() is a nested repr)."""
    cause, depth = err, 0
    while cause is not None and depth < 10:  # the chain of causes, not a cycle
        depth += 1
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if "Name or service not known" in str(cause) or "nodename nor servname" in str(cause):
            return "host name does not resolve"
        # requests wraps urllib3's MaxRetryError (args[0]), which holds the error in .reason.
        wrapped = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        cause = getattr(cause, "reason", None) or cause.__cause__ or cause.__context__ or wrapped
        if not isinstance(cause, BaseException):
            cause = None
    text = str(err)
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the server closed the connection without answering"
    if "refused" in text:
        return "connection refused"
    return "cannot connect (%s)" % type(err).__name__


def _server_message(response):
    """``: message`` from a Neutron error body, short; empty when there is none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = None
    if isinstance(body, dict):
        error = body.get("NeutronError") or body.get("QuantumError") or body.get("error")
        message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str) or not message.strip():
        return ""
    message = " ".join(message.split())
    return ": " + (message[:160] + "..." if len(message) > 160 else message)

"""Logging as VDSM needs it: one line per message on stderr, optional syslog, no secrets.

Syslog is a real unix datagram socket in a temp directory, read back as a syslog daemon
would; the hook runs as VDSM runs it (its own process, stderr captured).
"""

import io
import os
import socket

import pytest

from tests.conftest import quantum_properties
from tests.vdsm import REPO, run_hook
from vnic_drivers import log

with open(os.path.join(REPO, "examples", "ovs_vnic.xml"), "rb") as _stream:
    DEVICE = _stream.read()


@pytest.fixture
def logger_to(request):
    """setup() a fresh package logger writing to a StringIO; reset afterwards."""
    stream = io.StringIO()

    def make(**kwargs):
        return log.setup("test_hook", stream=stream, **kwargs), stream

    yield make
    log.setup("test")  # closes the syslog socket, back to stderr


@pytest.mark.parametrize("text,secret", [
    ("connect with password=hunter2 now", "hunter2"),
    ("admin_password: hunter2", "hunter2"),
    ('{"auth_token": "gAAAAAB-xyz", "port": 1}', "gAAAAAB-xyz"),
    ("Authorization: Bearer eyJhbGciOi", "eyJhbGciOi"),
    ("X-Auth-Token=abc123def", "abc123def"),
    ("url http://quantum:s3cret@controller:9696/v2.0", "s3cret"),
    ("api_key=AKIA1234 secret=shh", "AKIA1234"),
])
def test_secrets_are_masked(text, secret):
    masked = log.redact(text)
    assert secret not in masked and log.MASK in masked


def test_ids_and_device_names_are_not_masked():
    text = "vNIC 0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9 on tap0a1b2c3d-4e token_bucket off"
    assert log.redact(text) == text


def test_one_line_per_message_and_level(logger_to):
    logger, stream = logger_to(level="INFO")
    logger.debug("not shown")
    logger.error("first\nsecond line\r\n\tthird \x1b[31m")
    assert stream.getvalue() == (
        "quantum-vnic test_hook: ERROR: first | second line | third \\x1b[31m\n")


def test_syslog_gets_one_folded_line_per_message(logger_to, tmp_path):
    address = str(tmp_path / "log")
    daemon = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    daemon.bind(address)
    daemon.settimeout(5)
    try:
        logger, stream = logger_to(level="DEBUG", syslog=True, syslog_address=address)
        logger.info("plugged password=hunter2")
        try:
            raise ValueError("boom\nbang")
        except ValueError:
            logger.exception("a bug")
        first, second = daemon.recv(65536).decode(), daemon.recv(65536).decode()
    finally:
        daemon.close()
    assert first.startswith("<30>quantum-vnic[%d]: test_hook: INFO: plugged password=***" % os.getpid())
    assert "\n" not in second.rstrip("\x00") and "Traceback" in second and "ValueError: boom | bang" in second
    # stderr keeps the traceback readable for the bug report.
    assert stream.getvalue().count("\n") > 3


def test_missing_syslog_is_one_warning_not_a_traceback(logger_to, tmp_path):
    logger, stream = logger_to(syslog=True, syslog_address=str(tmp_path / "no-such-socket"))
    logger.error("still on stderr")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "syslog unavailable" in lines[0] and lines[1].endswith("ERROR: still on stderr")


def test_hook_never_echoes_a_secret_from_a_property():
    properties = quantum_properties("OPEN_VSWITCH", port_id="token=s3cr3t-value")
    run = run_hook("before_device_create", DEVICE, properties)
    assert run.returncode == 2
    assert "s3cr3t" not in run.stderr and "token=***" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_hook_log_level_comes_from_the_config():
    properties = quantum_properties("OPEN_VSWITCH")
    quiet = run_hook("before_device_create", DEVICE, properties, config="[hook]\nlog_level = ERROR\n")
    chatty = run_hook("before_device_create", DEVICE, properties, config="[hook]\nlog_level = DEBUG\n")
    assert quiet.returncode == chatty.returncode == 0
    assert quiet.stderr == ""
    assert "DEBUG" in chatty.stderr and all(line.startswith("quantum-vnic before_device_create: ")
                                            for line in chatty.stderr.splitlines())

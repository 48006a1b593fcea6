"""Validators, device names and the config file, on their own (no processes, no host)."""

import pytest

from vnic_drivers import config, naming
from vnic_drivers.errors import InputError

PORT = "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"


def test_names_follow_the_agents_rules():
    assert naming.tap_name(PORT) == "tap0a1b2c3d-4e"
    assert naming.linux_bridge_name(PORT) == "brq0a1b2c3d-4e"
    assert naming.hybrid_names(PORT) == ("qbr0a1b2c3d-4e", "qvb0a1b2c3d-4e", "qvo0a1b2c3d-4e")
    assert all(len(name) == 14 <= naming.MAX_DEVICE_NAME for name in naming.hybrid_names(PORT))


def test_uuid_is_normalised_to_lower_case():
    assert naming.uuid(PORT.upper(), "vnic_id") == PORT


@pytest.mark.parametrize("value", ["", "0a1b2c3d", PORT + "0", PORT.replace("-", ""), " ", "../../etc",
                                   PORT[:-1] + "g", PORT + "\n" + PORT, None, 42])
def test_bad_uuids_refused(value):
    with pytest.raises(InputError, match="vnic_id"):
        naming.uuid(value, "vnic_id")


@pytest.mark.parametrize("value", ["br-int", "tap0a1b2c3d-4e", "eth0.100", "a", "x" * 15])
def test_good_device_names(value):
    assert naming.device_name(value, "dev") == value


@pytest.mark.parametrize("value", ["", "x" * 16, "br int", "br/int", "br;int", "-br", ".", "a:b",
                                   "br\nint", "brïnt", ";vdsmdummy;", None])
def test_bad_device_names_refused(value):
    with pytest.raises(InputError, match="dev"):
        naming.device_name(value, "dev")


def test_dummy_bridge_allowed_only_where_asked():
    assert naming.device_name(";vdsmdummy;", "bridge", allow_dummy=True) == ";vdsmdummy;"
    with pytest.raises(InputError):
        naming.device_name(";other;", "bridge", allow_dummy=True)


@pytest.mark.parametrize("value,expected", [("1500", 1500), (" 9000 ", 9000), ("68", 68), ("65535", 65535)])
def test_mtu(value, expected):
    assert naming.mtu(value) == expected


@pytest.mark.parametrize("value", ["67", "65536", "1.5", "", "0x500", "-1"])
def test_bad_mtu(value):
    with pytest.raises(InputError, match="MTU"):
        naming.mtu(value)


def test_security_groups_tokens():
    assert naming.token_list("sg-1, 2f0e,web", "security_groups") == ("sg-1", "2f0e", "web")
    with pytest.raises(InputError):
        naming.token_list("a;b", "security_groups")


def test_config_defaults_without_file(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "_selected_path", None)
    monkeypatch.setattr(config, "DEFAULT_PATH", str(tmp_path / "absent.conf"))
    loaded = config.load()
    assert loaded.get("openvswitch", "integration_bridge") == "br-int"
    assert loaded.get("linux_bridge", "dummy_bridge") == ";vdsmdummy;"
    assert loaded.get("hook", "mtu") is None


def test_config_file_overrides(tmp_path):
    path = tmp_path / "q.conf"
    path.write_text("[hook]\nmtu = 1400\nlog_level = debug\n[linux_bridge]\nmode = ethernet\n")
    loaded = config.load(str(path))
    assert (loaded.get("hook", "mtu"), loaded.get("hook", "log_level")) == (1400, "DEBUG")
    assert loaded.get("linux_bridge", "mode") == "ethernet"
    assert loaded.get("openvswitch", "plug") == "virtualport"


def test_every_schema_default_parses():
    defaults = config.defaults().as_dict()
    assert set(defaults) == set(config.SCHEMA)

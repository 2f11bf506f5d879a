"""Settings precedence: flags, then environment, then the TOML file, then defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from personabid.config import Settings, load_settings
from personabid.errors import ConfigError


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "personabid.toml"
    path.write_text(text)
    return path


def test_defaults_serve_on_loopback() -> None:
    settings = load_settings({}, environ={})
    assert (settings.grpc_addr, settings.metrics_addr) == ("127.0.0.1:50051", "127.0.0.1:9464")


def test_file_overrides_defaults(tmp_path: Path) -> None:
    path = config_file(tmp_path, 'grpc_addr = "127.0.0.1:7000"\ntop_k = 50\n')
    settings = load_settings({}, environ={}, config_file=path)
    assert (settings.grpc_addr, settings.top_k) == ("127.0.0.1:7000", 50)


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = config_file(tmp_path, 'grpc_addr = "127.0.0.1:7000"\n')
    settings = load_settings({}, environ={"PERSONABID_GRPC_ADDR": "127.0.0.1:7001"}, config_file=path)
    assert settings.grpc_addr == "127.0.0.1:7001"


def test_flag_overrides_environment() -> None:
    settings = load_settings(
        {"grpc_addr": "127.0.0.1:7002", "top_k": None}, environ={"PERSONABID_GRPC_ADDR": "127.0.0.1:7001"}
    )
    assert settings.grpc_addr == "127.0.0.1:7002"
    assert settings.top_k == Settings.top_k


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    path = config_file(tmp_path, "min_tmax_ms = 9\n")
    assert load_settings({}, environ={"PERSONABID_CONFIG": str(path)}).min_tmax_ms == 9


def test_unknown_setting_in_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="grpc_adr"):
        load_settings({}, environ={}, config_file=config_file(tmp_path, 'grpc_adr = "x"\n'))


def test_setting_of_the_wrong_type_is_an_error() -> None:
    with pytest.raises(ConfigError, match="top_k='many'"):
        load_settings({}, environ={"PERSONABID_TOP_K": "many"})


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"grpc_addr": "localhost"}, "grpc_addr='localhost'"),
        ({"top_k": 0}, "top_k=0"),
        ({"grace_seconds": -1}, "grace_seconds=-1"),
        ({"profile_store": "files"}, "profile_store='files'"),
        ({"profile_store": "redis"}, "profile_store='redis' needs profile_redis_url or redis_url"),
        ({"profile_ids": "buyeruid,cookie"}, "profile_ids='buyeruid,cookie'"),
        ({"profile_ids": "id,id"}, "profile_ids='id,id'"),
        ({"blend_context": -0.5}, "blend_context=-0.5"),
        ({"blend_profile": float("inf")}, "blend_profile=inf"),
        ({"context_match_scale": 0.0}, "context_match_scale=0.0"),
        ({"profile_timeout_ms": 0.0}, "profile_timeout_ms=0.0"),
    ],
)
def test_unusable_value_is_an_error_naming_it(flags: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, environ={})


def test_profiles_read_their_own_redis_else_the_spend_one() -> None:
    shared = load_settings({"profile_store": "redis", "redis_url": "redis://127.0.0.1:6379/0"}, environ={})
    own = load_settings(
        {"profile_store": "redis", "redis_url": "redis://a:6379/0", "profile_redis_url": "redis://b:6379/0"},
        environ={},
    )
    assert shared.profiles_redis == "redis://127.0.0.1:6379/0"
    assert own.profiles_redis == "redis://b:6379/0"


def test_profile_ids_are_read_in_order() -> None:
    assert load_settings({"profile_ids": "ifa, buyeruid"}, environ={}).profile_id_order == ("ifa", "buyeruid")

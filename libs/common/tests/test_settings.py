"""Settings come from the environment and bad values stop the process with a readable error."""

from __future__ import annotations

import pytest
from pydantic_settings import SettingsConfigDict

from acme_common._settings import ClientSettings, ServerSettings, load_settings


class DemoClientSettings(ClientSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", frozen=True, extra="ignore")


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRPC_PORT", "GRPC_HOST", "GRPC_GRACE_PERIOD", "LOG_FORMAT", "INSTANCE_NAME"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(ServerSettings)
    assert (settings.grpc_host, settings.grpc_port, settings.grpc_grace_period) == (
        "0.0.0.0",
        50051,
        10.0,
    )
    assert settings.log_format == "json"
    assert settings.instance_name


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_PORT", "6000")
    monkeypatch.setenv("LOG_FORMAT", "text")
    monkeypatch.setenv("INSTANCE_NAME", "replica-7")
    settings = load_settings(ServerSettings)
    assert (settings.grpc_port, settings.log_format, settings.instance_name) == (
        6000,
        "text",
        "replica-7",
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [("GRPC_PORT", "notaport"), ("GRPC_PORT", "70000"), ("LOG_FORMAT", "xml")],
)
def test_invalid_values_exit_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as raised:
        load_settings(ServerSettings)
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert f"{variable}:" in error
    assert repr(value) in error


@pytest.mark.parametrize("token", ["tok\n", "tok-\u00e9", "tok en", ""])
def test_a_token_grpc_cannot_send_exits_2_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], token: str
) -> None:
    monkeypatch.setenv("DEMO_TARGET", "127.0.0.1:1")
    monkeypatch.setenv("DEMO_AUTH_TOKEN", token)
    with pytest.raises(SystemExit) as raised:
        load_settings(DemoClientSettings)
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert "DEMO_AUTH_TOKEN: must be visible ASCII" in error
    assert "tok" not in error


def test_a_visible_ascii_token_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_TARGET", "127.0.0.1:1")
    monkeypatch.setenv("DEMO_AUTH_TOKEN", "Zm9v-._~+/=")
    token = load_settings(DemoClientSettings).auth_token
    assert token is not None
    assert token.get_secret_value() == "Zm9v-._~+/="

"""Configuration: wrong values fail at start-up naming the variable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import Config, ConfigError, load_config, parse_config
from bot.transport import factory
from bot.transport.simulated import SimulatedTransport

SID = "AC" + "0" * 32


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL"),
        ({"PUBLIC_BASE_URL": "checkin.example.org"}, "PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "ftp://checkin.example.org"}, "PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "https://x.org/?a=1"}, "PUBLIC_BASE_URL"),
        ({"TWILIO_API_BASE": "localhost:4010"}, "TWILIO_API_BASE"),
        ({"TWILIO_ACCOUNT_SID": SID}, "TWILIO_AUTH_TOKEN"),
        ({"TWILIO_AUTH_TOKEN": "secret"}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": "t"}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": "t"}, "TWILIO_FROM_NUMBER"),
        ({"TWILIO_FROM_NUMBER": "555-0100"}, "TWILIO_FROM_NUMBER"),
        ({"TWILIO_MESSAGING_SERVICE_SID": "MGnope"}, "TWILIO_MESSAGING_SERVICE_SID"),
        ({"TWILIO_WHATSAPP_FROM": "whatsapp:5550100"}, "TWILIO_WHATSAPP_FROM"),
        ({"PROGRAM_TIMEZONE": "Mars/Olympus_Mons"}, "PROGRAM_TIMEZONE"),
        ({"PROGRAM_TIMEZONE": "EST5EDT "}, None),
        ({"PROGRAM_PHONE": "call us"}, "PROGRAM_PHONE"),
        ({"SEND_RATE_PER_SECOND": "fast"}, "SEND_RATE_PER_SECOND"),
    ],
)
def test_wrong_value_fails_naming_the_variable(env: dict[str, str], variable: str | None) -> None:
    if variable is None:
        parse_config(env)
        return
    with pytest.raises(ConfigError) as caught:
        parse_config(env)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


def test_defaults_give_sqlite_under_instance_and_no_twilio() -> None:
    config = parse_config({})
    assert config.database_url.startswith("sqlite:///instance/")
    assert not config.twilio_enabled
    assert config.twilio_api_base == "https://api.twilio.com"


def test_whatsapp_from_accepts_both_spellings() -> None:
    assert parse_config({"TWILIO_WHATSAPP_FROM": "+14155550100"}).twilio_whatsapp_from == (
        "whatsapp:+14155550100"
    )
    assert parse_config({"TWILIO_WHATSAPP_FROM": "whatsapp:+14155550100"}).twilio_whatsapp_from == (
        "whatsapp:+14155550100"
    )


def test_plain_postgresql_url_uses_psycopg3() -> None:
    config = parse_config({"DATABASE_URL": "postgresql://u@h/db"})
    assert config.database_url.startswith("postgresql+psycopg://")


def test_secret_key_is_required_to_serve_requests() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({}).require_secret_key()
    assert caught.value.variable == "SECRET_KEY"


def test_a_secret_key_shorter_than_32_characters_fails_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"SECRET_KEY": "x" * 31}).require_secret_key()
    assert caught.value.variable == "SECRET_KEY"
    assert "at least 32" in str(caught.value)
    assert parse_config({"SECRET_KEY": "k" * 32}).require_secret_key() == "k" * 32


def test_the_app_refuses_a_short_secret_key_outside_tests_and_the_demo() -> None:
    from bot import create_app

    short = Config(secret_key="x", database_url="sqlite://")
    with pytest.raises(ConfigError) as caught:
        create_app(short)
    assert caught.value.variable == "SECRET_KEY"
    assert create_app(short.with_overrides(demo=True)).secret_key == "x"
    assert create_app(short.with_overrides(testing=True)).secret_key == "x"


def test_dotenv_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PROGRAM_NAME=From Dotenv\nPROGRAM_PHONE=+1 555 010 0199\n")
    config = load_config(env_file, environ={"PROGRAM_NAME": "From Environment"})
    assert config.program_name == "From Environment"
    assert config.program_phone == "+1 555 010 0199"


def test_no_credentials_means_simulated_transport_with_one_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(factory, "_warned", False)
    caplog.set_level(logging.WARNING, logger="bot.transport.factory")
    first = factory.make_transport(parse_config({}))
    second = factory.make_transport(parse_config({}))
    assert isinstance(first, SimulatedTransport) and isinstance(second, SimulatedTransport)
    warnings = [r for r in caplog.records if "SIMULATED" in r.getMessage()]
    assert len(warnings) == 1

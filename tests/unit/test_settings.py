"""Settings come from the environment at start-up, converted to their types."""

from __future__ import annotations

import logging

import pytest

from libs.kit.settings import SettingsError, SettingsReader
from services.profile.settings import settings_from_env
from services.stub_externals.settings import build_settings as stub_build_settings
from services.sync_connector.settings import build_settings as connector_build_settings
from services.sync_connector.settings import settings_from_env as connector_settings_from_env


def test_defaults_without_environment() -> None:
    settings = settings_from_env({})
    assert settings.http.port == 8000
    assert settings.relay.topic == "customer-profile.v1"
    assert settings.kafka.enable_idempotence is True


def test_values_are_converted() -> None:
    settings = settings_from_env(
        {
            "PROFILE_HTTP_PORT": "9000",
            "PROFILE_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "PROFILE_RELAY_POLL_INTERVAL_S": "0.25",
        }
    )
    assert settings.http.port == 9000
    assert settings.kafka.enable_idempotence is False
    assert settings.relay.poll_interval_s == 0.25


def test_bad_value_is_a_clear_error() -> None:
    with pytest.raises(SettingsError, match="PROFILE_HTTP_"):
        settings_from_env({"PROFILE_HTTP_PORT": "eighty"})


def test_unknown_variables_with_the_prefix_are_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    environ = {
        "CONNECTOR_HTTP_PROT": "9000",  # misspelt
        "CONNECTOR_KAFKA_BOOTSTRAP_SERVER": "k:9092",  # misspelt (SERVERS)
        "CONNECTOR_HTTP_PORT": "9001",
        "CONNECTOR_DB_POOL_SIZE": "3",
        "CONNECTOR_ADMIN_TOKEN": "t",  # the admin CLI's, read there
        "PROFILE_HTTP_PROT": "1",  # another service's prefix
    }
    with caplog.at_level(logging.WARNING, logger="libs.kit.settings"):
        settings = connector_settings_from_env(environ)
    assert settings.http_port == 9001
    named = [record.getMessage() for record in caplog.records]
    assert len(named) == 2
    assert "CONNECTOR_HTTP_PROT" in named[0]
    assert "CONNECTOR_KAFKA_BOOTSTRAP_SERVER" in named[1]


def test_a_section_struct_is_not_a_variable_of_its_own() -> None:
    reader = SettingsReader({"STUBS_PORT": "1", "STUBS_PORTS": "2", "STUBS_SMTP_HOST": "h"}, "STUBS_")
    assert stub_build_settings(reader).port == 1
    assert reader.unknown_variables() == ["STUBS_PORTS"]
    reader = SettingsReader({"CONNECTOR_DATABASE": "{}", "CONNECTOR_DB_URL": "postgresql://x"}, "CONNECTOR_")
    connector_build_settings(reader)
    assert reader.unknown_variables() == ["CONNECTOR_DATABASE"]


def test_the_profile_service_names_its_unknown_variables_too(caplog: pytest.LogCaptureFixture) -> None:
    environ = {"PROFILE_HTTP_PROT": "9000", "PROFILE_DB_POOL_SIZE": "5", "PROFILE_LOG_LEVEL": "DEBUG"}
    with caplog.at_level(logging.WARNING, logger="libs.kit.settings"):
        settings = settings_from_env(environ)
    assert settings.database.pool_size == 5
    assert [record.getMessage().split(":")[0] for record in caplog.records] == [
        "unknown setting variable PROFILE_HTTP_PROT"
    ]

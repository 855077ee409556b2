"""Profile service settings, built once at start-up from the environment."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from libs.kit.crypto import CryptoSettings
from libs.kit.db import DatabaseSettings
from libs.kit.kafka import KafkaSettings
from libs.kit.settings import SettingsReader, read_settings
from libs.kit.tokens import TokenSettings
from libs.outbox.relay import RelaySettings
from services.profile.console.connector_client import ConnectorClientSettings
from services.profile.console.settings import ConsoleSettings
from services.profile.shared.ledger_settings import LedgerSettings

ENV_PREFIX = "PROFILE_"


class HttpSettings(msgspec.Struct, frozen=True):
    # Where the API listens (0.0.0.0 in a container).
    host: str = "127.0.0.1"
    port: int = 8000
    # Most application ids in one POST /v1/profile-updates/batch.
    max_batch_size: int = 100
    # Pooled connections idle this long are pinged before use; busier ones are not (libs/kit/db.py).
    db_ping_after_idle_s: float = 1.0
    # Worker processes (uvicorn) sharing the port: one per core lets the API use every core.
    workers: int = 1


class _Top(msgspec.Struct, frozen=True):
    # Log lines at this level and above (DEBUG, INFO, WARNING, ERROR), as JSON on stderr.
    log_level: str = "INFO"
    # The service.name of spans and log lines.
    service_name: str = "profile-service"
    # Where the relay serves /metrics, /health and /ready (port 0: it serves none).
    relay_metrics_port: int = 0
    relay_metrics_host: str = "127.0.0.1"
    # How often the outbox backlog gauges (pending rows, age of the oldest) are read from the database.
    backlog_refresh_s: float = 5.0


class ProfileSettings(_Top, frozen=True, kw_only=True):
    """The top-level settings (``_Top``, ``PROFILE_*``) and every section."""

    database: DatabaseSettings
    kafka: KafkaSettings
    relay: RelaySettings
    http: HttpSettings
    ledger: LedgerSettings = msgspec.field(default_factory=LedgerSettings)
    # PROFILE_AUTH_*: keys that sign and verify bearer tokens (libs/kit/tokens.py).
    auth: TokenSettings = msgspec.field(default_factory=TokenSettings)
    # PROFILE_CRYPTO_*: keys that seal contact data at rest (libs/kit/crypto.py).
    crypto: CryptoSettings = msgspec.field(default_factory=CryptoSettings)
    # PROFILE_CONSOLE_*: the admin console; PROFILE_CONNECTOR_*: the sync-connector's admin API it calls.
    console: ConsoleSettings = msgspec.field(default_factory=ConsoleSettings)
    connector: ConnectorClientSettings = msgspec.field(default_factory=ConnectorClientSettings)


# The API holds a connection per request in flight: with fewer pooled ones, busy moments open and
# close overflow connections (a connect plus type introspection each) instead of reusing them.
_DATABASE_DEFAULTS = {f"{ENV_PREFIX}DB_POOL_SIZE": "20"}


def settings_from_env(environ: Mapping[str, str]) -> ProfileSettings:
    """``PROFILE_DB_URL``, ``PROFILE_KAFKA_BOOTSTRAP_SERVERS``, ``PROFILE_RELAY_TOPIC``, ``PROFILE_HTTP_PORT``..."""
    return read_settings(build_settings, environ, ENV_PREFIX)


def build_settings(reader: SettingsReader) -> ProfileSettings:
    """The profile service's settings, section by section (the sections also make docs/settings.md)."""
    top = reader.load(_Top)
    return ProfileSettings(
        **msgspec.structs.asdict(top),
        database=reader.load(DatabaseSettings, "DB_", defaults=_DATABASE_DEFAULTS),
        kafka=reader.load(KafkaSettings, "KAFKA_"),
        relay=reader.load(RelaySettings, "RELAY_"),
        http=reader.load(HttpSettings, "HTTP_"),
        ledger=reader.load(LedgerSettings, "LEDGER_"),
        auth=reader.load(TokenSettings, "AUTH_"),
        crypto=reader.load(CryptoSettings, "CRYPTO_"),
        console=reader.load(ConsoleSettings, "CONSOLE_"),
        connector=reader.load(ConnectorClientSettings, "CONNECTOR_"),
    )

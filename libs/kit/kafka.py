"""aiokafka clients, driven by settings.

Every producer, consumer and admin client of the services is built here, so all of them connect
with the same security (TLS, SASL) from ``client_options``. Topics are created and checked against
the settings in ``libs.kit.kafka_topics``.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any, Literal

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.helpers import create_ssl_context

from libs.kit.settings import require_at_least_one

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
_SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
_SECRET_FIELDS = frozenset({"sasl_password", "ssl_key_password"})


class KafkaSettings(msgspec.Struct, frozen=True):
    # The cluster: host:port[,host:port...] of one or more brokers.
    bootstrap_servers: str = "127.0.0.1:9092"
    # Idempotent production keeps a partition's records in send order through retries.
    enable_idempotence: bool = True

    # Consumer group membership: a member silent for session_timeout_ms is dropped, heartbeats go every
    # heartbeat_interval_ms, and a rebalance waits rebalance_timeout_ms for the members to rejoin.
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    rebalance_timeout_ms: int = 10_000
    # How long any request to a broker may take before it fails (and is retried).
    request_timeout_ms: int = 15_000
    # The outbox relay submits complete record batches, which are sent at once: no linger for it.
    linger_ms: int = 5
    # The largest record batch a producer builds per partition, in bytes.
    max_batch_size: int = 1_048_576
    # The producer rejects a larger message itself (per message, before it reaches a batch);
    # keep it at or below the broker's message.max.bytes.
    max_request_size: int = 1_048_576
    # Names this service's connections in the broker's logs and quotas.
    client_id: str = "customer-profile"
    # How long an idle fetch waits on the broker: Apache Kafka answers as soon as a record
    # arrives, so a longer wait costs no latency and saves a wake-up per idle partition.
    fetch_max_wait_ms: int = 500
    # Topics this service creates get these (ensure_topic); the relay and the connector refuse to
    # start on a topic with fewer replicas or a lower min.insync.replicas (verify_topic). The defaults
    # suit the one-node embedded broker; production runs 3 replicas and min.insync.replicas 2, so an
    # acknowledged record (acks=all) is on at least two brokers.
    topic_partitions: int = 6
    replication_factor: int = 1
    min_insync_replicas: int = 1
    # Connection security: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS).
    security_protocol: SecurityProtocol = "PLAINTEXT"
    # TLS (SSL, SASL_SSL): the CA bundle that signed the brokers' certificates (PEM; empty: the
    # system's CAs), a client certificate and its key for mutual TLS (PEM; the key may be in the
    # certificate file), the key's password if it is encrypted, and whether the broker's name
    # must match its certificate (turn off only for brokers reached by an address not in it).
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_key_password: str = ""
    ssl_check_hostname: bool = True
    # SASL (SASL_PLAINTEXT, SASL_SSL): PLAIN sends the password itself, so use it over TLS only;
    # SCRAM proves it without sending it.
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: str = ""

    def __post_init__(self) -> None:
        for name in ("topic_partitions", "replication_factor", "min_insync_replicas"):
            require_at_least_one(self, name)
        if self.min_insync_replicas > self.replication_factor:
            msg = (
                f"min_insync_replicas ({self.min_insync_replicas}) must not exceed replication_factor "
                f"({self.replication_factor}): no write could ever be acknowledged"
            )
            raise ValueError(msg)
        self._check_security()

    def _check_security(self) -> None:
        protocol = self.security_protocol
        if self.uses_sasl and not (self.sasl_username and self.sasl_password):
            msg = f"security_protocol {protocol} needs sasl_username and sasl_password"
            raise ValueError(msg)
        if not self.uses_sasl and (sasl := [n for n in ("sasl_username", "sasl_password") if getattr(self, n)]):
            msg = f"{' and '.join(sasl)} set, but security_protocol {protocol} does not use SASL (SASL_SSL does)"
            raise ValueError(msg)
        tls_files = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password")
        if not self.uses_tls and (tls := [n for n in tls_files if getattr(self, n)]):
            msg = f"{', '.join(tls)} set, but security_protocol {protocol} does not use TLS (SSL or SASL_SSL do)"
            raise ValueError(msg)
        if (self.ssl_keyfile or self.ssl_key_password) and not self.ssl_certfile:
            msg = "ssl_keyfile and ssl_key_password belong to a client certificate: set ssl_certfile too"
            raise ValueError(msg)

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in _TLS_PROTOCOLS

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in _SASL_PROTOCOLS

    def __repr__(self) -> str:  # settings get printed; passwords must not
        shown = (
            f"{name}={'***' if name in _SECRET_FIELDS and getattr(self, name) else repr(getattr(self, name))}"
            for name in self.__struct_fields__
        )
        return f"KafkaSettings({', '.join(shown)})"


class KafkaConfigError(Exception):
    """The broker or a topic does not fit the settings: retrying does not help, the process must not start."""


class BrokerAccessError(KafkaConfigError):
    """The broker refused our credentials (SASL) or its certificate failed verification (TLS)."""


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    """The TLS context of a client (files are read now: a renewed certificate is used by new clients)."""
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.ssl_cafile or None,
            certfile=settings.ssl_certfile or None,
            keyfile=settings.ssl_keyfile or None,
            password=settings.ssl_key_password or None,
        )
    except (OSError, ssl.SSLError) as exc:
        files = {
            name: value for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if (value := getattr(settings, name))
        }
        msg = f"cannot load the Kafka TLS files {files}: {exc}"
        raise KafkaConfigError(msg) from exc
    context.check_hostname = settings.ssl_check_hostname
    return context


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Where and how every producer, consumer and admin client connects: servers, id, TLS and SASL."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.uses_tls:
        options["ssl_context"] = ssl_context(settings)
    if settings.uses_sasl:
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password,
        }
    return options


def make_producer(settings: KafkaSettings, transactional_id: str | None = None) -> AIOKafkaProducer:
    """A producer; with ``transactional_id`` a transactional one (idempotent, fenced by a newer
    producer of the same id: its open transaction is aborted and its sends fail)."""
    return AIOKafkaProducer(
        **client_options(settings),
        transactional_id=transactional_id,
        acks="all",
        enable_idempotence=settings.enable_idempotence or transactional_id is not None,
        linger_ms=settings.linger_ms,
        max_batch_size=settings.max_batch_size,
        max_request_size=settings.max_request_size,
        request_timeout_ms=settings.request_timeout_ms,
    )


def make_consumer(settings: KafkaSettings, topic: str, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        **client_options(settings),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        rebalance_timeout_ms=settings.rebalance_timeout_ms,
        request_timeout_ms=max(settings.request_timeout_ms, settings.session_timeout_ms + 5_000),
    )


def make_admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=settings.request_timeout_ms)


@contextlib.asynccontextmanager
async def admin_session(settings: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client. A broker that refuses our credentials or certificate is a
    ``BrokerAccessError`` saying so (aiokafka only reports that it could not bootstrap)."""
    admin = make_admin(settings)
    try:
        await admin.start()
    except kafka_errors.KafkaConnectionError:
        await admin.close()
        await check_broker_access(settings)
        raise
    try:
        yield admin
    finally:
        await admin.close()


async def check_broker_access(settings: KafkaSettings) -> None:
    """Connect to each bootstrap server until one lets us in; raise ``BrokerAccessError`` when one
    refuses the SASL credentials or its TLS certificate fails verification. Unreachable servers are
    skipped (an outage is not a configuration error)."""
    security = {key: value for key, value in client_options(settings).items() if key != "bootstrap_servers"}
    for host, port, _ in collect_hosts(settings.bootstrap_servers, randomize=False):
        try:
            connection = await create_conn(host, port, request_timeout_ms=settings.request_timeout_ms, **security)
        except (
            kafka_errors.SaslAuthenticationFailed,
            kafka_errors.UnsupportedSaslMechanismError,
            kafka_errors.IllegalSaslStateError,
        ) as exc:
            msg = (
                f"Kafka broker {host}:{port} refused SASL authentication of user {settings.sasl_username!r} "
                f"with {settings.sasl_mechanism} over {settings.security_protocol}: {exc}"
            )
            raise BrokerAccessError(msg) from exc
        except ssl.SSLCertVerificationError as exc:
            ca = settings.ssl_cafile or "the system's CAs"
            msg = (
                f"the TLS certificate of Kafka broker {host}:{port} failed verification against {ca} "
                f"(ssl_check_hostname={settings.ssl_check_hostname}): {exc.verify_message or exc}"
            )
            raise BrokerAccessError(msg) from exc
        except (OSError, TimeoutError, kafka_errors.KafkaError):
            continue
        connection.close()
        return

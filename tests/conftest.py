"""Real PostgreSQL and a real Apache Kafka broker for every test.

Resolution order (DESIGN.md): addresses from ``TEST_DATABASE_URL`` /
``TEST_KAFKA_BOOTSTRAP``; containers when a Docker engine answers; else embedded
PostgreSQL (pip wheel) and Apache Kafka 4.x in KRaft mode (Maven Central jars on the machine's Java).
Each test gets a fresh database cloned from a migrated template and fresh topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
import structlog

from libs.devstack.embedded import EmbeddedKafka, EmbeddedPostgres
from libs.kit.kafka import KafkaSettings
from libs.kit.kafka_topics import ensure_topic
from migrations.runner import upgrade_all
from tests.kafka_support import kafka_for_tests
from tests.python_source import pause_gc_in_every_parse

pause_gc_in_every_parse()


@pytest.fixture(autouse=True)
def _structlog_defaults() -> None:
    """A test that configured logging in-process (a CLI, an entrypoint) may have set a WARNING
    filter; a later test's ``capture_logs`` would then miss every INFO line."""
    structlog.reset_defaults()


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:  # noqa: BLE001 - any failure means "no engine"
        return False
    return True


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("TEST_ARTIFACTS_DIR", Path(tempfile.gettempdir()) / "profile-test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def postgres_server_url(artifacts_dir: Path) -> Iterator[str]:
    """A libpq URL of a PostgreSQL server whose ``postgres`` database we may use."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    with EmbeddedPostgres(log_file=artifacts_dir / "postgres.log") as server:
        yield server.url


@pytest.fixture(scope="session")
def kafka_bootstrap(artifacts_dir: Path) -> Iterator[str]:
    if bootstrap := os.environ.get("TEST_KAFKA_BOOTSTRAP"):
        yield bootstrap
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    with EmbeddedKafka(log_file=artifacts_dir / "kafka.log") as broker:
        yield broker.bootstrap


def _with_database(server_url: str, database: str) -> str:
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{database}"


async def _create_database(server_url: str, name: str, template: str | None = None) -> str:
    """``CREATE DATABASE`` (a copy of ``template`` if given); its libpq URL."""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await admin.close()
    return _with_database(server_url, name)


@pytest.fixture(scope="session")
def template_database(postgres_server_url: str) -> str:
    """A database built by running every migration, cloned by each test."""
    name = f"tmpl_{uuid.uuid4().hex[:12]}"
    url = asyncio.run(_create_database(postgres_server_url, name))
    with ThreadPoolExecutor(1) as pool:  # Alembic runs its own event loop
        pool.submit(upgrade_all, url).result()
    return name


@pytest.fixture(scope="session")
def clone_database(postgres_server_url: str, template_database: str) -> Callable[[str], str]:
    """For a fixture that outlives one test (a module's system): ``clone_database(prefix)`` makes a fresh,
    migrated database ``<prefix>_<random>`` and gives its libpq URL; safe inside a running event loop."""

    def clone(prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with ThreadPoolExecutor(1) as pool:
            made = _create_database(postgres_server_url, name, template_database)
            return pool.submit(asyncio.run, made).result()

    return clone


async def _drop_database(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(server_url)
    try:
        with contextlib.suppress(asyncpg.PostgresError):
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_url(postgres_server_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test (libpq URL)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield await _create_database(postgres_server_url, name, template_database)
    await _drop_database(postgres_server_url, name)


@pytest.fixture
async def empty_database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh database without any migration, for a test that runs them itself (libpq URL)."""
    name = f"mig_{uuid.uuid4().hex[:10]}"
    yield await _create_database(postgres_server_url, name)
    await _drop_database(postgres_server_url, name)


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return kafka_for_tests(kafka_bootstrap, topic_partitions=3)


@pytest.fixture
async def topic(kafka_settings: KafkaSettings) -> str:
    """A fresh topic for one test."""
    name = f"customer-profile.v1.test-{uuid.uuid4().hex[:10]}"
    await ensure_topic(kafka_settings, name)
    return name

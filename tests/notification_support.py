"""Helpers for the customer-notification tests: the real profile API on a socket, tokens, record queries."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import httpx
import uvicorn

from libs.kit.db import sqlalchemy_url
from libs.kit.kafka import KafkaSettings
from libs.kit.tokens import Role
from services.profile.app import create_app
from services.profile.settings import settings_from_env
from services.stub_externals.mail import RunningSmtp, start_smtp_server
from tests.auth_support import auth_env, bearer, token
from tests.connector_support import ConnectorHarness, connector_harness
from tests.polling import eventually

NOTIFIER_SUBJECT = "sync-connector"
# Contact data of the test customers: none of it may ever appear on the public topic.
PHONE = "+86 138 0013 8000"
PHONE_DIGITS = "+8613800138000"
EMAIL = "zhang.san@example.com"
ADDRESS = "北京市海淀区中关村大街 1 号"


def notifier_token() -> str:
    """The connector's service token: may read contact data and nothing else."""
    return token(Role.NOTIFIER, subject=NOTIFIER_SUBJECT)


@contextlib.asynccontextmanager
async def running_profile(database_url: str) -> AsyncIterator[str]:
    """The real profile service (``create_app``) served by uvicorn on a free loopback port; yields its URL."""
    settings = settings_from_env(
        {"PROFILE_DB_URL": sqlalchemy_url(database_url), "PROFILE_LOG_LEVEL": "WARNING", **auth_env()}
    )
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        if serving.done():
            serving.result()  # raises what stopped it
        return server.started

    try:
        await eventually(started, "the profile service to start", timeout=30)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@dataclass
class MailingHarness:
    """The connector's harness beside the real profile API and an SMTP server: what the customers' and
    the administrators' notification tests run on (each adds its own settings and checks)."""

    sync: ConnectorHarness
    smtp: RunningSmtp
    profile_url: str
    db: asyncpg.Connection


MailingHarnessT = TypeVar("MailingHarnessT", bound=MailingHarness)


@contextlib.asynccontextmanager
async def mailing_harness(
    kind: type[MailingHarnessT], database_url: str, kafka: KafkaSettings, topic: str
) -> AsyncIterator[MailingHarnessT]:
    smtp = await start_smtp_server()
    try:
        async with (
            connector_harness(database_url, kafka, topic) as sync,
            running_profile(database_url) as profile_url,
        ):
            yield kind(sync, smtp, profile_url, sync.db)
    finally:
        await smtp.stop()


async def create_customer(profile_url: str, customer_id: str, name: str = "张三", **fields: str | None) -> None:
    """Create a customer through the profile API at ``profile_url``: residential, unless ``fields`` (JSON names)
    say otherwise, with the ``fields`` that are not None besides."""
    body: dict[str, Any] = {"customerId": customer_id, "customerName": name, "accountType": "residential"}
    body.update({key: value for key, value in fields.items() if value is not None})
    async with httpx.AsyncClient(timeout=10, headers=bearer(Role.OPERATOR)) as client:
        response = await client.post(f"{profile_url}/v1/customers", json=body)
    assert response.status_code == 201, response.text


async def notification_records(db: asyncpg.Connection, event_id: str) -> dict[str, asyncpg.Record]:
    rows = await db.fetch("SELECT * FROM sync.notification_records WHERE event_id = $1", uuid.UUID(event_id))
    return {row["channel"]: row for row in rows}


async def notification_statuses(db: asyncpg.Connection, event_id: str) -> dict[str, str]:
    return {channel: row["status"] for channel, row in (await notification_records(db, event_id)).items()}


async def attempt_outcomes(db: asyncpg.Connection, record_id: int) -> list[str]:
    rows = await db.fetch(
        "SELECT outcome FROM sync.notification_attempts WHERE record_id = $1 ORDER BY attempt_no", record_id
    )
    return [row["outcome"] for row in rows]

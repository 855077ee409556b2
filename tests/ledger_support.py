"""Helpers for the customer-ledger tests: an in-process profile API on a fresh database, seeding, checks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
from litestar.testing import AsyncTestClient

from libs.kit.db import sqlalchemy_url
from services.profile.app import create_app
from services.profile.backups.maintenance import MaintenanceReport, MaintenanceTask
from services.profile.bootstrap import ProfileServices, SqlAdapters, open_services
from services.profile.settings import ProfileSettings, settings_from_env
from services.profile.shared.ledger_settings import LedgerSettings
from services.profile.shared.storage.contact_crypto import STORED_COLUMNS
from tests.auth_support import auth_env, authorize, contact_protector

PROBLEM = "https://customer-profile.example/problems/"
SMALL_POOL = {"PROFILE_DB_POOL_SIZE": "2", "PROFILE_DB_MAX_OVERFLOW": "0"}
Client = AsyncTestClient[Any]
# A customer record's content: every field of it a version keeps and an edit may change (JSON names).
RECORD = (
    "customerName",
    "customerCode",
    "customerType",
    "accountType",
    "status",
    "contactPerson",
    "contactPhone",
    "contactEmail",
    "contactAddress",
    "company",
    "industry",
    "region",
    "creditLimit",
    "salesPerson",
    "taxNumber",
    "remark",
)


def profile_settings(database_url: str, **env: str) -> ProfileSettings:
    """The profile's settings on the test's database, with the tests' token and contact keys."""
    return settings_from_env(
        {"PROFILE_DB_URL": sqlalchemy_url(database_url), "PROFILE_LOG_LEVEL": "WARNING", **auth_env(), **env}
    )


@contextlib.asynccontextmanager
async def profile_services(database_url: str, **env: str) -> AsyncIterator[ProfileServices[SqlAdapters]]:
    """The use cases as ``build_services`` makes them, on a small pool of their own."""
    async with open_services(profile_settings(database_url, **SMALL_POOL, **env)) as services:
        yield services


@contextlib.asynccontextmanager
async def profile_client(database_url: str, **env: str) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=create_app(profile_settings(database_url, **env))) as client:
        yield authorize(client)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["type"] == PROBLEM + code.lower().replace("_", "-")
    assert body["status"] == status
    return body


def customer_body(customer_id: str, name: str = "张三", **overrides: Any) -> dict[str, Any]:
    return {
        "customerId": customer_id,
        "customerName": name,
        "accountType": "residential",
        "contactPhone": "+86 138 0013 8000",
        "contactEmail": "zhang@example.com",
        "contactAddress": "北京市海淀区中关村大街 1 号",
        **overrides,
    }


async def create_customer(client: Client, customer_id: str, name: str = "张三", **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/customers", json=customer_body(customer_id, name, **overrides))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def patch_customer(
    client: Client, customer_id: str, changes: Mapping[str, Any], version: int | str | None
) -> httpx.Response:
    headers = {} if version is None else {"If-Match": version if isinstance(version, str) else f'"{version}"'}
    return await client.patch(f"/v1/customers/{customer_id}", json=dict(changes), headers=headers)


async def seed_customers(db: asyncpg.Connection, count: int, prefix: str = "C", start: int = 1) -> None:
    """``count`` live customers in one COPY (ids ``C000001``...; names ``客户1``...), contact data sealed."""
    protector = contact_protector()
    base = datetime.now(UTC) - timedelta(days=1)
    account_types = ("residential", "commercial", "industrial")
    records = []
    for g in range(start, start + count):
        customer_id = f"{prefix}{g:06d}"
        contact = {"contact_phone": f"138{g:08d}", "contact_email": f"c{g}@example.com", "contact_address": None}
        sealed = protector.seal(customer_id, contact)
        records.append(
            (
                customer_id,
                f"客户{g}",
                account_types[g % 3],
                "active",
                1,
                base + timedelta(milliseconds=g),
                base,
                *tuple(sealed[c] for c in STORED_COLUMNS),
            )
        )
    await db.copy_records_to_table(
        "customer_profiles",
        schema_name="profile",
        columns=[
            "customer_id",
            "customer_name",
            "account_type",
            "status",
            "version",
            "created_at",
            "updated_at",
            *list(STORED_COLUMNS),
        ],
        records=records,
    )


async def submit(client: Client, customer_id: str, new_name: str) -> str:
    """A name-change application for the customer; its id."""
    response = await client.post(
        "/v1/name-change-applications", json={"customerId": customer_id, "newName": new_name, "reason": "过户"}
    )
    assert response.status_code == 201, response.text
    application_id: str = response.json()["applicationId"]
    return application_id


async def fail_history_inserts(db: asyncpg.Connection, message: str) -> None:
    """A real failure inside an approval's transaction, right after its history row is written: the insert
    raises ``message`` until the test drops the trigger ``fail_history``."""
    await db.execute(f"""
        CREATE FUNCTION profile.fail_history() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{message}'; END $$;
        CREATE TRIGGER fail_history AFTER INSERT ON profile.name_change_history
            FOR EACH ROW EXECUTE FUNCTION profile.fail_history();
    """)


async def restore(client: Client, backup_id: str, **body: Any) -> dict[str, Any]:
    """Restore a backup point (``body``: the request's fields); the restore's report."""
    response = await client.post(f"/v1/backups/{backup_id}/restore", json=body)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def counts(db: asyncpg.Connection, customer_id: str) -> dict[str, int]:
    return {
        "history": await db.fetchval(
            "SELECT count(*) FROM profile.name_change_history WHERE customer_id=$1", customer_id
        ),
        "outbox": await db.fetchval("SELECT count(*) FROM profile.outbox WHERE aggregate_id=$1", customer_id),
        "completed": await db.fetchval(
            "SELECT count(*) FROM profile.name_change_applications WHERE customer_id=$1 AND status='completed'",
            customer_id,
        ),
    }


async def audit_rows(db: asyncpg.Connection, customer_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT event_type, actor_id, old_value::text AS old, new_value::text AS new, ip_address, user_agent "
        "FROM profile.audit_logs WHERE customer_id=$1 ORDER BY id",
        customer_id,
    )
    return rows


async def run_maintenance(
    database_url: str, *tasks: MaintenanceTask, settings: LedgerSettings | None = None
) -> MaintenanceReport:
    """The maintenance use case on its own engine, as the CLI runs it."""
    profile = profile_settings(database_url, **SMALL_POOL)
    async with open_services(msgspec.structs.replace(profile, ledger=settings or LedgerSettings())) as services:
        return await services.maintenance.run(tasks or tuple(MaintenanceTask))

"""Contact data at rest: sealed in every table that holds it, and migration profile_0004 seals old rows."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from migrations.runner import downgrade, upgrade, upgrade_all
from tests.auth_support import contact_protector, crypto_settings
from tests.ledger_support import customer_body, profile_client

PHONE, EMAIL, ADDRESS = "+86 137 0000 1234", "sealed@example.com", "上海市静安区密封路 1 号"


async def _plaintext_anywhere(db: asyncpg.Connection, *values: str) -> list[str]:
    """Every text and bytea column of every profile table that holds one of ``values``."""
    columns = await db.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'profile' AND data_type IN ('text', 'character varying', 'bytea', 'jsonb')"
    )
    found = []
    for column in columns:
        as_text = f'"{column["column_name"]}"::text'
        if column["data_type"] == "bytea":
            as_text = f"encode(\"{column['column_name']}\", 'escape')"
        for value in values:
            hits = await db.fetchval(
                f'SELECT count(*) FROM profile."{column["table_name"]}" WHERE position($1 in {as_text}) > 0', value
            )
            if hits:
                found.append(f"{column['table_name']}.{column['column_name']}: {value}")
    return found


async def test_no_table_holds_contact_data_in_plaintext(database_url: str) -> None:
    async with profile_client(database_url) as client:
        body = customer_body("S1", contactPhone=PHONE, contactEmail=EMAIL, contactAddress=ADDRESS)
        assert (await client.post("/v1/customers", json=body, headers={"Idempotency-Key": "s1"})).status_code == 201
        assert (await client.post("/v1/backups", json={"label": "sealed"})).status_code == 201
        edited = await client.patch(
            "/v1/customers/S1", json={"contactPhone": "13700005678"}, headers={"If-Match": '"1"'}
        )
        assert edited.status_code == 200
        assert (await client.get("/v1/customers/S1")).json()["contactEmail"] == EMAIL
    db = await asyncpg.connect(database_url)
    try:
        assert await db.fetchval("SELECT count(*) FROM profile.backup_customers") == 1
        assert await db.fetchval("SELECT count(*) FROM profile.idempotency_keys WHERE response_key_id IS NOT NULL") == 1
        assert await _plaintext_anywhere(db, PHONE, "13700005678", EMAIL, ADDRESS, "sealed@") == []
    finally:
        await db.close()


@pytest.fixture
async def pre_encryption_database(postgres_server_url: str) -> str:
    name = f"mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = postgres_server_url.rsplit("/", 1)[0] + f"/{name}"
    with ThreadPoolExecutor(1) as pool:
        await asyncio.get_running_loop().run_in_executor(pool, upgrade, url, "profile", "profile_0003")
    return url


async def test_the_migration_seals_existing_rows_and_the_downgrade_opens_them(pre_encryption_database: str) -> None:
    url = pre_encryption_database
    db = await asyncpg.connect(url)
    try:
        await db.execute(
            "INSERT INTO profile.customer_profiles (customer_id, customer_name, contact_phone, contact_email, "
            "contact_address, account_type, status, version, created_at, updated_at) "
            "VALUES ('OLD1', '旧客户', $1, $2, $3, 'residential', 'active', 1, now(), now()), "
            "('OLD2', 'No contact', NULL, NULL, NULL, 'commercial', 'active', 1, now(), now())",
            PHONE,
            EMAIL,
            ADDRESS,
        )
        await db.execute("INSERT INTO profile.backups VALUES ('BK-1', 'manual', NULL, 'x', now(), 2, 0)")
        await db.execute("INSERT INTO profile.backup_customers SELECT 'BK-1', * FROM profile.customer_profiles")
        await db.execute(
            "INSERT INTO profile.idempotency_keys (scope, idempotency_key, request_hash, state, status_code, "
            "response_headers, response_body, created_at, expires_at) "
            "VALUES ('POST /v1/customers', 'k', repeat('0', 64), 'completed', 201, '{}', $1, now(), "
            "now() + interval '1 day')",
            f'{{"contactPhone":"{PHONE}"}}'.encode(),
        )
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1) as pool:
            with pytest.raises(RuntimeError, match="PROFILE_CRYPTO_KEYS"):
                await loop.run_in_executor(pool, upgrade_all, url)  # rows to seal and no keys: refuse
            keys = {"profile_crypto": crypto_settings()}
            await loop.run_in_executor(pool, lambda: upgrade_all(url, keys))
            assert await _plaintext_anywhere(db, PHONE, EMAIL, ADDRESS) == []
            protector = contact_protector()
            for table in ("customer_profiles", "backup_customers"):
                row = await db.fetchrow(f"SELECT * FROM profile.{table} WHERE customer_id = 'OLD1'")
                assert protector.open(dict(row)) == {
                    "contact_phone": PHONE,
                    "contact_email": EMAIL,
                    "contact_address": ADDRESS,
                }
            found = await db.fetchval(
                "SELECT customer_id FROM profile.customer_profiles WHERE contact_phone_hash = $1",
                protector.phone_hash(PHONE),
            )
            assert found == "OLD1"
            stored = await db.fetchval("SELECT response_body FROM profile.idempotency_keys")
            assert PHONE.encode() in protector.open_response("POST /v1/customers", "k", stored)

            await loop.run_in_executor(pool, lambda: downgrade(url, "profile", "profile_0003", keys))
            assert (
                await db.fetchval("SELECT contact_email FROM profile.backup_customers WHERE customer_id='OLD1'")
                == EMAIL
            )
            assert await db.fetchval(
                "SELECT contact_address FROM profile.customer_profiles WHERE customer_id='OLD1'"
            ) == (ADDRESS)
    finally:
        await db.close()
        admin = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")
        await admin.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()

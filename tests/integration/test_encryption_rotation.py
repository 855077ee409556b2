"""Key rotation: 10,000 customers, their backup copies and a stored response re-sealed under a new key.

The rotation runs as the operator would run it (``python -m services.profile keys rotate``, a real
process with a progress bar); afterwards the old key is removed and everything still reads back.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import asyncpg

from libs.kit.crypto import CryptoSettings, FieldCipher, generate_key
from libs.kit.db import sqlalchemy_url
from services.profile.shared.storage.contact_crypto import ContactProtector
from tests.auth_support import auth_env, crypto_env, crypto_settings
from tests.ledger_support import customer_body, profile_client, seed_customers

CUSTOMERS = 10_000
NEW_KEY_ID = "test-aes-2"
NEW_PHONE = "+86 139 1111 2222"


async def _keys_command(database_url: str, crypto: CryptoSettings, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "PROFILE_DB_URL": sqlalchemy_url(database_url),
        "PROFILE_LOG_LEVEL": "WARNING",
        **auth_env(),
        **crypto_env(crypto),
        "PROFILE_CRYPTO_ROTATE_BATCH_SIZE": "1000",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.profile",
        "keys",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_rotation_reseals_every_copy_and_the_old_key_can_go(database_url: str, db: asyncpg.Connection) -> None:
    await seed_customers(db, CUSTOMERS)
    async with profile_client(database_url) as client:
        assert (await client.post("/v1/backups", json={"label": "before rotation"})).status_code == 201
        created = await client.post(
            "/v1/customers",
            json=customer_body("NEW1", contactPhone="+86 139 1111 2222", taxNumber="91110108MA01ABCDE1"),
            headers={"Idempotency-Key": "k1"},
        )
        assert created.status_code == 201

    old = crypto_settings()
    new_key = generate_key()
    both = CryptoSettings(keys={**old.keys, NEW_KEY_ID: new_key}, active_key_id=NEW_KEY_ID, hash_key=old.hash_key)
    code, out, err = await _keys_command(database_url, both, "rotate")
    assert code == 0, err
    assert json.loads(out) == {
        "activeKeyId": NEW_KEY_ID,
        "customers": CUSTOMERS + 1,
        "backupRows": CUSTOMERS,
        "storedResponses": 1,
        "versions": CUSTOMERS + 1,  # one version each so far
    }
    assert f"re-sealing {3 * CUSTOMERS + 3} rows under key {NEW_KEY_ID}" in err  # the progress bar's label
    code, out, err = await _keys_command(database_url, both, "rotate", "--check")
    assert (code, json.loads(out)["remaining"]) == (
        0,
        {"customer_profiles": 0, "customer_versions": 0, "backup_customers": 0, "idempotency_keys": 0},
    ), err

    # Every sealed value names the new key, in the live table, the versions and the backup copy.
    for table in ("customer_profiles", "customer_versions", "backup_customers"):
        rows = await db.fetch(
            f"SELECT contact_key_id, contact_phone_encrypted, contact_email_encrypted FROM profile.{table}"
        )
        assert {r["contact_key_id"] for r in rows} == {NEW_KEY_ID}
        assert {FieldCipher.key_id(r["contact_phone_encrypted"]) for r in rows} == {NEW_KEY_ID}
        assert {FieldCipher.key_id(r["contact_email_encrypted"]) for r in rows} == {NEW_KEY_ID}

    # Without the old key everything still opens: every one of the 10,000 rows and their copies.
    only_new = CryptoSettings(keys={NEW_KEY_ID: new_key}, active_key_id=NEW_KEY_ID, hash_key=old.hash_key)
    protector = ContactProtector.from_settings(only_new)
    for table in ("customer_profiles", "backup_customers"):
        rows = await db.fetch(f"SELECT * FROM profile.{table} WHERE customer_id LIKE 'C%'")
        assert len(rows) == CUSTOMERS
        for row in rows:
            number = int(row["customer_id"][1:])
            assert protector.open(dict(row)) == {
                "contact_phone": f"138{number:08d}",
                "contact_email": f"c{number}@example.com",
                "contact_address": None,
            }
    async with profile_client(database_url, **crypto_env(only_new)) as client:
        assert (await client.get("/v1/customers/C004242")).json()["contactPhone"] == "13800004242"
        found = (await client.get("/v1/customers", params={"contactPhone": "138-0000-4242"})).json()["items"]
        assert [c["customerId"] for c in found] == ["C004242"]
        replay = await client.post(
            "/v1/customers",
            json=customer_body("NEW1", contactPhone="+86 139 1111 2222", taxNumber="91110108MA01ABCDE1"),
            headers={"Idempotency-Key": "k1"},
        )
        assert (replay.headers["idempotent-replayed"], replay.json()["contactPhone"]) == ("true", NEW_PHONE)
        # The tax number, in the live row and in its version, opens with the new key alone.
        assert (await client.get("/v1/customers/NEW1")).json()["taxNumber"] == "91110108MA01ABCDE1"
        assert (await client.get("/v1/customers/NEW1/versions/1")).json()["taxNumber"] == "91110108MA01ABCDE1"


async def test_a_value_needs_its_key_and_its_own_row(database_url: str, db: asyncpg.Connection) -> None:
    """Tampering, or copying a sealed value to another customer, makes it unreadable (500), never wrong."""
    await seed_customers(db, 2)
    await db.execute(
        "UPDATE profile.customer_profiles SET contact_phone_encrypted = "
        "(SELECT contact_phone_encrypted FROM profile.customer_profiles WHERE customer_id = 'C000001') "
        "WHERE customer_id = 'C000002'"
    )
    async with profile_client(database_url) as client:
        assert (await client.get("/v1/customers/C000001")).status_code == 200
        moved = await client.get("/v1/customers/C000002")
        assert (moved.status_code, moved.json()["code"]) == (500, "ENCRYPTED_DATA_UNREADABLE")
        assert "138" not in moved.text
    code, _, err = await _keys_command(database_url, CryptoSettings(), "rotate")
    assert code == 2
    assert "CRYPTO_KEYS" in err

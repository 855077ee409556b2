"""The console's pages server-side: sign-in, roles, CSRF, errors in words, and each change through
its confirmation page into the ledger (recycle bin, outbox re-drive, backups), audited by name."""

from __future__ import annotations

import html

import asyncpg
import pytest

from libs.kit.tokens import Role
from tests.console_support import confirm_redirect, console_client, create_customer, csrf_of, rename, sign_in

pytestmark = pytest.mark.asyncio


async def test_pages_send_strangers_to_sign_in_and_back(database_url: str) -> None:
    async with console_client(database_url) as client:
        response = await client.get("/console/audit?actorId=x")
        assert response.status_code == 303
        assert response.headers["location"] == "/console/login?next=%2Fconsole%2Faudit%3FactorId%3Dx"
        login = await client.get(response.headers["location"])
        assert login.status_code == 200
        assert 'name="next" value="/console/audit?actorId=x"' in login.text
        assert '<label for="token">' in login.text
        assert 'class="skip-link"' in login.text
        css = await client.get("/console/static/console.css")
        assert css.status_code == 200
        assert ":focus-visible" in css.text

        signed_in = await sign_in(client, Role.VIEWER, subject="vera", login_path=response.headers["location"])
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/console/audit?actorId=x"
        (cookie,) = [c for c in signed_in.headers.get_list("set-cookie") if c.startswith("profile_session=")]
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/console"} <= attributes
        page = await client.get("/console/audit?actorId=x")
        assert page.status_code == 200
        assert "Signed in as <strong>vera</strong>" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


async def test_sign_in_refusals_are_in_words(database_url: str) -> None:
    async with console_client(database_url) as client:
        form = await client.get("/console/login")
        login_csrf = form.text.split('name="login_csrf" value="')[1].split('"')[0]
        bad = await client.post("/console/login", data={"token": "not-a-jwt", "login_csrf": login_csrf, "next": ""})
        assert bad.status_code == 401
        assert "That token was not accepted: the bearer token is not a JWT." in bad.text
        service = await sign_in(client, Role.AUDIT_SYSTEM, subject="audit-system")
        assert service.status_code == 403
        assert "do not open the console" in service.text
        forged = await client.post("/console/login", data={"token": "x", "login_csrf": "forged", "next": ""})
        assert forged.status_code == 403
        assert "The sign-in form expired" in forged.text
        assert "Traceback" not in bad.text + service.text + forged.text


async def test_roles_csrf_and_sign_out(database_url: str) -> None:
    async with console_client(database_url, Role.VIEWER, subject="vera") as client:
        outbox = await client.get("/console/outbox")
        assert outbox.status_code == 403
        assert outbox.headers["content-type"].startswith("text/html")
        assert "Your roles do not allow this: this needs one of the roles: admin." in outbox.text
        overview = await client.get("/console/")
        assert overview.status_code == 200
        assert 'href="/console/outbox"' not in overview.text  # no link to what the role cannot open
        assert "The sync-connector at http://127.0.0.1:9 cannot be read" in overview.text
        no_csrf = await client.post("/console/logout", data={})
        assert no_csrf.status_code == 403
        assert "This form has expired" in no_csrf.text
        out = await client.post("/console/logout", data={"csrf": csrf_of(overview.text)})
        assert out.status_code == 303
        assert out.headers["location"] == "/console/login?notice=signed-out"
        assert (await client.get("/console/")).status_code == 303


async def test_errors_are_pages_in_words(database_url: str) -> None:
    async with console_client(database_url, Role.ADMIN, subject="ada") as client:
        for path, status, words in (
            ("/console/customers/NOPE-1", 404, ["customer profile NOPE-1 not found"]),
            (
                "/console/outbox?status=lost&from=yesterday",
                422,
                ["Status must be one of: pending, published, failed.", "From is not a date and time"],
            ),
            ("/console/sync/abc", 422, ["is not a sync record id"]),
            ("/console/no/such/page", 404, ["There is no page at /console/no/such/page."]),
        ):
            page = await client.get(path)
            assert page.status_code == status, path
            for text in words:
                assert text in page.text, path
            assert page.headers["content-type"].startswith("text/html")
            assert "Traceback" not in page.text


async def test_recycle_bin_round_trip_is_audited_with_the_person(database_url: str) -> None:
    async with console_client(database_url, Role.OPERATOR, subject="olga") as client:
        await create_customer(client, "C-BIN-1", "李雷")
        search = await client.get("/console/customers?name=李")
        assert "C-BIN-1" in search.text
        binned_path = "/console/recycle-bin?notice=deleted"
        await confirm_redirect(
            client, "/console/customers/C-BIN-1/delete", "Move 李雷 (C-BIN-1) to the recycle bin?", binned_path
        )
        binned = await client.get(binned_path)
        assert "The customer is in the recycle bin." in binned.text
        assert 'data-customer="C-BIN-1"' in binned.text
        restored_path = "/console/customers/C-BIN-1?notice=restored"
        await confirm_redirect(
            client,
            "/console/recycle-bin/C-BIN-1/restore",
            "Restore customer C-BIN-1 from the recycle bin?",
            restored_path,
        )
        profile = await client.get(restored_path)
        assert profile.status_code == 200
        assert "李雷" in profile.text
        log = await client.get("/console/audit?customerId=C-BIN-1&actorId=olga")
        assert "CUSTOMER_DELETED" in log.text
        assert "CUSTOMER_RESTORED" in log.text


async def test_outbox_redrive_of_a_parked_entry(database_url: str) -> None:
    async with console_client(database_url, Role.ADMIN, subject="ada") as client:
        await create_customer(client, "C-OUT-1")
        await rename(client, "C-OUT-1", "王五", 1)
        db = await asyncpg.connect(database_url)
        try:
            entry_id = await db.fetchval(
                "UPDATE profile.outbox SET status='failed', attempts=10, last_error='message too large' "
                "WHERE aggregate_id='C-OUT-1' RETURNING id::text"
            )
            listing = await client.get("/console/outbox?status=failed")
            assert entry_id in listing.text
            assert "message too large" in listing.text
            entry = await client.get(f"/console/outbox/{entry_id}")
            assert '"newName": "王五"' in html.unescape(entry.text)
            assert "ce_type" in entry.text
            by_filter = await client.get("/console/outbox/redrive?mode=filter&status=failed&customerId=C-OUT-1")
            assert "Re-drive 1 outbox entry?" in by_filter.text
            await confirm_redirect(
                client,
                f"/console/outbox/redrive?id={entry_id}&return_to=/console/outbox/{entry_id}",
                "Re-drive 1 outbox entry?",
                f"/console/outbox/{entry_id}?notice=redriven&n=1",
            )
            assert await db.fetchval("SELECT status FROM profile.outbox WHERE id=$1::uuid", entry_id) == "pending"
            actor = await db.fetchval("SELECT actor_id FROM profile.audit_logs WHERE event_type='OUTBOX_REDRIVEN'")
            assert actor == "ada"
            again = await client.get(f"/console/outbox/redrive?id={entry_id}")
            assert "pending already" in again.text
            await db.execute("UPDATE profile.outbox SET status = 'failed' WHERE id = $1::uuid", entry_id)
            await confirm_redirect(
                client,
                "/console/outbox/redrive?mode=filter&status=failed&customerId=C-OUT-1",
                "Re-drive 1 outbox",
                "/console/outbox?notice=redriven&n=1",
            )
            assert await db.fetchval("SELECT status FROM profile.outbox WHERE id=$1::uuid", entry_id) == "pending"
            audited = await db.fetchval(
                "SELECT new_value->'filter'->>'customerId' FROM profile.audit_logs "
                "WHERE event_type='OUTBOX_REDRIVEN' ORDER BY id DESC LIMIT 1"
            )
            assert audited == "C-OUT-1"
        finally:
            await db.close()


async def test_backup_dry_run_and_restore(database_url: str) -> None:
    async with console_client(database_url, Role.ADMIN, subject="ada") as client:
        await create_customer(client, "C-BK-1", "赵六")
        page = await client.get("/console/backups")
        created = await client.post("/console/backups", data={"csrf": csrf_of(page.text), "label": "before"})
        assert created.status_code == 303
        assert "notice=backup-created&n=1" in created.headers["location"]
        backup_path = created.headers["location"].split("?")[0]
        await rename(client, "C-BK-1", "孙七", 1)
        dry = await client.get(f"{backup_path}/dry-run?customerId=C-BK-1")
        assert dry.status_code == 200
        assert '<dd id="customers-changed">1</dd>' in dry.text
        assert "孙七" in dry.text
        assert "赵六" in dry.text
        await confirm_redirect(
            client,
            f"{backup_path}/restore",
            "Restore 1 customer to backup",
            f"{backup_path}?notice=backup-restored&n=1",
        )
        profile = await client.get("/console/customers/C-BK-1")
        assert "<h1>赵六" in profile.text

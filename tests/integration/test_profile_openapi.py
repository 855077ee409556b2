"""The OpenAPI document at /schema describes every ledger endpoint with examples."""

from __future__ import annotations

from typing import Any

from tests.ledger_support import profile_client

LEDGER_OPERATIONS = {
    ("post", "/v1/customers"),
    ("get", "/v1/customers"),
    ("get", "/v1/customers/{customer_id}"),
    ("patch", "/v1/customers/{customer_id}"),
    ("delete", "/v1/customers/{customer_id}"),
    ("post", "/v1/customers/{customer_id}/restore"),
    ("get", "/v1/customers/{customer_id}/name-history"),
    ("get", "/v1/customers/{customer_id}/versions"),
    ("get", "/v1/customers/{customer_id}/versions/{version}"),
    ("get", "/v1/customers/{customer_id}/versions/{version}/difference"),
    ("post", "/v1/customers/{customer_id}/rollback"),
    ("get", "/v1/recycle-bin"),
    ("post", "/v1/name-change-applications"),
    ("get", "/v1/name-change-applications"),
    ("get", "/v1/name-change-applications/{application_id}"),
    ("post", "/v1/name-change-applications/{application_id}/decision"),
    ("post", "/v1/name-change-applications/{application_id}/reapply"),
    ("post", "/v1/profile-updates"),
    ("post", "/v1/profile-updates/batch"),
    ("post", "/v1/backups"),
    ("get", "/v1/backups"),
    ("get", "/v1/backups/{backup_id}"),
    ("post", "/v1/backups/{backup_id}/restore"),
    ("get", "/v1/audit-logs"),
}


async def test_every_ledger_operation_has_examples(database_url: str) -> None:
    async with profile_client(database_url) as client:
        schema: dict[str, Any] = (await client.get("/schema/openapi.json")).json()
    operations = {
        (method, path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "patch", "delete", "put"}
    }
    assert operations.keys() >= LEDGER_OPERATIONS, LEDGER_OPERATIONS - operations.keys()
    for key in sorted(LEDGER_OPERATIONS):
        operation = operations[key]
        success = [response for status, response in operation["responses"].items() if status.startswith("2")]
        assert success, key
        assert all(r["content"]["application/json"].get("examples") for r in success), key
        if "requestBody" in operation:
            assert operation["requestBody"]["content"]["application/json"]["schema"].get("examples"), key
        for status, response in operation["responses"].items():
            # 400 is the framework's generic entry for schema errors, which this service answers with 422.
            if status.startswith(("4", "5")) and status != "400":
                problem = response["content"]["application/problem+json"]
                assert problem["examples"], (key, status)
    patch = operations[("patch", "/v1/customers/{customer_id}")]
    assert {"412", "428", "422"} <= patch["responses"].keys()
    assert any(p["name"] == "If-Match" and p["in"] == "header" for p in patch["parameters"])
    listing = operations[("get", "/v1/customers")]
    assert {p["name"] for p in listing["parameters"]} >= {
        "status",
        "accountType",
        "nameContains",
        "cursor",
        "limit",
        "customerCode",
        "company",
        "industry",
        "region",
        "salesPerson",
    }
    rollback = operations[("post", "/v1/customers/{customer_id}/rollback")]
    assert {"404", "409", "412", "422", "428"} <= rollback["responses"].keys()
    assert any(p["name"] == "If-Match" and p["in"] == "header" for p in rollback["parameters"])
    not_found = rollback["responses"]["404"]["content"]["application/problem+json"]["examples"]
    assert {example["value"]["code"] for example in not_found.values()} >= {"PROFILE_NOT_FOUND", "VERSION_NOT_FOUND"}
    created = operations[("post", "/v1/customers")]
    body_schema = created["requestBody"]["content"]["application/json"]["schema"]
    reference = body_schema.get("$ref") or body_schema["allOf"][0]["$ref"]
    fields = schema["components"]["schemas"][reference.rsplit("/", 1)[-1]]["properties"]
    assert fields["creditLimit"]["type"] == "string"
    assert {"createdBy", "updatedBy"}.isdisjoint(fields)


async def test_the_document_states_what_the_server_enforces(database_url: str) -> None:
    async with profile_client(database_url) as client:
        schema: dict[str, Any] = (await client.get("/schema/openapi.json")).json()
    bearer = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schema["components"]["securitySchemes"]["bearer"] == bearer
    operations = {
        (method, path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "patch", "delete", "put"}
    }
    for key, operation in operations.items():  # every documented operation is guarded
        assert operation["security"] == [{"bearer": []}], key
        assert "Roles: " in operation["description"], key
        if key[0] == "post":
            idempotency_key = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
            assert idempotency_key["in"] == "header", key
            assert not idempotency_key["required"], key
            assert "IDEMPOTENCY_KEY_REUSED" in operation["responses"]["422"]["description"], key
            assert "IDEMPOTENCY_KEY_IN_USE" in operation["responses"]["409"]["description"], key
        if "requestBody" in operation:
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            reference = body.get("$ref") or body["allOf"][0]["$ref"]
            assert schema["components"]["schemas"][reference.rsplit("/", 1)[-1]]["additionalProperties"] is False, key
    assert "Roles: admin (" in operations[("get", "/v1/admin/outbox")]["description"]
    if_match = {key: p for key, op in operations.items() for p in op.get("parameters", []) if p["name"] == "If-Match"}
    assert if_match[("patch", "/v1/customers/{customer_id}")]["required"] is True
    assert if_match[("post", "/v1/customers/{customer_id}/rollback")]["required"] is True
    assert if_match[("delete", "/v1/customers/{customer_id}")]["required"] is False
    assert {p["schema"]["type"] for p in if_match.values()} == {"string"}
    listings = ("/v1/admin/outbox", "/v1/name-change-applications", "/v1/audit-logs")
    times = [p for path in listings for p in operations[("get", path)]["parameters"] if p["name"] in {"from", "to"}]
    assert times
    assert all(p["schema"]["format"] == "date-time" for p in times)
    assert len(schema["components"]["schemas"]["RedriveRequest"]["oneOf"]) == 2

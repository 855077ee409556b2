"""The connector's OpenAPI document says what its admin API enforces: who may call, what it refuses, how.

The app is built as the runtime builds it (no database is reached: only the document is read).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import create_async_engine

from libs.kit.tokens import TokenSettings, TokenVerifier
from services.sync_connector.admin import SyncAdmin
from services.sync_connector.http_api import create_api
from services.sync_connector.notify.admin import NotificationAdmin

PUBLIC = {"/health", "/ready", "/metrics"}


async def _reachable() -> bool:
    return True


@pytest.fixture(scope="module")
def document() -> Iterator[dict[str, Any]]:
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")  # never connected
    app = create_api(
        engine,
        CollectorRegistry(),
        lambda: True,
        SyncAdmin(engine, retry_budget=None, bulk_limit=10),
        _reachable,
        verifier=TokenVerifier(TokenSettings()),
        notification_admin=NotificationAdmin(engine, attempt_budget=None, bulk_limit=10),
    )
    with TestClient(app) as client:
        yield client.get("/schema/openapi.json").json()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_every_admin_operation_declares_the_bearer_scheme_and_its_roles(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for method, path, operation in _operations(document):
        if path in PUBLIC:
            assert "security" not in operation, path
            continue
        assert operation["security"] == [{"bearer": []}], (method, path)
        assert "Roles: " in operation["description"], (method, path)
        assert {"401", "403", "503"} <= operation["responses"].keys(), (method, path)
        expected_roles = "Roles: admin (" if method == "post" else "Roles: admin, operator, viewer ("
        assert expected_roles in operation["description"], (method, path)


def test_problems_are_documented_as_the_api_answers_them(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        assert "400" not in operation["responses"], (method, path)  # refusals of the input are 422
        if operation.get("parameters") or "requestBody" in operation:
            assert "422" in operation["responses"], (method, path)
        for status, response in operation["responses"].items():
            if status.startswith("4") or (status == "503" and path not in PUBLIC):
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ProblemDetails"}, (method, path, status)


def test_bodies_forbid_unknown_fields_and_parameters_state_their_rules(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in ("BulkRetryRequest", "BulkResendRequest"):
        assert schemas[name]["additionalProperties"] is False, name
    listing = {p["name"]: p["schema"] for p in document["paths"]["/v1/sync-records"]["get"]["parameters"]}
    assert listing["limit"]["maximum"] == 500
    assert listing["cursor"]["pattern"].startswith("^cjo")
    assert listing["eventId"]["format"] == "uuid"
    assert set(listing["systemCode"]["enum"]) == {"CRM", "CMS", "CSS"}
    assert all("oneOf" not in schema for schema in listing.values())  # absent, never null
    (record_id,) = document["paths"]["/v1/sync-records/{record_id}/retry"]["post"]["parameters"]
    assert record_id["schema"]["pattern"] == "^[0-9]{1,18}$"

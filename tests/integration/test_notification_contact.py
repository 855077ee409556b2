"""The profile's internal contact endpoint: only the notifier's service token reads contact data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from libs.kit.db import sqlalchemy_url
from libs.kit.tokens import Role
from services.profile.app import create_app
from services.profile.settings import settings_from_env
from tests.auth_support import auth_env, bearer
from tests.notification_support import EMAIL, PHONE, notifier_token

CONTACT = "/internal/v1/customers/{}/contact"


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = settings_from_env(
        {"PROFILE_DB_URL": sqlalchemy_url(database_url), "PROFILE_LOG_LEVEL": "WARNING", **auth_env()}
    )
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        operator = bearer(Role.OPERATOR)
        for customer_id, contact in (("K001", {"contactPhone": PHONE, "contactEmail": EMAIL}), ("K002", {})):
            body = {"customerId": customer_id, "customerName": "张三", "accountType": "residential", **contact}
            created = await test_client.post("/v1/customers", json=body, headers=operator)
            assert created.status_code == 201, created.text
        yield test_client


async def test_the_notifier_reads_contact_data(client: AsyncTestClient[Any]) -> None:
    notifier = {"Authorization": f"Bearer {notifier_token()}"}

    full = await client.get(CONTACT.format("K001"), headers=notifier)
    bare = await client.get(CONTACT.format("K002"), headers=notifier)

    assert full.status_code == 200, full.text
    assert full.json() == {
        "customerId": "K001",
        "customerName": "张三",
        "contactPhone": PHONE,
        "contactEmail": EMAIL,
        "preferredLanguage": None,
    }
    assert bare.json()["contactPhone"] is None
    assert bare.json()["contactEmail"] is None
    missing = await client.get(CONTACT.format("K404"), headers=notifier)
    assert (missing.status_code, missing.json()["code"]) == (404, "PROFILE_NOT_FOUND")
    deleted = await client.delete("/v1/customers/K002", headers=bearer(Role.OPERATOR))
    assert deleted.status_code == 200, deleted.text
    gone = await client.get(CONTACT.format("K002"), headers=notifier)
    assert (gone.status_code, gone.json()["code"]) == (404, "PROFILE_NOT_FOUND")


async def test_nobody_else_reads_contact_data_there(client: AsyncTestClient[Any]) -> None:
    for role in (Role.ADMIN, Role.OPERATOR, Role.VIEWER, Role.AUDIT_SYSTEM):
        response = await client.get(CONTACT.format("K001"), headers=bearer(role))
        assert (response.status_code, response.json()["code"]) == (403, "FORBIDDEN"), role
        assert EMAIL not in response.text

    anonymous = await client.get(CONTACT.format("K001"))

    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "UNAUTHENTICATED")

"""The route x role table of docs/security.md, tried on the real app: every route, every role and no token.

The table is the specification: it must list exactly the operations of the OpenAPI document;
each route answers 401 without a token (and with a bad one), 403 to every role the table does
not tick, and neither to the roles it ticks (their request may still be a 404 or a 422: the
guard let it through).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from libs.kit.tokens import Role, effective_roles
from services.profile.access.auth import guard_roles
from tests.auth_support import bearer, token
from tests.ledger_support import Client, profile_client

SECURITY_PAGE = Path(__file__).resolve().parents[2] / "docs" / "security.md"
ROW = re.compile(r"^\| `(GET|POST|PATCH|DELETE|PUT) (/[^`]*)` \|(.*)\|\s*$")
PARAM = re.compile(r"\{[^}]+\}")
DENIED = {401, 403}


def _normalized(path: str) -> str:
    return PARAM.sub("{}", path)


def route_table() -> dict[tuple[str, str], frozenset[Role]]:
    """``(method, path with {} params) -> roles`` from the table under "## Who may do what"."""
    text = SECURITY_PAGE.read_text(encoding="utf-8")
    section = text[text.index("## Who may do what") :]
    header = next(line for line in section.splitlines() if line.startswith("| route"))
    columns = [cell.strip() for cell in header.strip("|").split("|")][1:]
    table: dict[tuple[str, str], frozenset[Role]] = {}
    for line in section.splitlines():
        if match := ROW.match(line):
            cells = [cell.strip() for cell in match.group(3).split("|")]
            roles = frozenset(Role(column) for column, cell in zip(columns, cells, strict=True) if cell)
            table[match.group(1), _normalized(match.group(2))] = roles
    return table


def openapi_operations(schema: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), _normalized(path))
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "patch", "delete", "put"}
    }


def _concrete(path: str) -> str:
    return path.replace("/versions/{}", "/versions/1").replace("{}", "NOPE-1")  # a version is a number


async def _call(client: Client, method: str, path: str, headers: dict[str, str]) -> int:
    body: dict[str, Any] | None = {} if method in {"POST", "PATCH", "PUT"} else None
    response = await client.request(method, _concrete(path), json=body, headers=headers)
    if response.status_code in DENIED:
        assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.status_code


@pytest.fixture
async def anonymous(database_url: str) -> Any:
    async with profile_client(database_url) as client:
        client.headers.pop("Authorization")
        yield client


async def test_the_table_lists_every_operation_of_the_openapi_document(anonymous: Client) -> None:
    table = route_table()
    schema = (await anonymous.get("/schema/openapi.json")).json()
    operations = openapi_operations(schema)
    assert operations - set(table) == set(), "routes missing from the route x role table of docs/security.md"
    assert set(table) - operations == set(), "table rows for routes the service does not have"
    assert len(table) >= 20


async def test_every_route_with_every_role_and_without_a_token(anonymous: Client) -> None:
    failures: list[str] = []
    for (method, path), allowed in sorted(route_table().items()):
        status = await _call(anonymous, method, path, {})
        if status != 401:
            failures.append(f"{method} {path} without a token: {status}")
        status = await _call(anonymous, method, path, {"Authorization": f"Bearer {token(Role.ADMIN)}x"})
        if status != 401:
            failures.append(f"{method} {path} with a forged token: {status}")
        for role in Role:
            status = await _call(anonymous, method, path, bearer(role, subject=f"table-{role.value}"))
            if role in allowed and (status in DENIED or status >= 500):
                failures.append(f"{method} {path} as {role}: {status}, the table allows it")
            if role not in allowed and status != 403:
                failures.append(f"{method} {path} as {role}: {status}, the table forbids it (403)")
    assert failures == []


async def test_route_guards_match_the_table(anonymous: Client) -> None:
    """The guards themselves, so a table row can't pass by accident (e.g. a 404 before the guard)."""
    app = anonymous.app
    table = route_table()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            for method in handler.http_methods - {"OPTIONS", "HEAD"}:
                key = (method, _normalized(route.path))
                if key in table:
                    needed = guard_roles(handler)
                    assert needed is not None, key
                    admitted = {role for role in Role if not effective_roles(frozenset({role})).isdisjoint(needed)}
                    assert admitted == set(table[key]), key

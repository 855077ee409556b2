"""Helpers for the console tests: a profile app whose console is signed in through its own login form."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from litestar.testing import AsyncTestClient

from libs.kit.db import sqlalchemy_url
from libs.kit.tokens import Role
from services.profile.app import create_app
from services.profile.settings import ProfileSettings, settings_from_env
from tests.auth_support import auth_env, bearer, token

Client = AsyncTestClient[Any]
_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[A-Za-z_]+)" value="(?P<value>[^"]*)">')


def hidden_fields(html: str) -> dict[str, str]:
    return {m["name"]: m["value"] for m in _HIDDEN.finditer(html)}


def csrf_of(html: str) -> str:
    value = hidden_fields(html).get("csrf")
    assert value, "the page has no CSRF field"
    return value


async def sign_in(
    client: Client | httpx.AsyncClient, *roles: Role, subject: str, login_path: str = "/console/login"
) -> httpx.Response:
    """Through the login form, as a browser would: GET the form, POST the token."""
    form = await client.get(login_path)
    assert form.status_code == 200, form.text
    fields = hidden_fields(form.text)
    return await client.post(
        "/console/login",
        data={"token": token(*roles, subject=subject), "login_csrf": fields["login_csrf"], "next": fields["next"]},
    )


def _settings(database_url: str, env: dict[str, str]) -> ProfileSettings:
    return settings_from_env(
        {
            "PROFILE_DB_URL": sqlalchemy_url(database_url),
            "PROFILE_LOG_LEVEL": "WARNING",
            "PROFILE_CONNECTOR_URL": "http://127.0.0.1:9",  # nobody: pages must say so, not fail
            "PROFILE_CONNECTOR_TIMEOUT_S": "2",
            **auth_env(),
            **env,
        }
    )


@contextlib.asynccontextmanager
async def console_client(
    database_url: str, *roles: Role, subject: str = "console-admin", **env: str
) -> AsyncIterator[Client]:
    """An app on ``database_url`` (the connector at ``PROFILE_CONNECTOR_URL`` if given) with a signed-in session."""
    async with AsyncTestClient(app=create_app(_settings(database_url, env))) as client:
        client.follow_redirects = False  # the tests check every POST-redirect-GET themselves
        if roles:
            response = await sign_in(client, *roles, subject=subject)
            assert response.status_code == 303, response.text
        yield client


@contextlib.asynccontextmanager
async def served_console_client(
    database_url: str, *roles: Role, subject: str = "console-admin", **env: str
) -> AsyncIterator[httpx.AsyncClient]:
    """Like ``console_client``, but the app is served by uvicorn on a real socket in this event loop, so
    it can call servers of this loop too (an in-process sync-connector)."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(_settings(database_url, env)), host="127.0.0.1", port=0, log_config=None, access_log=False
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert not serving.done(), "the profile app did not start"
            assert time.monotonic() < deadline, "the profile app did not start within 20 s"
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            response = await sign_in(client, *roles, subject=subject)
            assert response.status_code == 303, response.text
            yield client
    finally:
        server.should_exit = True
        await serving


async def api(client: Client | httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A call of the JSON API next to the console session (an admin's bearer token)."""
    headers = {**bearer(Role.ADMIN, Role.AUDIT_SYSTEM, subject="api-setup"), **kwargs.pop("headers", {})}
    return await client.request(method, path, headers=headers, **kwargs)


async def create_customer(
    client: Client | httpx.AsyncClient, customer_id: str, name: str = "张三", **fields: Any
) -> None:
    """Create a residential customer through the JSON API, with ``fields`` (by their JSON names) besides."""
    body = {"customerId": customer_id, "customerName": name, "accountType": "residential", **fields}
    response = await api(client, "POST", "/v1/customers", json=body)
    assert response.status_code == 201, response.text


async def rename(client: Client | httpx.AsyncClient, customer_id: str, new_name: str, version: int) -> None:
    """Rename a customer through the JSON API (``version`` is the one it has now)."""
    renamed = await api(
        client,
        "PATCH",
        f"/v1/customers/{customer_id}",
        json={"customerName": new_name, "changeReason": "过户"},
        headers={"If-Match": f'"{version}"'},
    )
    assert renamed.status_code == 200, renamed.text


async def confirm_and_post(client: Client | httpx.AsyncClient, confirm_path: str, expect: str) -> httpx.Response:
    """Open a confirmation page, check it says ``expect``, submit its form (the POST, not followed)."""
    page = await client.get(confirm_path)
    assert page.status_code == 200, page.text
    assert expect in page.text, page.text
    match = re.search(r'<form method="post" action="(?P<action>[^"]+)"', page.text)
    assert match, "the confirmation page has no form"
    fields: dict[str, Any] = {}
    for m in _HIDDEN.finditer(page.text[match.start() :]):
        fields.setdefault(m["name"], []).append(m["value"])
    return await client.post(match["action"].replace("&amp;", "&"), data=fields)


async def confirm_redirect(client: Client | httpx.AsyncClient, confirm_path: str, expect: str, location: str) -> None:
    """``confirm_and_post``, and check the change redirects to ``location`` (not followed)."""
    done = await confirm_and_post(client, confirm_path, expect)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == location

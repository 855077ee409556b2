"""The sync-connector's admin API and CLI take the profile service's tokens: viewer reads, admin retries."""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp

from libs.kit.kafka import KafkaSettings
from libs.kit.tokens import Role
from tests.auth_support import bearer, connector_auth_env, token
from tests.connector_support import connector_harness, running_connector

READS = ("/v1/sync-records", "/v1/sync-status/C1", "/v1/pipeline-status", "/v1/sync-records/1")
WRITES = ("/v1/sync-records/1/retry", "/v1/sync-records/retry")


async def _status(http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str]) -> int:
    async with http.request(method, url, headers=headers, json={"systemCode": "CRM"}) as response:
        if response.status in {401, 403}:
            assert response.content_type == "application/problem+json"
        return response.status


async def test_admin_api_roles(database_url: str, kafka_settings: KafkaSettings, topic: str) -> None:
    async with (
        connector_harness(database_url, kafka_settings, topic) as harness,
        running_connector(harness.settings()) as runtime,
        aiohttp.ClientSession() as http,  # no default token
    ):
        api = runtime.http_url
        for path in ("/health", "/metrics"):
            assert await _status(http, "GET", api + path, {}) == 200
        forged = {"Authorization": f"Bearer {token(Role.ADMIN)}x"}
        for path in READS:
            assert await _status(http, "GET", api + path, {}) == 401, path
            assert await _status(http, "GET", api + path, forged) == 401, path
            assert await _status(http, "GET", api + path, bearer(Role.NOTIFIER)) == 403, path
            assert await _status(http, "GET", api + path, bearer(Role.VIEWER)) not in {401, 403}, path
        for path in WRITES:
            assert await _status(http, "POST", api + path, {}) == 401, path
            for role in (Role.VIEWER, Role.OPERATOR, Role.AUDIT_SYSTEM):
                assert await _status(http, "POST", api + path, bearer(role)) == 403, (path, role)
            assert await _status(http, "POST", api + path, bearer(Role.ADMIN)) not in {401, 403}, path


async def _cli(database_url: str, admin_token: str | None, *args: str) -> tuple[int, str]:
    env = {**os.environ, "CONNECTOR_DB_URL": database_url, **connector_auth_env()}
    env.pop("CONNECTOR_ADMIN_TOKEN", None)
    if admin_token is not None:
        env["CONNECTOR_ADMIN_TOKEN"] = admin_token
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.sync_connector", "sync", *args, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_cli_needs_a_token_with_the_role(database_url: str) -> None:
    code, err = await _cli(database_url, None, "list")
    assert (code, "UNAUTHENTICATED" in err) == (1, True)
    code, err = await _cli(database_url, token(Role.VIEWER), "retry", "--id", "1")
    assert (code, "FORBIDDEN" in err) == (1, True)
    code, err = await _cli(database_url, token(Role.VIEWER), "list")
    assert code == 0, err

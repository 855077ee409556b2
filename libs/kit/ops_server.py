"""A small HTTP server for processes without an API: ``/health``, ``/ready`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_S = 2.0


async def start_ops_server(
    host: str, port: int, registry: CollectorRegistry, checks: Mapping[str, ReadinessCheck]
) -> web.AppRunner:
    """Serve until the returned runner is cleaned up; ``/ready`` is 200 only when every check passes."""

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(_: web.Request) -> web.Response:
        results = dict(zip(checks, await asyncio.gather(*(_bounded(check) for check in checks.values())), strict=True))
        ok = all(results.values())
        return web.json_response({"ready": ok, "checks": results}, status=200 if ok else 503)

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    app = web.Application()
    app.add_routes([web.get("/health", health), web.get("/ready", ready), web.get("/metrics", metrics)])
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _bounded(check: ReadinessCheck) -> bool:
    try:
        return await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - any failure or timeout means "not ready"
        return False


def database_check(dsn: str) -> ReadinessCheck:
    async def check() -> bool:
        connection = await asyncpg.connect(dsn, timeout=CHECK_TIMEOUT_S)
        try:
            return bool(await connection.fetchval("SELECT 1") == 1)
        finally:
            await connection.close()

    return check


def broker_check(bootstrap_servers: str) -> ReadinessCheck:
    """Reachable when any bootstrap server accepts a TCP connection."""

    async def check() -> bool:
        for server in bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), CHECK_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError):
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        return False

    return check

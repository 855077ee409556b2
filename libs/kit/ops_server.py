"""A small HTTP server for processes without an API: ``/health``, ``/ready`` and ``/metrics``.

``/ready`` answers 200 only when every check passes: ``checks`` ask a dependency (bounded by
``CHECK_TIMEOUT_S``), ``statuses`` report the process's own state at once, with a reason when not
ok. The body is ``{"ready": bool, "checks": {name: bool}, "reasons": {name: str}}`` (reasons only
of failing statuses that gave one).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_S = 2.0


class Status(NamedTuple):
    """The process's own readiness in one respect (no I/O): ok, or why not."""

    ok: bool
    reason: str | None = None


StatusSource = Callable[[], Status]


async def start_ops_server(
    host: str,
    port: int,
    registry: CollectorRegistry,
    checks: Mapping[str, ReadinessCheck],
    statuses: Mapping[str, StatusSource] | None = None,
) -> web.AppRunner:
    """Serve until the returned runner is cleaned up; ``/ready`` is 200 only when every check and status passes."""
    own = dict(statuses or {})
    if clash := set(own) & set(checks):
        msg = f"names used by both a check and a status: {sorted(clash)}"
        raise ValueError(msg)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(_: web.Request) -> web.Response:
        results = dict(zip(checks, await asyncio.gather(*(_bounded(check) for check in checks.values())), strict=True))
        reasons: dict[str, str] = {}
        for name, source in own.items():
            status = source()
            results[name] = status.ok
            if not status.ok and status.reason:
                reasons[name] = status.reason
        ok = all(results.values())
        body: dict[str, object] = {"ready": ok, "checks": results}
        if reasons:
            body["reasons"] = reasons
        return web.json_response(body, status=200 if ok else 503)

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

"""Liveness, readiness and Prometheus metrics: public (no token), they carry no customer data.

``engine`` and ``scrape_registry`` are the app's dependencies (the composition root provides them)."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


@get("/health", include_in_schema=False, sync_to_thread=False, opt={"public": True})
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", include_in_schema=False, opt={"public": True})
async def ready(engine: NamedDependency[AsyncEngine]) -> Response[dict[str, str]]:
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return Response({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    return Response({"status": "ready", "database": "ok"})


@get("/metrics", include_in_schema=False, sync_to_thread=False, opt={"public": True})
def metrics(scrape_registry: NamedDependency[CollectorRegistry]) -> Response[bytes]:
    return Response(generate_latest(scrape_registry), media_type=CONTENT_TYPE_LATEST)

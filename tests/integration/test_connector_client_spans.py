"""The connector's CLIENT spans: stable HTTP conventions, propagated to the server, errors marked."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from services.sync_connector.http_spans import client_span_trace_config


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback server that answers /ok with 200 and /down with 503, and keeps each traceparent."""
    received: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        received.append(request.headers.get("traceparent", ""))
        return web.Response(status=200 if request.path == "/ok" else 503)

    app = web.Application()
    app.router.add_post("/ok", answer)
    app.router.add_post("/down", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_each_call_has_a_client_span_that_the_server_receives(server: tuple[str, list[str]]) -> None:
    base, received = server
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with aiohttp.ClientSession(trace_configs=[client_span_trace_config(provider)]) as session:
        async with session.post(f"{base}/ok", json={}) as response:
            assert response.status == 200
        async with session.post(f"{base}/down", json={}) as response:
            assert response.status == 503
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.post(f"http://127.0.0.1:{_closed_port()}/ok", json={})

    ok, down, refused = exporter.get_finished_spans()
    assert all(span.kind == SpanKind.CLIENT and span.name == "POST" for span in (ok, down, refused))
    assert ok.attributes is not None
    assert ok.attributes["http.request.method"] == "POST"
    assert ok.attributes["url.full"] == f"{base}/ok"
    assert ok.attributes["server.address"] == "127.0.0.1"
    assert ok.attributes["http.response.status_code"] == 200
    assert ok.status.status_code == StatusCode.UNSET
    assert ok.context is not None
    assert received[0].split("-")[1:3] == [format(ok.context.trace_id, "032x"), format(ok.context.span_id, "016x")]
    assert down.attributes is not None
    assert down.attributes["http.response.status_code"] == 503
    assert down.status.status_code == StatusCode.ERROR
    assert refused.attributes is not None
    assert refused.attributes["error.type"]
    assert refused.status.status_code == StatusCode.ERROR

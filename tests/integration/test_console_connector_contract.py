"""The console's connector client is right against the connector's OpenAPI document.

A real connector (its admin API, /schema/openapi.json) with a failed, a delivered and a re-driven
record; every method of ``ConnectorClient`` is called, and every request it sends (method, path,
query, body) must be an operation of the document with parameters and body its schemas accept, and
every answer it reads must be a documented status whose body validates against the documented schema.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import jsonschema
import msgspec
from prometheus_client import CollectorRegistry
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from yarl import URL

from libs.kit.tokens import Role
from services.profile.console.connector_api import RecordFilter
from services.profile.console.connector_client import (
    Caller,
    ConnectorClient,
    ConnectorClientSettings,
    ConnectorMetrics,
    ConnectorNotFound,
)
from tests.auth_support import token
from tests.connector_support import ConnectorHarness, name_changed, running_connector
from tests.polling import eventually

CRM_FAILED = {"CRM": "failed", "CMS": "success", "CSS": "success"}
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


@dataclass
class Exchange:
    """One request the client sent and the answer it read."""

    method: str
    url: URL
    sent: bytearray = field(default_factory=bytearray)
    received: bytearray = field(default_factory=bytearray)
    status: int = 0
    content_type: str = ""


def recorder(exchanges: list[Exchange]) -> aiohttp.TraceConfig:
    """Keeps what went over the wire, both ways, as aiohttp's tracing reports it."""
    trace = aiohttp.TraceConfig()

    async def start(_: Any, context: SimpleNamespace, params: aiohttp.TraceRequestStartParams) -> None:
        context.exchange = Exchange(params.method, params.url)
        exchanges.append(context.exchange)

    async def chunk_sent(_: Any, context: SimpleNamespace, params: aiohttp.TraceRequestChunkSentParams) -> None:
        context.exchange.sent.extend(params.chunk)

    async def chunk_received(
        _: Any, context: SimpleNamespace, params: aiohttp.TraceResponseChunkReceivedParams
    ) -> None:
        context.exchange.received.extend(params.chunk)

    async def end(_: Any, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
        context.exchange.status = params.response.status
        context.exchange.content_type = params.response.content_type

    trace.on_request_start.append(start)
    trace.on_request_chunk_sent.append(chunk_sent)
    trace.on_response_chunk_received.append(chunk_received)
    trace.on_request_end.append(end)
    return trace


class Document:
    """The OpenAPI document, its operations found by a request's method and path."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.registry: Registry[Any] = Registry().with_resource(
            "urn:connector-admin", Resource.from_contents(document, default_specification=DRAFT202012)
        )
        self.templates = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"), path)
            for path in document["paths"]
        ]

    def operation(self, method: str, path: str) -> dict[str, Any]:
        found = [template for pattern, template in self.templates if pattern.match(path)]
        # A literal segment wins over a parameter (``/retry`` over ``/{record_id}``), as in the router.
        found.sort(key=lambda template: template.count("{"))
        assert found, f"{method} {path} is no path of the document"
        operations: dict[str, Any] = self.document["paths"][found[0]]
        assert method.lower() in operations, f"{method} {found[0]} is no operation of the document"
        operation: dict[str, Any] = operations[method.lower()]
        return operation

    def validate(self, value: Any, schema: dict[str, Any], what: str) -> None:
        validator = jsonschema.Draft202012Validator(_rebased(schema), registry=self.registry, format_checker=FORMATS)
        errors = [error.message for error in validator.iter_errors(value)]
        assert not errors, f"{what}: {errors}"


def _rebased(schema: dict[str, Any]) -> dict[str, Any]:
    """``#/components/...`` references, pointed at the document."""
    encoded = msgspec.json.encode(schema).replace(b'"#/components/', b'"urn:connector-admin#/components/')
    return msgspec.json.decode(encoded, type=dict[str, Any])


def check(document: Document, exchange: Exchange) -> None:
    path, query = exchange.url.path, exchange.url.query
    operation = document.operation(exchange.method, path)
    label = f"{exchange.method} {path}"
    declared = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
    for name, value in query.items():
        assert name in declared, f"{label}: query parameter {name} is not in the document"
        schema = declared[name]["schema"]
        typed: Any = int(value) if schema.get("type") == "integer" else value
        document.validate(typed, schema, f"{label} ?{name}")
    body = operation.get("requestBody")
    if exchange.sent:
        assert body is not None, f"{label} sends a body the document does not take"
        document.validate(msgspec.json.decode(exchange.sent), body["content"]["application/json"]["schema"], label)
    else:
        assert body is None or not body.get("required"), f"{label} sends no body, the document requires one"
    response = operation["responses"].get(str(exchange.status))
    assert response is not None, f"{label} answered {exchange.status}, not a documented status"
    content = response["content"][exchange.content_type]
    document.validate(msgspec.json.decode(exchange.received), content["schema"], f"{label} -> {exchange.status}")


async def test_every_call_of_the_console_client_is_an_operation_of_the_connectors_document(
    harness: ConnectorHarness,
) -> None:
    await harness.inject_fault({"system": "CRM", "mode": "status", "status": 422, "count": 1})
    async with running_connector(harness.settings()) as runtime:
        failed = await harness.produce(name_changed("C-CONTRACT-1", 1))
        await eventually(harness.statuses_become(failed, CRM_FAILED), "CRM failed, CMS and CSS applied")
        record_id = (await harness.records(failed))["CRM"]["id"]
        async with aiohttp.ClientSession() as plain:
            schema = Document(await (await plain.get(f"{runtime.http_url}/schema/openapi.json")).json())

        exchanges: list[Exchange] = []  # the calls below, as the client sent and read them
        settings = ConnectorClientSettings(url=runtime.http_url, token=token(Role.ADMIN, subject="console"))
        async with aiohttp.ClientSession(base_url=runtime.http_url + "/", trace_configs=[recorder(exchanges)]) as http:
            client = ConnectorClient(http, settings, ConnectorMetrics(CollectorRegistry()))
            caller = Caller(user_agent="contract-test")
            await client.pipeline_status(caller)
            first = await client.list_records(RecordFilter(customer_id="C-CONTRACT-1"), caller, limit=1)
            assert first.next_cursor is not None
            await client.list_records(
                RecordFilter(system_code="CRM", status="failed"), caller, cursor=first.next_cursor
            )
            await client.record(record_id, caller)
            await client.sync_status("C-CONTRACT-1", caller)
            assert await client.sync_status(f"nobody-{uuid.uuid4().hex[:8]}", caller) is None
            await client.journey("C-CONTRACT-1", caller, limit=5)
            assert await client.journey("nobody", caller) is None
            await client.delivery_stats(caller, window_s=600, buckets=10)
            await client.admin_notifications(caller, status="sent", limit=5)
            with contextlib.suppress(ConnectorNotFound):  # none yet: its 404 is checked against the document too
                await client.admin_notification(1, caller)
            await client.retry_record(record_id, caller)
            await client.retry_failed("CMS", "C-CONTRACT-1", caller)
            await client.retry_failed("CRM", None, caller)

        assert len(exchanges) == 14
        for exchange in exchanges:
            check(schema, exchange)

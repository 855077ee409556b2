"""The CLIENT span of each outbound call, on aiohttp's and OpenTelemetry's public APIs only.

The span follows the stable HTTP client semantic conventions (``http.request.method``, ``url.full``,
``server.address``, ``server.port``, ``http.response.status_code``, ``error.type``) and its context is
injected into the request (``traceparent``), so the external system's spans join the trace. The
maintained aiohttp-client instrumentation selects these conventions only through a private enum.
"""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

# A client span is an error from this status on (the server's answer was not a success).
_FIRST_ERROR_STATUS = 400


def client_span_trace_config(tracer_provider: trace.TracerProvider) -> aiohttp.TraceConfig:
    """A trace config that makes one CLIENT span per request (redirects included) and propagates it."""
    tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
    config = aiohttp.TraceConfig()

    async def on_start(
        _: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        url = params.url
        span = tracer.start_span(
            params.method,
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": params.method,
                "url.full": str(url.with_user(None)),
                "server.address": url.host or "",
                "server.port": url.explicit_port or url.port or 0,
            },
        )
        context.span = span
        propagate.inject(params.headers, context=trace.set_span_in_context(span))

    async def on_end(_: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
        span: trace.Span = context.span
        status = params.response.status
        span.set_attribute("http.response.status_code", status)
        if status >= _FIRST_ERROR_STATUS:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    async def on_exception(
        _: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        span: trace.Span = context.span
        span.set_attribute("error.type", type(params.exception).__qualname__)
        span.record_exception(params.exception)
        span.set_status(Status(StatusCode.ERROR, str(params.exception)))
        span.end()

    config.on_request_start.append(on_start)
    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_exception)
    return config

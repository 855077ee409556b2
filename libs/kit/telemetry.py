"""OpenTelemetry set-up and W3C trace-context carriers for outbox rows and Kafka headers."""

from __future__ import annotations

import os

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanContext, TraceFlags


def configure_tracing(service: str) -> TracerProvider:
    """A tracer provider for the service; exports over OTLP when ``OTEL_EXPORTER_OTLP_*`` is set.

    Without an exporter nothing would ever read a recorded span, so spans are not
    recorded (``ALWAYS_OFF``); they still get valid span contexts, so trace ids are
    propagated (HTTP, outbox rows, Kafka headers) and logged. With an exporter the
    sampler comes from the standard ``OTEL_TRACES_SAMPLER`` (default: parent-based, always on).
    """
    exporting = bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), sampler=None if exporting else ALWAYS_OFF
    )
    if exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def records_spans(provider: trace.TracerProvider) -> bool:
    """False for the provider ``configure_tracing`` makes without an exporter: instrumentation that
    only makes spans can be left out (context propagation must still happen)."""
    return not (isinstance(provider, TracerProvider) and provider.sampler is ALWAYS_OFF)


def current_trace_headers() -> dict[str, str]:
    """``traceparent`` / ``tracestate`` of the active span, for storing with an outbox row."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from_headers(headers: dict[str, str]) -> Context:
    return propagate.extract(headers)


def span_context_from_traceparent(traceparent: str | None) -> SpanContext | None:
    """The remote span context a W3C ``traceparent`` names (a fast path for per-message links)."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:  # noqa: PLR2004 - W3C field widths
        return None
    try:
        context = SpanContext(
            trace_id=int(parts[1], 16),
            span_id=int(parts[2], 16),
            is_remote=True,
            trace_flags=TraceFlags(int(parts[3][:2], 16)),
        )
    except ValueError:
        return None
    return context if context.is_valid else None

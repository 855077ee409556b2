"""Every response names its trace: callers quote ``X-Trace-Id`` and SREs find the whole path."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope
from opentelemetry import trace

TRACE_ID_HEADER = "X-Trace-Id"


async def add_trace_id_header(message: Message, scope: Scope) -> None:  # noqa: ARG001 - Litestar's hook signature
    if message["type"] != "http.response.start":
        return
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        MutableScopeHeaders.from_message(message)[TRACE_ID_HEADER] = format(context.trace_id, "032x")

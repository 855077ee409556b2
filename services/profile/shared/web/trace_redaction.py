"""Server spans record the request URL; a query may carry contact data (``?contactPhone=...``).

The hook below runs once the server span exists and rewrites its URL attributes with the
values of sensitive query parameters replaced, so a phone searched for never reaches a trace
backend. Which parameters: contact fields and anything named like a credential.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, quote

from opentelemetry.trace import Span

REDACTED = "REDACTED"
_SENSITIVE = re.compile(r"phone|email|address|token|secret|password|key|signature", re.IGNORECASE)
_URL_ATTRIBUTES = ("http.url", "url.full", "http.target", "url.query")


def redact_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(
        f"{quote(name, safe='')}={REDACTED if _SENSITIVE.search(name) else quote(value, safe='')}"
        for name, value in pairs
    )


def redact_url_attributes(span: Span, scope: dict[str, Any]) -> None:
    """Litestar's ``server_request_hook_handler``."""
    raw = scope.get("query_string", b"")
    query = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    if not query or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    safe = redact_query(query)
    for name in _URL_ATTRIBUTES:
        value = attributes.get(name)
        if not isinstance(value, str):
            continue
        if name == "url.query":
            span.set_attribute(name, safe)
        else:
            span.set_attribute(name, value.split("?", 1)[0] + "?" + safe)

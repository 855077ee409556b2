"""``Idempotency-Key`` on POST: a repeated request gets the first response, not a second effect.

Keys are scoped by method, path and caller (the token's subject), and the route's guards run
before a key is claimed or a response replayed. Same key and same request (path, query, body): the
stored response is replayed with its original status and ``Idempotent-Replayed: true``.
Same key, other request: 422 ``IDEMPOTENCY_KEY_REUSED``. Same key while the first
request still runs: 409 ``IDEMPOTENCY_KEY_IN_USE`` (retryable). Responses that invite a
retry (5xx, or a problem marked ``retryable``) are not stored, so the retry runs again.
Records expire after ``PROFILE_LEDGER_IDEMPOTENCY_TTL_S``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, cast

import msgspec
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPRequestEvent, HTTPScope, Message, Receive, ReceiveMessage, Scope, Send
from opentelemetry import trace

from libs.kit.errors import AppError, ConflictError, DatabaseError, ProblemDetails, ValidationError, problem_for
from libs.kit.logging import get_logger
from services.profile.shared.metrics import LedgerMetrics
from services.profile.shared.storage.idempotency import ClaimOutcome, SqlIdempotencyStore, StoredResponse
from services.profile.shared.web.problems import PROBLEM_JSON, ErrorMetrics

log = get_logger(__name__)
HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 200
MAX_SCOPE_LENGTH = 300  # profile.idempotency_keys.scope


class IdempotencyKeyReused(ValidationError, code="IDEMPOTENCY_KEY_REUSED", title="Idempotency key reused"): ...


class IdempotencyKeyInUse(
    ConflictError, code="IDEMPOTENCY_KEY_IN_USE", title="Idempotency key in use", retryable=True
): ...


class BodyTooLarge(AppError, code="HTTP_413", status=413, title="Request body too large"): ...


def idempotency_middleware(
    max_body_bytes: int, store: SqlIdempotencyStore, metrics: LedgerMetrics, error_metrics: ErrorMetrics
) -> Callable[..., ASGIApp]:
    """A Litestar middleware factory."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            key = _header(scope, HEADER) if scope["type"] == ScopeType.HTTP else None
            if key is None or cast("HTTPScope", scope)["method"] != "POST":
                await app(scope, receive, send)
                return
            try:
                await _idempotent(app, cast("HTTPScope", scope), receive, send, key)
            except AppError as exc:
                await send_problem(scope, send, exc, error_metrics)

        return handle

    async def _idempotent(
        app: ASGIApp,
        scope: HTTPScope,
        receive: Receive,
        send: Send,
        key: str,
    ) -> None:
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            message = f"Idempotency-Key must have 1 to {MAX_KEY_LENGTH} characters"
            raise ValidationError(message, errors=[{"key": "Idempotency-Key", "message": message, "source": "header"}])
        # Authorize before anything is claimed or replayed: a stored response is no way around a guard.
        await scope["route_handler"].authorize_connection(ASGIConnection(scope, receive, send))
        body = await read_body(receive, max_body_bytes)
        route = _key_scope(scope)
        request_hash = hashlib.sha256(b"\0".join([route.encode(), scope.get("query_string", b""), body])).hexdigest()
        claim = await store.claim(route, key, request_hash)
        metrics.idempotency.labels(claim.outcome.value).inc()
        if claim.outcome is ClaimOutcome.MISMATCH:
            raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was used for another request to {scope['path']}")
        if claim.outcome is ClaimOutcome.IN_PROGRESS:
            raise IdempotencyKeyInUse(f"a request with Idempotency-Key {key!r} is still running; retry shortly")
        if claim.outcome is ClaimOutcome.REPLAY and claim.stored is not None:
            await _send_stored(send, claim.stored, replayed=True)
            return
        captured = _Capture()
        try:
            await app(scope, replay_body(body, receive), captured)
        except BaseException:
            await store.release(route, key)
            raise
        response = captured.response()
        if _worth_storing(response):
            try:
                await store.complete(route, key, response)
            except DatabaseError as exc:  # the effect happened: answer anyway, a retry may run it again
                log.exception("idempotency_store_failed", path=scope["path"], error=exc.detail)
        else:
            await store.release(route, key)
        await _send_stored(send, response, replayed=False)

    return middleware


class _Capture:
    """Buffers the response so it is stored before the client can see it (and retry)."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))

    def response(self) -> StoredResponse:
        return StoredResponse(self.status, self.headers, b"".join(self.chunks))


def _worth_storing(response: StoredResponse) -> bool:
    if response.status_code >= 500:  # noqa: PLR2004
        return False
    if response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        try:
            problem: dict[str, Any] = msgspec.json.decode(response.body)
        except msgspec.DecodeError:
            return True
        return not problem.get("retryable", False)
    return True


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay_body(body: bytes, original: Receive) -> Receive:
    """The body already read, then the client's own channel (a disconnect, eventually)."""
    sent = False

    async def receive() -> ReceiveMessage:
        nonlocal sent
        if sent:
            return await original()
        sent = True
        return HTTPRequestEvent(type="http.request", body=body, more_body=False)

    return receive


async def _send_stored(send: Send, response: StoredResponse, *, replayed: bool) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


async def send_problem(scope: Scope, send: Send, error: AppError, metrics: ErrorMetrics) -> None:
    metrics.errors.labels(error.code, str(error.status)).inc()
    log.info("request_failed", code=error.code, status=error.status, path=scope["path"], detail=error.detail)
    context = trace.get_current_span().get_span_context()
    trace_id = format(context.trace_id, "032x") if context.is_valid else None
    problem: ProblemDetails = problem_for(error, scope["path"], trace_id)
    body = msgspec.json.encode(problem)
    headers = {"content-type": PROBLEM_JSON, "content-length": str(len(body))}
    if error.retryable:
        headers["retry-after"] = "1"
    if error.status == 401:  # noqa: PLR2004
        headers["www-authenticate"] = 'Bearer realm="customer-profile"'
    await _send_stored(send, StoredResponse(error.status, headers, body), replayed=False)


def _key_scope(scope: HTTPScope) -> str:
    """Keys belong to one caller on one path: another caller's key replays nothing of theirs."""
    principal = scope.get("user")
    subject = getattr(principal, "subject", "")
    readable = f"POST {scope['path']} by {subject}"
    if len(readable) <= MAX_SCOPE_LENGTH:
        return readable
    return "POST sha256:" + hashlib.sha256(readable.encode()).hexdigest()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None

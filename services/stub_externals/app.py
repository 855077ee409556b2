"""The stub's aiohttp application and an in-process starter for tests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Self

import msgspec
from aiohttp import web

from contracts.external_systems import IDEMPOTENCY_KEY_HEADER, SIGNATURE_HEADER, SIGNATURE_PREFIX, ExternalSyncRequest
from libs.kit.logging import get_logger
from services.stub_externals.mail import MailStore, RunningSmtp
from services.stub_externals.sms import SMS_KEY, SmsGateway, sms_routes
from services.stub_externals.state import SYSTEM_BY_PATH, SYSTEM_CODES, Fault, FaultMode, StubState

log = get_logger(__name__)
STATE_KEY = web.AppKey("state", StubState)
SECRETS_KEY = web.AppKey("secrets", dict[str, str])
MAIL_KEY = web.AppKey("mail", MailStore)


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """``X-Signature: sha256=<hex HMAC-SHA256 of the body>``.

    Written independently of the connector's signer on purpose: the stub checks
    the wire contract, not a shared implementation.
    """
    if header is None or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix(SIGNATURE_PREFIX))


def _problem(status: int, detail: str) -> web.Response:
    return web.json_response({"status": status, "detail": detail}, status=status)


class _Customer(msgspec.Struct):
    customer_id: str | None = msgspec.field(default=None, name="customerId")


def _customer_of(raw: bytes) -> str | None:
    """The body's customerId, for customer-scoped faults (None when the body is not what we expect)."""
    try:
        return msgspec.json.decode(raw, type=_Customer).customer_id
    except msgspec.DecodeError:
        return None


async def _sync_call(request: web.Request) -> web.StreamResponse:
    state, system = request.app[STATE_KEY], SYSTEM_BY_PATH[request.path]
    key = request.headers.get("Idempotency-Key", "")
    state.call_started(system, key)
    try:
        return await _handle_sync_call(request, state, system)
    finally:
        state.call_ended(system, key)


async def _handle_sync_call(request: web.Request, state: StubState, system: str) -> web.StreamResponse:
    raw = await request.read()
    fault = state.take_fault(system, _customer_of(raw))
    if fault is not None:
        if fault.mode is FaultMode.DOWN:
            # Like a crashed server: the client gets a dropped connection, no answer.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if fault.mode is FaultMode.STATUS:
            return _problem(fault.status, f"injected fault for {system}")
        await asyncio.sleep(fault.latency_ms / 1000)
    secret = request.app[SECRETS_KEY].get(system)
    if secret is not None and not signature_valid(secret, raw, request.headers.get(SIGNATURE_HEADER)):
        return _problem(401, "missing or invalid X-Signature")
    key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
    if not key:
        return _problem(400, "Idempotency-Key header is required")
    try:
        body = msgspec.json.decode(raw, type=ExternalSyncRequest)
    except msgspec.DecodeError as exc:
        return _problem(400, f"invalid body: {exc}")
    reply = state.apply(
        system, request.path, key, headers=dict(request.headers), body=body, raw=msgspec.json.decode(raw)
    )
    return web.json_response(reply.body, status=reply.status)


async def _received(request: web.Request) -> web.Response:
    calls = request.app[STATE_KEY].received(request.query.get("system"))
    return web.Response(body=msgspec.json.encode(calls), content_type="application/json")


async def _stats(request: web.Request) -> web.Response:
    """Per system: distinct Idempotency-Keys applied, 409s, duplicate calls absorbed, faulted calls."""
    return web.Response(body=msgspec.json.encode(request.app[STATE_KEY].stats()), content_type="application/json")


async def _customers(request: web.Request) -> web.Response:
    """What one system (``?system=CRM``) holds per customer: version and name."""
    system = request.query.get("system", "")
    if system not in SYSTEM_CODES:
        return _problem(400, f"query parameter system must be one of {sorted(SYSTEM_CODES)}")
    customers = request.app[STATE_KEY].customers(system)
    return web.Response(body=msgspec.json.encode(customers), content_type="application/json")


async def _add_fault(request: web.Request) -> web.Response:
    try:
        fault = msgspec.json.decode(await request.read(), type=Fault)
    except (msgspec.DecodeError, ValueError) as exc:
        return _problem(400, f"invalid fault: {exc}")
    request.app[STATE_KEY].add_fault(fault)
    return web.json_response(msgspec.to_builtins(fault), status=201)


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[STATE_KEY].clear_faults()
    return web.Response(status=204)


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    request.app[SMS_KEY].reset()
    request.app[MAIL_KEY].reset()
    return web.Response(status=204)


async def _mail(request: web.Request) -> web.Response:
    """The mails the local SMTP server accepted (``STUBS_SMTP_PORT``), oldest first."""
    return web.Response(body=msgspec.json.encode(request.app[MAIL_KEY].received()), content_type="application/json")


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(
    secrets: Mapping[str, str] | None = None,
    state: StubState | None = None,
    *,
    sms: SmsGateway | None = None,
    smtp: RunningSmtp | None = None,
) -> web.Application:
    """The stub application; ``secrets`` maps system code to HMAC secret (unset = unsigned is fine).

    With ``smtp``, the local SMTP server starts and stops with the application (and ``GET /_mail``
    shows what it accepted); a port already taken is logged, and the HTTP stubs serve anyway.
    """
    app = web.Application()
    app[STATE_KEY] = state if state is not None else StubState()
    app[SECRETS_KEY] = dict(secrets or {})
    app[SMS_KEY] = sms if sms is not None else SmsGateway()
    app[MAIL_KEY] = smtp.store if smtp is not None else MailStore()
    if smtp is not None:
        app.cleanup_ctx.append(_smtp_running(smtp))
    app.router.add_routes([web.post(path, _sync_call) for path in SYSTEM_BY_PATH])
    app.router.add_routes([*sms_routes(), web.get("/_mail", _mail)])
    app.router.add_routes(
        [
            web.get("/_received", _received),
            web.get("/_stats", _stats),
            web.get("/_customers", _customers),
            web.post("/_faults", _add_fault),
            web.delete("/_faults", _clear_faults),
            web.post("/_reset", _reset),
            web.get("/health", _health),
        ]
    )
    return app


def _smtp_running(smtp: RunningSmtp) -> Callable[[web.Application], AsyncIterator[None]]:
    async def running(_: web.Application) -> AsyncIterator[None]:
        try:
            await smtp.start()
            log.info("stub_smtp_started", host=smtp.host, port=smtp.port)
        except OSError as exc:
            log.error("stub_smtp_unavailable", host=smtp.host, port=smtp.port, error=repr(exc))  # noqa: TRY400 - a busy port needs no traceback
        yield
        await smtp.stop()

    return running


class RunningStub:
    """A stub server listening on a real socket; ``url`` is its base URL."""

    def __init__(self, runner: web.AppRunner, state: StubState, url: str, sms: SmsGateway) -> None:
        self._runner = runner
        self.state = state
        self.url = url
        self.sms = sms

    async def close(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def start_stub_server(
    port: int = 0, *, host: str = "127.0.0.1", secrets: Mapping[str, str] | None = None
) -> RunningStub:
    """Start the stub in this event loop; port 0 picks a free port (see ``RunningStub.url``)."""
    state, sms = StubState(), SmsGateway()
    runner = web.AppRunner(create_app(secrets, state, sms=sms), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningStub(runner, state, f"http://{bound_host}:{bound_port}", sms)

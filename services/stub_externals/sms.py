"""A fake SMS gateway: ``POST /sms/send`` (idempotent by ``Idempotency-Key``), ``GET /_sms``, faults.

The contract the connector's SMS channel speaks: JSON ``{"to", "text",
"reference"}``; 2xx ``{"messageId"}`` = accepted; a repeated key replays the
first answer and sends nothing again; 408/429/5xx = try later; other 4xx = never.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import msgspec
from aiohttp import web

from services.stub_externals.state import FaultMode

SEND_PATH = "/sms/send"


class SmsRequest(msgspec.Struct, frozen=True):
    to: str
    text: str
    reference: str | None = None


class SmsMessage(msgspec.Struct, frozen=True, rename="camel"):
    message_id: str
    to: str
    text: str
    reference: str | None
    idempotency_key: str
    received_at: datetime
    traceparent: str | None = None  # the sender's trace, when it propagates one


class SmsFault(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The next ``count`` sends (every send when None) get ``status``, or a dropped connection (``down``)."""

    mode: FaultMode = FaultMode.STATUS
    status: int = 503
    count: int | None = None


class SmsGateway:
    def __init__(self) -> None:
        self._messages: list[SmsMessage] = []
        self._replies: dict[str, tuple[int, dict[str, str]]] = {}
        self._faults: list[SmsFault] = []
        self._ids = itertools.count(1)
        self.duplicate_calls = 0

    def messages(self, to: str | None = None) -> list[SmsMessage]:
        return [m for m in self._messages if to is None or m.to == to]

    def add_fault(self, fault: SmsFault) -> None:
        self._faults.append(fault)

    def reset(self) -> None:
        self._messages.clear()
        self._replies.clear()
        self._faults.clear()
        self.duplicate_calls = 0

    def take_fault(self) -> SmsFault | None:
        if not self._faults:
            return None
        fault = self._faults[0]
        if fault.count is not None:
            if fault.count <= 1:
                self._faults.pop(0)
            else:
                self._faults[0] = msgspec.structs.replace(fault, count=fault.count - 1)
        return fault

    def send(self, key: str, request: SmsRequest, traceparent: str | None = None) -> tuple[int, dict[str, str]]:
        """Accept one message; a repeated key replays the first answer and is not sent again."""
        if (replay := self._replies.get(key)) is not None:
            self.duplicate_calls += 1
            return replay
        message_id = f"SMS-{next(self._ids):06d}"
        self._messages.append(
            SmsMessage(message_id, request.to, request.text, request.reference, key, datetime.now(UTC), traceparent)
        )
        reply = (200, {"messageId": message_id, "status": "accepted"})
        self._replies[key] = reply
        return reply


SMS_KEY = web.AppKey("sms", SmsGateway)


def _problem(status: int, detail: str) -> web.Response:
    return web.json_response({"status": status, "detail": detail}, status=status)


async def _send(request: web.Request) -> web.StreamResponse:
    gateway = request.app[SMS_KEY]
    if (fault := gateway.take_fault()) is not None:
        if fault.mode is FaultMode.DOWN:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        return _problem(fault.status, "injected fault for SMS")
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return _problem(400, "Idempotency-Key header is required")
    try:
        body = msgspec.json.decode(await request.read(), type=SmsRequest)
    except msgspec.DecodeError as exc:
        return _problem(400, f"invalid body: {exc}")
    if not body.to or not body.text:
        return _problem(422, "to and text are required")
    status, reply = gateway.send(key, body, request.headers.get("traceparent"))
    return web.json_response(reply, status=status)


async def _messages(request: web.Request) -> web.Response:
    messages = request.app[SMS_KEY].messages(request.query.get("to"))
    return web.Response(body=msgspec.json.encode(messages), content_type="application/json")


async def _add_fault(request: web.Request) -> web.Response:
    try:
        fault = msgspec.json.decode(await request.read(), type=SmsFault)
    except msgspec.DecodeError as exc:
        return _problem(400, f"invalid fault: {exc}")
    request.app[SMS_KEY].add_fault(fault)
    return web.json_response(msgspec.to_builtins(fault), status=201)


def sms_routes() -> list[web.RouteDef]:
    return [
        web.post(SEND_PATH, _send),
        web.get("/_sms", _messages),
        web.post("/_sms/faults", _add_fault),
    ]

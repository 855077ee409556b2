"""The two channels: e-mail over SMTP (aiosmtplib) and SMS through an HTTP gateway.

Each answers one send with an ``Outcome`` the retry policy understands:
``applied`` (accepted for delivery), ``retryable`` (no answer, a 4xx SMTP reply,
HTTP 408/429/5xx) or ``rejected`` (a 5xx SMTP reply, another HTTP 4xx, an
address that is not one). Neither channel is exactly-once on the wire: the SMS
gateway gets ``Idempotency-Key: <event id>:sms`` and dedupes repeats; an
e-mail carries ``Message-ID: <<event id>.email@domain>`` on every attempt, so a
repeat after a crash between "accepted" and "recorded" is recognisable.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime
from http import HTTPStatus
from typing import Protocol

import aiohttp
import aiosmtplib
import msgspec

from services.sync_connector.http_clients import HttpClient
from services.sync_connector.notify.contacts import Contact
from services.sync_connector.notify.settings import Channel, NotifySettings, SmtpSecurity
from services.sync_connector.notify.templates import RenderedNotice
from services.sync_connector.outcome import TRANSIENT_4XX, Classification, Outcome, classify_transport_error

SMS_PATH = "/sms/send"
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_PHONE = re.compile(r"\+?[0-9]{5,20}")
_SMTP_TRANSIENT_CLASS = 4  # 4xx replies: "try again later"


class SendResult(msgspec.Struct, frozen=True):
    classification: Classification
    message_id: str | None = None
    reached: bool = True  # False: refused before any network call (an invalid address)


class Transport(Protocol):
    @property
    def channel(self) -> Channel: ...

    def address_of(self, contact: Contact) -> str | None:
        """This channel's address in the contact data, None when the customer has none."""
        ...

    async def send(self, *, event_id: str, to: str, notice: RenderedNotice) -> SendResult: ...


def _invalid_address(detail: str) -> SendResult:
    return SendResult(Classification(Outcome.REJECTED, detail), reached=False)


class EmailTransport:
    def __init__(self, settings: NotifySettings) -> None:
        self._settings = settings
        self._sender = Address(display_name=settings.mail_from_name, addr_spec=settings.mail_from)

    @property
    def channel(self) -> Channel:
        return Channel.EMAIL

    def address_of(self, contact: Contact) -> str | None:
        return (contact.contact_email or "").strip() or None

    def message_id(self, event_id: str) -> str:
        return f"<{event_id}.{Channel.EMAIL.value}@{self._settings.message_id_domain}>"

    def build(self, *, event_id: str, to: str, notice: RenderedNotice) -> EmailMessage:
        """The message; ValueError when ``to`` is not exactly one valid address (header injection included)."""
        try:
            recipient = Address(addr_spec=to)
        except (ValueError, TypeError) as exc:  # the email package's header defects are ValueErrors/TypeErrors
            raise ValueError("the customer's e-mail address is not a valid address") from exc
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = recipient
        message["Subject"] = notice.subject
        message["Date"] = format_datetime(localtime())
        message["Message-ID"] = self.message_id(event_id)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
        message.set_content(notice.body, subtype="plain", charset="utf-8")
        message["Content-Language"] = notice.language.value  # after set_content, which resets Content-*
        return message

    async def send(self, *, event_id: str, to: str, notice: RenderedNotice) -> SendResult:
        try:
            message = self.build(event_id=event_id, to=to, notice=notice)
        except ValueError as exc:
            return _invalid_address(str(exc))
        return await send_smtp(self._settings, message)


async def send_smtp(settings: NotifySettings, message: EmailMessage) -> SendResult:
    """One message through the configured SMTP server (customer e-mail and the admins' mail alike)."""
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=settings.smtp_password or None,
            use_tls=settings.smtp_security is SmtpSecurity.TLS,
            start_tls=settings.smtp_security is SmtpSecurity.STARTTLS,
            timeout=settings.timeout_s,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [refused.code for refused in exc.recipients]
        return SendResult(_smtp_reply(min(codes, default=550), f"recipient refused: {codes}"))
    except aiosmtplib.SMTPResponseException as exc:
        return SendResult(_smtp_reply(exc.code, exc.message))
    except (aiosmtplib.SMTPException, OSError) as exc:  # connect/read timeouts, refused, dropped
        return SendResult(classify_transport_error("smtp", f"{type(exc).__name__}: {exc}"))
    return SendResult(Classification(Outcome.APPLIED, "SMTP 250"), message["Message-ID"])


def _smtp_reply(code: int, text: str) -> Classification:
    detail = f"SMTP {code}: {text[:200]}"
    if code // 100 == _SMTP_TRANSIENT_CLASS:
        return Classification(Outcome.RETRYABLE, detail)
    return Classification(Outcome.REJECTED, detail)


class _GatewayReply(msgspec.Struct):
    message_id: str | None = msgspec.field(default=None, name="messageId")


class SmsTransport:
    """Sends through the gateway's own ``HttpClient`` (its pool; waiting for a connection is not failing)."""

    def __init__(self, settings: NotifySettings, client: HttpClient) -> None:
        self._url = settings.sms_url.rstrip("/") + SMS_PATH
        self._token = settings.sms_token
        self._client = client

    @property
    def channel(self) -> Channel:
        return Channel.SMS

    def address_of(self, contact: Contact) -> str | None:
        return (contact.contact_phone or "").strip() or None

    async def send(self, *, event_id: str, to: str, notice: RenderedNotice) -> SendResult:
        number = _PHONE_SEPARATORS.sub("", to)
        if not _PHONE.fullmatch(number):
            return _invalid_address("the customer's phone number is not a valid number")
        key = f"{event_id}:{Channel.SMS.value}"
        headers = {"Idempotency-Key": key}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        body = {"to": number, "text": notice.body, "reference": key}
        try:
            async with self._client.request("POST", self._url, json=body, headers=headers) as response:
                status, raw = response.status, await response.read()
        except TimeoutError:
            return SendResult(classify_transport_error("timeout", f"no answer from {self._url} within the timeout"))
        except aiohttp.ClientError as exc:
            return SendResult(classify_transport_error("connection_error", f"{type(exc).__name__}: {exc}"))
        return _gateway_result(status, raw)


def _gateway_result(status: int, raw: bytes) -> SendResult:
    detail = f"HTTP {status}: {raw[:200].decode(errors='replace')}"
    if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
        try:
            message_id = msgspec.json.decode(raw, type=_GatewayReply).message_id
        except msgspec.DecodeError:
            message_id = None
        return SendResult(Classification(Outcome.APPLIED, f"HTTP {status}"), message_id)
    if status in TRANSIENT_4XX or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return SendResult(Classification(Outcome.RETRYABLE, detail))
    return SendResult(Classification(Outcome.REJECTED, detail))

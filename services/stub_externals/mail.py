"""A local SMTP server (aiosmtpd) that accepts every mail and keeps it in memory, for ``make run`` and tests.

Runs on the caller's event loop (no thread): ``start_smtp_server`` binds it,
``RunningSmtp.stop`` closes the socket (connections are refused, as with a
server that is down) and ``start`` binds the same port again. What arrived is
``GET /_mail`` on the stub's HTTP port, or ``MailStore.received()``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import msgspec
from aiosmtpd.smtp import SMTP, Envelope, Session

STUB_SMTP_HOSTNAME = "stub-smtp.localhost"


class ReceivedMail(msgspec.Struct, frozen=True, rename="camel"):
    envelope_from: str
    envelope_to: list[str]
    headers: dict[str, str]  # decoded (RFC 2047) header values
    subject: str
    body: str  # the decoded text/plain part
    received_at: datetime


class MailStore:
    """Every mail the server accepted, in arrival order."""

    def __init__(self) -> None:
        self._mails: list[ReceivedMail] = []

    def received(self) -> list[ReceivedMail]:
        return list(self._mails)

    def reset(self) -> None:
        self._mails.clear()

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,  # noqa: ARG002 - the hook's signature
        session: Session,  # noqa: ARG002
        envelope: Envelope,
    ) -> str:
        raw = envelope.original_content or envelope.content
        content = raw if isinstance(raw, bytes) else str(raw).encode()
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(preferencelist=("plain",))
        self._mails.append(
            ReceivedMail(
                envelope_from=str(envelope.mail_from),
                envelope_to=[str(rcpt) for rcpt in envelope.rcpt_tos],
                headers={name: str(value).strip() for name, value in message.items()},  # unfolded
                subject=str(message.get("Subject", "")),
                body=body.get_content().replace("\r\n", "\n") if body is not None else "",
                received_at=datetime.now(UTC),
            )
        )
        return "250 Message accepted for delivery"


class RunningSmtp:
    """An SMTP server listening on a real socket; ``port`` stays the same across stop/start."""

    def __init__(self, store: MailStore, host: str, port: int) -> None:
        self.store = store
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._sessions: list[SMTP] = []

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command at INFO

        def protocol() -> Any:
            session = SMTP(self.store, hostname=STUB_SMTP_HOSTNAME, enable_SMTPUTF8=True)
            self._sessions = [s for s in self._sessions if s.transport is not None and not s.transport.is_closing()]
            self._sessions.append(session)
            return session

        self._server = await asyncio.get_running_loop().create_server(protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the socket and drop open sessions: a sender now gets connection refused."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for session in self._sessions:
                if session.transport is not None:
                    session.transport.close()
            self._sessions.clear()
            await server.wait_closed()


async def start_smtp_server(port: int = 0, *, host: str = "127.0.0.1", store: MailStore | None = None) -> RunningSmtp:
    """Start the SMTP server in this event loop; port 0 picks a free port (see ``RunningSmtp.port``)."""
    smtp = RunningSmtp(store if store is not None else MailStore(), host, port)
    await smtp.start()
    return smtp

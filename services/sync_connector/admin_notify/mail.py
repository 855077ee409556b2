"""The admins' mail as a channel of the delivery engine: its ledger is ``sync.admin_notifications``, its call
renders one window (cause, count, first examples) and sends it over SMTP to the admins' list.

The Message-ID is ``<notice id>.admin@domain`` on every attempt, so a repeat after a crash between
"accepted" and "recorded" is recognisable. A window is mailed once: the occurrences it counts after the
mail went are on the console (``/console/admin-notifications``), not in another mail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.kit.logging import get_logger
from services.sync_connector.admin_notify.causes import code_of, text_of
from services.sync_connector.admin_notify.metrics import AdminNotifyMetrics
from services.sync_connector.admin_notify.settings import AdminNotifySettings
from services.sync_connector.admin_notify.store import (
    AdminNotificationRecord,
    AdminSettlement,
    AdminStatus,
    AdminUnitOfWork,
)
from services.sync_connector.attempts import Attempted, CallResult
from services.sync_connector.clock import SYSTEM_CLOCK, Clock
from services.sync_connector.engine import Expired
from services.sync_connector.ledger_sql import TableLedger
from services.sync_connector.notify.channels import send_smtp
from services.sync_connector.notify.settings import NotifySettings
from services.sync_connector.outcome import Outcome, SyncStatus

log = get_logger(__name__)
ADMIN_CODE = "ADMIN"  # the breaker's and the scheduler's label
_STATUS_OF = {
    SyncStatus.SUCCESS: AdminStatus.SENT,
    SyncStatus.RETRYING: AdminStatus.RETRYING,
    SyncStatus.FAILED: AdminStatus.FAILED,
}


def status_of(result: CallResult) -> str:
    return _STATUS_OF.get(result.status, AdminStatus.FAILED)


def _when(at: datetime, zone: tzinfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def render(record: AdminNotificationRecord, settings: AdminNotifySettings, zone: tzinfo) -> tuple[str, str]:
    """Subject and body of one window's mail."""
    about = text_of(record.cause_key)
    code = code_of(record.cause_key)
    where = f" ({code})" if code else ""
    count = record.occurrences
    subject = f"{settings.subject_prefix} {about.title}{where}: {count} since {_when(record.first_seen_at, zone)}"
    lines = [
        f"{about.title}{where}.",
        "",
        f"Cause: {record.cause_key}",
        f"Occurrences: {count} between {_when(record.first_seen_at, zone)} and {_when(record.last_seen_at, zone)}",
        (
            f"Window: {_when(record.window_start, zone)} to {_when(record.window_end, zone)}. Further occurrences "
            "in this window are counted on the console, not mailed; after it, the next one opens a new window."
        ),
        "",
        f"What to do: {about.action}",
        f"Runbook: docs/runbook.md#{about.runbook}",
    ]
    if settings.console_url:
        lines.append(f"Console: {settings.console_url.rstrip('/')}/console/admin-notifications/{record.id}")
    shown = record.examples
    lines += ["", f"First {len(shown)} of {count}:" if count > len(shown) else "Occurrences:"]
    for example in shown:
        lines.append(f"- {_when(example.at, zone)}  {example.subject}")
        if example.detail:
            lines.append(f"    {example.detail}")
    return subject, "\n".join(lines) + "\n"


@dataclass(eq=False, repr=False)
class AdminMailChannel:
    """The admins' mail as a channel of the delivery engine."""

    engine: AsyncEngine
    settings: AdminNotifySettings
    smtp: NotifySettings
    metrics: AdminNotifyMetrics
    _: KW_ONLY
    clock: Clock = SYSTEM_CLOCK
    _sender: Address = field(init=False)

    def __post_init__(self) -> None:
        self._sender = Address(addr_spec=self.settings.mail_from or self.smtp.mail_from)

    @property
    def code(self) -> str:
        return ADMIN_CODE

    @asynccontextmanager
    async def ledger(self) -> AsyncIterator[TableLedger[AdminNotificationRecord]]:
        async with AdminUnitOfWork(self.engine, self.clock) as uow:
            yield TableLedger(uow, uow.admin, status_of)

    def message_id(self, record: AdminNotificationRecord) -> str:
        return f"<{record.notice_id}.admin@{self.smtp.message_id_domain}>"

    def build(self, record: AdminNotificationRecord) -> EmailMessage:
        subject, body = render(record, self.settings, self.smtp.zone)
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = [Address(addr_spec=address) for address in self.settings.to]
        message["Subject"] = subject
        message["Date"] = format_datetime(localtime())
        message["Message-ID"] = self.message_id(record)
        message["Auto-Submitted"] = "auto-generated"
        message["X-Admin-Cause"] = record.cause_key
        message.set_content(body, subtype="plain", charset="utf-8")
        return message

    async def call(self, record: AdminNotificationRecord) -> Attempted:
        sent = await send_smtp(self.smtp, self.build(record))
        applied = sent.classification.outcome is Outcome.APPLIED
        return Attempted(
            sent.classification,
            label="sent" if applied else sent.classification.outcome.value,
            extra={"message_id": sent.message_id, "occurrences": str(record.occurrences)},
        )

    def status_of(self, result: CallResult) -> str:
        return status_of(result)

    def deferred(self, record: AdminNotificationRecord, wait_s: float) -> None:  # noqa: ARG002 - the protocol's
        self.metrics.attempts.labels("circuit_open").inc()

    def attempted(self, result: CallResult) -> None:
        self.metrics.attempts.labels(result.attempted.label or result.classification.outcome.value).inc()
        self.metrics.attempt_seconds.observe(result.duration_s)

    def settled(self, settlement: AdminSettlement) -> None:
        record, result = settlement.record, settlement.result
        status = status_of(result)
        self.metrics.mails.labels(status).inc()
        fields = {"admin_notification_id": record.id, "cause": record.cause_key, "occurrences": record.occurrences}
        if status == AdminStatus.SENT:
            log.info("admin_notification_sent", **fields)
        elif status == AdminStatus.RETRYING:
            log.warning("admin_notification_retry", error=result.error, retry_in_s=round(result.delay_s, 3), **fields)
        else:
            log.error("admin_notification_failed", error=result.error, **fields)

    def lost(self, settlement: AdminSettlement) -> None:
        log.warning("admin_notification_claim_lost", admin_notification_id=settlement.record.id)

    def not_recorded(self, count: int, error: Exception, wait_s: float) -> None:
        log.warning("admin_notification_not_recorded", records=count, error=repr(error), retry_in_s=round(wait_s, 3))

    def expired(self, expired: Expired, detail: str) -> None:
        self.metrics.mails.labels(AdminStatus.FAILED).inc()
        log.error(
            "admin_notification_failed", admin_notification_id=expired.id, cause=expired.customer_id, error=detail
        )

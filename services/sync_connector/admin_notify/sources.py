"""The connector's own tables whose rows are causes an admin must hear of: each source's rows not yet noted
(taken locked, others skipped) become occurrences, and are marked noted in the transaction that counts them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec
from sqlalchemy import RowMapping, TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.sync_connector.admin_notify.causes import CauseKind
from services.sync_connector.admin_notify.store import Occurrence


class SourceRow(msgspec.Struct, frozen=True):
    """A row of one of the connector's sources, ready to be counted."""

    id: int
    code: str
    occurrence: Occurrence


@dataclass(frozen=True)
class TableSource:
    """``pending`` selects ``id``, ``code`` (the cause's code), ``at``, ``detail`` and what ``key`` (the
    occurrence's key) and ``summary`` read, at most ``:limit`` rows."""

    name: str  # the source's label in admin_notification_sweep_errors
    kind: CauseKind
    table: str
    pending: TextClause
    key: Callable[[RowMapping], str]
    summary: Callable[[RowMapping], str]

    async def take(self, connection: AsyncConnection, limit: int) -> list[SourceRow]:
        rows = (await connection.execute(self.pending, {"limit": limit})).mappings().all()
        return [
            SourceRow(r["id"], r["code"], Occurrence(self.key(r), r["at"], self.summary(r), r["detail"])) for r in rows
        ]

    async def note(self, connection: AsyncConnection, ids: Sequence[int]) -> None:
        noted = f"UPDATE {self.table} SET admin_noted_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))"  # noqa: S608
        await connection.execute(text(noted), {"ids": list(ids)})


TABLE_SOURCES = (
    TableSource(
        "dead_letters",
        CauseKind.DEAD_LETTER,
        "sync.dead_letters",
        text("""
            SELECT id, system_code AS code, customer_id, event_id::text AS event_id, reason, last_error AS detail,
                   created_at AS at
            FROM sync.dead_letters WHERE admin_noted_at IS NULL
            ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
        """),
        lambda r: f"dead-letter:{r['id']}",
        lambda r: f"customer {r['customer_id']}, event {r['event_id']} ({r['reason']})",
    ),
    TableSource(
        "notifications",
        CauseKind.NOTIFICATION_FAILED,
        "sync.notification_records",
        text("""
            SELECT id, upper(channel) AS code, customer_id, event_id::text AS event_id, resend_count,
                   last_error AS detail, COALESCE(completed_at, updated_at) AS at
            FROM sync.notification_records WHERE status = 'failed' AND admin_noted_at IS NULL
            ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
        """),
        lambda r: f"notification:{r['id']}:{r['resend_count']}",
        lambda r: f"customer {r['customer_id']}, event {r['event_id']}, notification {r['id']}",
    ),
    TableSource(
        "unprocessable",
        CauseKind.UNPROCESSABLE,
        "sync.unprocessable_messages",
        text("""
            SELECT id, system_code AS code, customer_id, event_id, reason, error AS detail, created_at AS at,
                   topic || '/' || kafka_partition || '/' || kafka_offset AS source
            FROM sync.unprocessable_messages WHERE admin_noted_at IS NULL
            ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
        """),
        lambda r: f"unprocessable:{r['id']}",
        lambda r: (
            f"message {r['source']} ({r['reason']})" + (f", customer {r['customer_id']}" if r["customer_id"] else "")
        ),
    ),
)

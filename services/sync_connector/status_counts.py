"""Current state of the records without scanning their history: counts per (system, status) and open-record ages.

``sync.record_status_counts`` is kept by the records' triggers (sync_0004): each insert,
status change and delete appends a delta row to ``sync.record_status_deltas``; ``fold``
adds the deltas into the counts (bounded, SKIP LOCKED, so instances never wait on each
other) and the readers add the counts and whatever deltas are not folded yet. Both tables
stay small: one row per (system, status), plus a few seconds of deltas.

The oldest open record and the records near their deadline come from partial indexes of the
open rows (``ix_sync_open_created`` by system and creation time, ``ix_sync_deadline`` by system
and ``deliver_by``): a lookup and a range scan of the open records only.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.sync_connector.outcome import SyncStatus

FOLD_LIMIT = 10_000

_FOLD = text("""
    WITH folded AS (
        DELETE FROM sync.record_status_deltas
        WHERE id IN (SELECT id FROM sync.record_status_deltas ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
        RETURNING system_code, status, delta
    ), added AS (
        INSERT INTO sync.record_status_counts AS c (system_code, status, n)
        SELECT system_code, status, sum(delta) FROM folded GROUP BY system_code, status ORDER BY system_code, status
        ON CONFLICT (system_code, status) DO UPDATE SET n = c.n + EXCLUDED.n
    )
    SELECT count(*) FROM folded
""")
# One snapshot: a fold that committed is in the counts, one that did not is still in the deltas.
_COUNTS = text("""
    SELECT system_code, status, sum(n)::bigint AS n FROM (
        SELECT system_code, status, n FROM sync.record_status_counts
        UNION ALL
        SELECT system_code, status, delta FROM sync.record_status_deltas
    ) AS c
    GROUP BY system_code, status
""")
# The status lists match the predicates of ix_sync_open_created (system, created_at) and
# ix_sync_deadline (system, deliver_by). A record without deliver_by (an admin re-drove it) gets a
# full deadline at its next attempt: it is not near one.
_OPEN_AGES = text("""
    SELECT s.code AS system_code, o.oldest, now() AS now,
           (SELECT count(*) FROM sync.external_sync_records r
            WHERE r.system_code = s.code AND r.sync_status IN ('pending', 'retrying')
              AND r.deliver_by <= now() + make_interval(secs => :window_s)) AS near_deadline
    FROM unnest(CAST(:codes AS text[])) AS s(code)
    CROSS JOIN LATERAL (
        SELECT min(r.created_at) AS oldest FROM sync.external_sync_records r
        WHERE r.system_code = s.code AND r.sync_status IN ('pending', 'retrying')
    ) AS o
""")
_OLDEST_OPEN = text("""
    SELECT s.code, o.oldest FROM unnest(CAST(:codes AS text[])) AS s(code)
    CROSS JOIN LATERAL (
        SELECT min(r.created_at) AS oldest FROM sync.external_sync_records r
        WHERE r.system_code = s.code AND r.sync_status IN ('pending', 'retrying')
    ) AS o
""")


class OpenRecords(msgspec.Struct, frozen=True):
    """One system's undelivered records: the oldest's creation time, how many are near their deadline."""

    oldest_created_at: datetime | None
    oldest_age_s: float
    near_deadline: int


async def fold(connection: AsyncConnection, limit: int = FOLD_LIMIT) -> int:
    """Add up to ``limit`` pending deltas into the counts; returns how many were folded."""
    return int((await connection.execute(_FOLD, {"limit": limit})).scalar_one())


async def status_counts(connection: AsyncConnection, system_codes: list[str]) -> dict[str, dict[str, int]]:
    """Records per status for each system (every status, zero when none; other systems seen are included)."""
    counts: dict[str, dict[str, int]] = {code: dict.fromkeys(map(str, SyncStatus), 0) for code in system_codes}
    for code, status, n in (await connection.execute(_COUNTS)).tuples():
        counts.setdefault(code, dict.fromkeys(map(str, SyncStatus), 0))[status] = int(n)
    return counts


async def open_records(connection: AsyncConnection, system_codes: list[str], window_s: float) -> dict[str, OpenRecords]:
    """Per system: the oldest open record and how many open records are within ``window_s`` of their
    delivery deadline (``deliver_by``) or past it."""
    rows = (await connection.execute(_OPEN_AGES, {"codes": system_codes, "window_s": window_s})).mappings()
    found: dict[str, OpenRecords] = {}
    for row in rows:
        oldest: datetime | None = row["oldest"]
        age = 0.0 if oldest is None else max((row["now"] - oldest).total_seconds(), 0.0)
        found[row["system_code"]] = OpenRecords(oldest, age, int(row["near_deadline"]))
    return found


async def oldest_open(connection: AsyncConnection, system_codes: list[str]) -> dict[str, datetime | None]:
    """Per system, when its oldest open (pending or retrying) record was created; None when none is open."""
    rows = await connection.execute(_OLDEST_OPEN, {"codes": system_codes})
    return dict(rows.tuples().all())

"""Idempotency-Key records: claim a key, then store the response (or release the key).

A key is claimed in its own short transaction before the request runs, so two requests
with the same key never both run; the response is stored after the request's own
transaction committed. A process that dies in between leaves a claim whose lease
expires; the key may then be claimed again and the request run again (the use cases
refuse a second effect: a duplicate customer id, an already decided application).

Stored bodies are responses as sent, so a created customer's contact data is among them
until the record expires: ``response_body`` is sealed (AES-256-GCM, bound to the scope and
key, ``response_key_id`` names the key) and opened only to replay it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import msgspec
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.kit.db_faults import DATABASE_ERRORS
from libs.kit.errors import DatabaseError
from services.profile.shared.storage.contact_crypto import ContactProtector
from services.profile.shared.storage.tables import idempotency_keys

IN_PROGRESS = "in_progress"
COMPLETED = "completed"


class StoredResponse(msgspec.Struct, frozen=True):
    status_code: int
    headers: dict[str, str]
    body: bytes


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # run the request, then complete() or release()
    REPLAY = "replay"  # answer with the stored response
    MISMATCH = "mismatch"  # the key was used with another request
    IN_PROGRESS = "in_progress"  # a request with this key is running


class Claim(msgspec.Struct, frozen=True):
    outcome: ClaimOutcome
    stored: StoredResponse | None = None


@dataclass(frozen=True)
class SqlIdempotencyStore:
    engine: AsyncEngine
    protector: ContactProtector
    ttl: timedelta
    lease: timedelta
    clock: Callable[[], datetime]

    async def claim(self, scope: str, key: str, request_hash: str) -> Claim:
        now = self.clock()
        fresh = {
            "request_hash": request_hash,
            "state": IN_PROGRESS,
            "status_code": None,
            "response_headers": None,
            "response_body": None,
            "response_key_id": None,
            "created_at": now,
            "locked_until": now + self.lease,
            "expires_at": now + self.ttl,
        }
        k = idempotency_keys.c
        where = (k.scope == scope) & (k.idempotency_key == key)
        async with self._transaction() as connection:
            inserted = await connection.execute(
                pg_insert(idempotency_keys)
                .values(scope=scope, idempotency_key=key, **fresh)
                .on_conflict_do_nothing()
                .returning(k.scope)
            )
            if inserted.first() is not None:
                return Claim(ClaimOutcome.CLAIMED)
            row = (await connection.execute(select(idempotency_keys).where(where).with_for_update())).mappings().first()
            claim, take_over = _on_existing(row, request_hash, now)
            if claim.outcome is ClaimOutcome.REPLAY and row is not None:
                claim = Claim(ClaimOutcome.REPLAY, self._stored(scope, key, row))
            if take_over:
                values = fresh if row is None or row["expires_at"] <= now else {"locked_until": now + self.lease}
                await connection.execute(update(idempotency_keys).where(where).values(values))
            return claim

    def _stored(self, scope: str, key: str, row: RowMapping) -> StoredResponse:
        body = self.protector.open_response(scope, key, bytes(row["response_body"]))
        return StoredResponse(row["status_code"], dict(row["response_headers"]), body)

    async def complete(self, scope: str, key: str, response: StoredResponse) -> None:
        sealed, key_id = self.protector.seal_response(scope, key, response.body)
        k = idempotency_keys.c
        async with self._transaction() as connection:
            await connection.execute(
                update(idempotency_keys)
                .where(k.scope == scope, k.idempotency_key == key)
                .values(
                    state=COMPLETED,
                    status_code=response.status_code,
                    response_headers=response.headers,
                    response_body=sealed,
                    response_key_id=key_id,
                    locked_until=None,
                )
            )

    async def release(self, scope: str, key: str) -> None:
        """Forget a claim whose request ended in a retryable failure: the client may try again."""
        k = idempotency_keys.c
        async with self._transaction() as connection:
            await connection.execute(
                delete(idempotency_keys).where(k.scope == scope, k.idempotency_key == key, k.state == IN_PROGRESS)
            )

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.begin() as connection:
                yield connection
        except DATABASE_ERRORS as exc:
            raise DatabaseError(f"idempotency store: {type(getattr(exc, 'orig', None) or exc).__name__}") from exc


def _on_existing(row: RowMapping | None, request_hash: str, now: datetime) -> tuple[Claim, bool]:
    """What a second request with a known key gets; True when it takes the key over."""
    if row is None:  # removed by the expiry task in between: the caller may simply retry
        return Claim(ClaimOutcome.IN_PROGRESS), False
    if row["expires_at"] <= now:
        return Claim(ClaimOutcome.CLAIMED), True
    if row["request_hash"] != request_hash:
        return Claim(ClaimOutcome.MISMATCH), False
    if row["state"] == COMPLETED:
        return Claim(ClaimOutcome.REPLAY), False  # the caller opens the sealed body
    if row["locked_until"] is not None and row["locked_until"] > now:
        return Claim(ClaimOutcome.IN_PROGRESS), False
    # The request that claimed the key outlived its lease: presumed dead, the key is free again.
    return Claim(ClaimOutcome.CLAIMED), True

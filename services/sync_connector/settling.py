"""Pieces every delivery (external systems, notifications) shares with the retry scheduler."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import msgspec

from services.sync_connector.db_faults import DATABASE_FAULTS
from services.sync_connector.outcome import RetryPolicy
from services.sync_connector.waiting import wait_until_set

# Waits between attempts to write a call's result while the database is unavailable.
SETTLE_RETRY_BACKOFF = RetryPolicy(max_retries=0, base_s=0.2, max_s=5.0)

ResultT = TypeVar("ResultT")
ClaimT = TypeVar("ClaimT")


class SettleInterruptedError(Exception):
    """Stopping while the database refused a call's result; the claim's lease ends and the call is repeated."""


async def settle_until_recorded(
    write: Callable[[], Awaitable[ResultT]], stop: asyncio.Event, on_error: Callable[[Exception, float], None]
) -> ResultT:
    """Write calls' results, retrying through a database outage (the calls are not repeated for it).

    Returns what ``write`` returns; raises SettleInterruptedError when stopping first, so the
    claims' leases end and the calls are made again under new claims.
    """
    failures = 0
    while True:
        try:
            return await write()
        except DATABASE_FAULTS as exc:
            failures += 1
            wait_s = SETTLE_RETRY_BACKOFF.delay_before_retry(failures)
            on_error(exc, wait_s)
            if await wait_until_set(stop, wait_s):
                raise SettleInterruptedError(str(exc)) from exc


class DueBatch(msgspec.Struct, Generic[ClaimT], frozen=True):
    """One round of the retry scheduler: the claims to call now, out of the due records seen."""

    claims: list[ClaimT]
    examined: int  # due records seen (claimed, superseded, deferred or skipped)
    skipped: int  # seen but left untouched because their lane was busy in another transaction

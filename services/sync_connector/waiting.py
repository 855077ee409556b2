"""Waiting that a stop (or a wake-up) cuts short."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_until_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``event``; True when it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=timeout_s)
    return event.is_set()

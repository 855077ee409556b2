"""One way for a test to wait for something: ``await eventually(probe, what, timeout)``.

``probe`` is called every ``interval`` seconds until ``until(value)`` holds (by default: the value is
truthy; ``until=answered``: it is not None), and that value is returned. After ``timeout`` seconds the
test fails, naming ``what`` (a text, or a callable that says what is missing when it fails) and the
last value. ``eventually_sync`` waits for a truthy value without awaiting (Playwright's sync API).

The helpers with other names and argument orders (``relay_support.wait_until``,
``e2e.conftest.eventually``) are thin aliases of this one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
What = str | Callable[[], str]


def answered(value: object) -> bool:
    """``until=answered``: any value but None counts, a falsy one (0, an empty list) too."""
    return value is not None


class _Deadline:
    def __init__(self, what: What, timeout: float, until: Callable[[Any], bool]) -> None:
        self._what = what
        self._timeout = timeout
        self._until = until
        self._deadline = time.monotonic() + timeout

    def reached(self, value: object) -> bool:
        """True once ``value`` is what the test waits for; fails the test once time is up."""
        if self._until(value):
            return True
        if time.monotonic() > self._deadline:
            what = self._what() if callable(self._what) else self._what
            pytest.fail(f"timed out after {self._timeout}s waiting for {what} (last: {value!r})")
        return False


async def eventually(
    probe: Callable[[], Awaitable[T]],
    what: What,
    timeout: float = 20.0,
    *,
    interval: float = 0.05,
    until: Callable[[T], bool] = bool,
) -> T:
    deadline = _Deadline(what, timeout, until)
    while not deadline.reached(value := await probe()):
        await asyncio.sleep(interval)
    return value


def eventually_sync(probe: Callable[[], T], what: What, timeout: float = 30.0, *, interval: float = 0.2) -> T:
    """Until ``probe`` returns something truthy, without awaiting (a test on Playwright's sync API)."""
    deadline = _Deadline(what, timeout, bool)
    while not deadline.reached(value := probe()):
        time.sleep(interval)
    return value

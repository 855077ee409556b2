"""The tests' one polling helper: what it returns, when it stops, and what a timeout says."""

from __future__ import annotations

import itertools

import pytest

from tests.polling import answered, eventually, eventually_sync


async def test_returns_the_first_value_that_counts() -> None:
    counter = itertools.count()

    async def probe() -> int:
        return next(counter)

    assert await eventually(probe, "a truthy value", 1.0, interval=0.001) == 1
    assert await eventually(probe, "any value", 1.0, interval=0.001, until=answered) == 2
    assert eventually_sync(lambda: next(counter) >= 5 and 5, "three more", 1.0, interval=0.001) == 5


async def test_a_zero_is_an_answer_but_not_truthy() -> None:
    async def zero() -> int:
        return 0

    assert await eventually(zero, "zero", 1.0, until=answered) == 0
    with pytest.raises(pytest.fail.Exception, match=r"timed out after 0.05s waiting for something true \(last: 0\)"):
        await eventually(zero, "something true", 0.05, interval=0.01)


def test_a_timeout_says_what_was_missing_when_it_fails() -> None:
    seen = []

    def probe() -> None:
        seen.append(1)

    with pytest.raises(pytest.fail.Exception, match=r"waiting for [2-9]\d* probes in vain"):
        eventually_sync(probe, lambda: f"{len(seen)} probes in vain", 0.02, interval=0.01)

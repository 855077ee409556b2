"""The console's Prometheus metrics (built at start-up on the app's registry)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from litestar import Request

from libs.kit.errors import AppError
from libs.kit.metrics import MetricSet, counter
from services.profile.console.context import console_of

T = TypeVar("T")


class ConsoleMetrics(MetricSet):
    sign_ins = counter("console_sign_ins", "Console sign-in attempts by outcome", ["outcome"])
    actions = counter(
        "console_actions",
        "Changes made from the console, by action and outcome (ok or the error code)",
        ["action", "outcome"],
    )


async def counted(request: Request[Any, Any, Any], action: str, call: Awaitable[T]) -> T:
    """Await a change made from the console and count its outcome (``ok`` or the error's code)."""
    metrics: ConsoleMetrics = console_of(request).metrics
    try:
        result = await call
    except AppError as exc:
        metrics.actions.labels(action, exc.code).inc()
        raise
    metrics.actions.labels(action, "ok").inc()
    return result

"""What console pages read besides their use cases: one typed ``ConsoleContext`` built at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar import Request

if TYPE_CHECKING:  # metrics.py reads the context: no import cycle at run time
    from libs.kit.tokens import TokenVerifier
    from services.profile.console.metrics import ConsoleMetrics
    from services.profile.console.settings import ConsoleSettings
    from services.profile.shared.web.problems import ErrorMetrics

STATE_KEY = "console"


@dataclass(frozen=True)
class ConsoleContext:
    settings: ConsoleSettings
    recycle_bin_retention_days: int
    metrics: ConsoleMetrics
    error_metrics: ErrorMetrics  # the API's http_errors: console errors are counted with them
    token_verifier: TokenVerifier


def console_of(request: Request[Any, Any, Any]) -> ConsoleContext:
    context = request.app.state[STATE_KEY]
    if not isinstance(context, ConsoleContext):
        msg = f"app.state.{STATE_KEY} is {type(context).__name__}, not the console's context"
        raise TypeError(msg)
    return context

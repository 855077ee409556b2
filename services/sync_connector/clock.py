"""The connector's clock, injected wherever a delivery's time is decided.

Deadlines, backoff, leases and "is this record due" are all decided on this
clock: the delivery engine passes ``now()`` into its SQL instead of using the
database's ``now()``, and the circuit breakers run on ``monotonic()``. In
production it is the machine's clock (hosts are NTP-synchronised; leases and
delays are seconds to minutes, far above any skew). A test swaps in a clock it
moves by hand, to run a ten-hour outage in seconds without sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall time (UTC, timezone-aware): what records' times are written in and compared with."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back: the breakers' cool-downs."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK: Clock = SystemClock()

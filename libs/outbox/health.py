"""Whether a relay instance can publish, and when it gives its shards up because it cannot.

A relay that reaches PostgreSQL but not the broker would otherwise renew its shard leases for
ever: the events of its shards' customers wait while it looks healthy. So the relay accounts
every step of its batch pipeline here, and gives up

* after ``give_up_after_failed_batches`` batches in a row failed with broker errors, or
* after ``give_up_after_s`` seconds in which rows waited (claimed, in flight or failed) and none
  was published: a batch can hang on an unreachable broker for the producer's request timeout,
  so the lease keeper also checks this between batches.

Having given up, the instance leaves the membership (the other instances count one fewer),
drains every shard and hands it over as an expired lease (``libs.outbox.relay``), and its
readiness says why. It probes the broker every ``broker_probe_interval_s``; once the broker answers it is
ready again and takes its fair share back. An instance that gives up again without having
published anything in between (the probe answered but publishing still fails) waits twice as
long before its next probe, up to 16 times the interval: the shards do not flap between owners.

A lost database session restarts the clock (the wait was the database's, not the broker's).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from libs.outbox.metrics import RelayMetrics
from libs.outbox.publisher import BatchResult
from libs.outbox.settings import RelaySettings

_MAX_PROBE_BACKOFF = 16


class RelayReadiness(msgspec.Struct, frozen=True):
    ready: bool
    # Why not, when not ready.
    reason: str | None = None


class BrokerHealth:
    """The give-up decision of one relay instance (kept across database sessions)."""

    def __init__(
        self, settings: RelaySettings, metrics: RelayMetrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._failed_batches = 0
        # Since when rows have waited without a publish (None: nothing waits, or it was just published).
        self._waiting_since: float | None = None
        self._gave_up_reason: str | None = None
        self._gave_up_at = 0.0
        # Give-ups since the last publish: the second and later back the probe off.
        self._relapses = 0
        metrics.broker_healthy.set(1)

    @property
    def healthy(self) -> bool:
        return self._gave_up_reason is None

    @property
    def reason(self) -> str | None:
        """Why the instance gave up (None while healthy)."""
        return self._gave_up_reason

    @property
    def failed_batches(self) -> int:
        return self._failed_batches

    @property
    def readiness(self) -> RelayReadiness:
        if self._gave_up_reason is None:
            return RelayReadiness(ready=True)
        return RelayReadiness(
            ready=False,
            reason=(
                f"gave its shards up: {self._gave_up_reason}; probing the broker every {self.probe_interval_s:g} s"
            ),
        )

    @property
    def probe_interval_s(self) -> float:
        backoff = min(1 << max(self._relapses - 1, 0), _MAX_PROBE_BACKOFF)
        return self._settings.broker_probe_interval_s * backoff

    def observe(self, result: BatchResult, *, waiting: bool) -> bool:
        """Account one step of the pipeline; ``waiting``: rows are in flight or left pending.

        Returns True when this step made the instance give up.
        """
        now = self._clock()
        if result.published or (result.claimed and not result.broker_failed):
            # The broker answered for a whole batch (published, or refused single messages).
            self._failed_batches = 0
            self._waiting_since = now if waiting else None
            if result.published:
                self._relapses = 0
        else:
            if result.broker_failed:
                self._failed_batches += 1
            if not waiting:
                self._waiting_since = None
            elif self._waiting_since is None:
                self._waiting_since = now
        return self.check()

    def check(self) -> bool:
        """Give up if a limit is passed; True when this call gave up."""
        if self._gave_up_reason is not None:
            return False
        settings, now = self._settings, self._clock()
        if self._failed_batches >= settings.give_up_after_failed_batches:
            reason = f"{self._failed_batches} batches in a row failed with broker errors"
        elif self._waiting_since is not None and now - self._waiting_since >= settings.give_up_after_s:
            reason = f"nothing published for {now - self._waiting_since:.1f} s while rows waited"
        else:
            return False
        self._gave_up_reason = reason
        self._gave_up_at = now
        self._relapses += 1
        self._metrics.broker_healthy.set(0)
        self._metrics.gave_up.inc()
        return True

    def new_session(self) -> None:
        """A new database session: waiting for the database did not count against the broker."""
        self._waiting_since = None

    def recovered(self) -> float:
        """The broker answered a probe: healthy again. Returns how long the instance had given up."""
        down_s = self._clock() - self._gave_up_at if self._gave_up_reason is not None else 0.0
        self._gave_up_reason = None
        self._failed_batches = 0
        self._waiting_since = None
        self._metrics.broker_healthy.set(1)
        return down_s

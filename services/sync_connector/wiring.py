"""What the runtime hands every channel's wiring (the external systems', the customer notifications', the
admins' mail), and the pieces each of them is built from the same way: its breaker, its retry scheduler
and its consumer group."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine

from services.sync_connector.breaker import BreakerState, CircuitBreaker, TransitionHook
from services.sync_connector.clock import Clock
from services.sync_connector.consumer import SystemConsumer
from services.sync_connector.handler import EventAcceptor, SystemMessageHandler
from services.sync_connector.http_clients import HttpClients
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.partition_worker import UnprocessablePolicy
from services.sync_connector.scheduler import ClaimT, RetryScheduler, ScheduledDelivery
from services.sync_connector.settings import ConnectorSettings
from services.sync_connector.unprocessable import UnprocessableMessages


@dataclass(frozen=True)
class Wiring:
    settings: ConnectorSettings
    engine: AsyncEngine
    clients: HttpClients
    metrics: ConnectorMetrics
    tracer: trace.Tracer
    on_breaker_transition: TransitionHook
    clock: Clock

    def breaker(
        self,
        code: str,
        *,
        failure_threshold: int,
        cooldown_s: float,
        call_timeout_s: float,
        max_cooldown_s: float | None = None,
    ) -> CircuitBreaker:
        """The breaker of ``code``, shown closed in ``circuit_breaker_state`` from the start."""
        breaker = CircuitBreaker(
            code,
            failure_threshold=failure_threshold,
            cooldown_s=cooldown_s,
            max_cooldown_s=max_cooldown_s,
            call_timeout_s=call_timeout_s,
            clock=self.clock.monotonic,
            on_transition=self.on_breaker_transition,
        )
        self.metrics.breaker_state.labels(code).set(BreakerState.CLOSED)
        return breaker

    def scheduler(
        self,
        delivery: ScheduledDelivery[ClaimT],
        breaker: CircuitBreaker,
        *,
        poll_interval_s: float,
        concurrency: int,
        span_name: str = "",
    ) -> RetryScheduler[ClaimT]:
        return RetryScheduler(
            delivery,
            breaker,
            self.metrics,
            self.tracer,
            poll_interval_s=poll_interval_s,
            concurrency=concurrency,
            grace_s=self.settings.shutdown_grace_s,
            span_name=span_name,
        )

    def consumer_group(
        self, code: str, acceptor: EventAcceptor, unprocessable: UnprocessableMessages
    ) -> SystemConsumer:
        """The group of ``code`` feeding ``acceptor``; a message it can never process is dead-lettered alone."""
        settings = self.settings
        group_id = settings.group_id(code)
        return SystemConsumer(
            code,
            kafka=settings.kafka,
            topic=settings.topic,
            group_id=group_id,
            handler=SystemMessageHandler(acceptor, code, group_id, self.tracer, self.metrics),
            metrics=self.metrics,
            grace_s=settings.shutdown_grace_s,
            dead_letters=unprocessable,
            unprocessable=UnprocessablePolicy(
                settings.unprocessable_after_failures, settings.unprocessable_streak_limit
            ),
        )

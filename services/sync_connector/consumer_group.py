"""One consumer group of the connector on the profile topic: what every one of them (an external system's,
the customer notifications') is built from, with the connector's settings."""

from __future__ import annotations

from opentelemetry import trace

from services.sync_connector.consumer import SystemConsumer, UnprocessablePolicy
from services.sync_connector.handler import EventAcceptor, SystemMessageHandler
from services.sync_connector.metrics import ConnectorMetrics
from services.sync_connector.settings import ConnectorSettings
from services.sync_connector.unprocessable import UnprocessableMessages


def consumer_group(
    settings: ConnectorSettings,
    code: str,
    acceptor: EventAcceptor,
    *,
    tracer: trace.Tracer,
    metrics: ConnectorMetrics,
    unprocessable: UnprocessableMessages,
) -> SystemConsumer:
    """The group of ``code`` feeding ``acceptor``; a message it can never process is dead-lettered alone."""
    group_id = settings.group_id(code)
    return SystemConsumer(
        code,
        kafka=settings.kafka,
        topic=settings.topic,
        group_id=group_id,
        handler=SystemMessageHandler(acceptor, code, group_id, tracer, metrics),
        metrics=metrics,
        grace_s=settings.shutdown_grace_s,
        dead_letters=unprocessable,
        unprocessable=UnprocessablePolicy(settings.unprocessable_after_failures, settings.unprocessable_streak_limit),
    )

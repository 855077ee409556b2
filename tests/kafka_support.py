"""Kafka settings for the tests' brokers."""

from __future__ import annotations

from typing import Any

from libs.kit.kafka import KafkaSettings


def kafka_for_tests(bootstrap_servers: str, **settings: Any) -> KafkaSettings:
    """Settings for a test's broker at ``bootstrap_servers`` (``settings`` besides) whose consumer groups
    notice a member come or go within seconds, not the production minute."""
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
        rebalance_timeout_ms=6_000,
        **settings,
    )

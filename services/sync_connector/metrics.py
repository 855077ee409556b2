"""The connector's Prometheus metrics, registered on a registry made at start-up."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ConnectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "sync_attempts",
            "HTTP attempts to external systems by outcome",
            ["system_code", "result"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "sync_attempt_duration_seconds",
            "Duration of one HTTP attempt",
            ["system_code"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.status = Counter(
            "external_sync_status",
            "Sync record status transitions",
            ["system_code", "status"],
            registry=registry,
        )
        self.skipped = Counter(
            "sync_redeliveries_skipped",
            "Messages whose record was already final (redelivery)",
            ["system_code"],
            registry=registry,
        )
        self.undecodable = Counter(
            "messages_undecodable",
            "Messages skipped because headers or value could not be decoded",
            ["system_code"],
            registry=registry,
        )
        self.ignored = Counter(
            "messages_ignored",
            "Messages of event types this connector does not handle",
            ["system_code", "type"],
            registry=registry,
        )
        self.processing_errors = Counter(
            "message_processing_errors",
            "Infrastructure errors while processing a message (it is retried)",
            ["system_code", "kind"],
            registry=registry,
        )
        self.consumer_errors = Counter(
            "consumer_errors",
            "Kafka consumer failures, all retried: connect, fetch, commit, crash (restart)",
            ["system_code", "kind"],
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "consumer_assigned_partitions",
            "Partitions assigned to this instance",
            ["system_code"],
            registry=registry,
        )

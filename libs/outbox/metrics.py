"""Prometheus metrics of one relay instance, built with the registry given at start-up."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter("outbox_relay_published", "Outbox rows published to Kafka", registry=registry)
        self.failed = Counter("outbox_relay_failed_attempts", "Failed publish attempts", registry=registry)
        self.parked = Counter("outbox_relay_parked", "Rows parked as failed after max attempts", registry=registry)
        self.fenced = Counter(
            "outbox_relay_fenced_rows",
            "Rows published but not marked: their shard had been acquired by another instance meanwhile",
            registry=registry,
        )
        self.producer_resets = Counter(
            "outbox_relay_producer_resets", "Producers rebuilt after persistent broker errors", registry=registry
        )
        self.fenced_producers = Counter(
            "outbox_relay_fenced_producers",
            "Producers of expired previous shard owners fenced at the broker before taking their shards",
            registry=registry,
        )
        self.aborted_transactions = Counter(
            "outbox_relay_aborted_transactions",
            "Batches whose Kafka transaction was aborted (their rows stay pending and are sent again)",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "outbox_relay_batch_seconds",
            "Claim-publish-mark duration of one batch",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.in_flight = Gauge(
            "outbox_relay_in_flight_rows", "Rows of the current batch sent and not yet acknowledged", registry=registry
        )
        self.shards_owned = Gauge(
            "outbox_relay_shards_owned", "Shards this instance holds a lease on", registry=registry
        )
        self.live_instances = Gauge(
            "outbox_relay_live_instances",
            "Relay instances with a fresh heartbeat, as this one sees them",
            registry=registry,
        )
        self.leases_acquired = Counter(
            "outbox_relay_leases_acquired", "Shard leases acquired (free, released or expired)", registry=registry
        )
        self.leases_released = Counter(
            "outbox_relay_leases_released", "Shard leases handed back (rebalance or shutdown)", registry=registry
        )
        self.leases_lost = Counter(
            "outbox_relay_leases_lost", "Shard leases found taken by another instance at renewal", registry=registry
        )
        self.blocked_keys = Gauge(
            "outbox_relay_blocked_keys",
            "Aggregate keys in this instance's shards held back by a parked (failed) row",
            registry=registry,
        )
        self.blocked_key = Gauge(
            "outbox_relay_blocked_key",
            "1 per blocked key (bounded by blocked_keys_metric_limit): its aggregate id and parked outbox id",
            ["aggregate_id", "outbox_id"],
            registry=registry,
        )
        self.retention_deleted = Counter(
            "outbox_relay_retention_deleted", "Published rows removed by retention", registry=registry
        )
        self.broker_healthy = Gauge(
            "outbox_relay_broker_healthy",
            "1 while this instance publishes (or may); 0 while it has given its shards up for want of the broker",
            registry=registry,
        )
        self.gave_up = Counter(
            "outbox_relay_gave_up",
            "Times this instance gave its shards up because it could not publish",
            registry=registry,
        )
        self.broker_probes = Counter(
            "outbox_relay_broker_probes",
            "Broker probes of an instance that gave its shards up, by result (ok, failed)",
            ["result"],
            registry=registry,
        )
        self.db_session_errors = Counter(
            "outbox_relay_db_session_errors", "Database sessions of the relay lost or failed", registry=registry
        )

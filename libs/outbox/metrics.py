"""Prometheus metrics of one relay instance, built with the registry given at start-up."""

from __future__ import annotations

from libs.kit.metrics import MetricSet, counter, gauge, histogram


class RelayMetrics(MetricSet):
    published = counter("outbox_relay_published", "Outbox rows published to Kafka")
    failed = counter("outbox_relay_failed_attempts", "Failed publish attempts")
    parked = counter("outbox_relay_parked", "Rows parked as failed after max attempts")
    fenced = counter(
        "outbox_relay_fenced_rows",
        "Rows published but not marked: their shard had been acquired by another instance meanwhile",
    )
    producer_resets = counter("outbox_relay_producer_resets", "Producers rebuilt after persistent broker errors")
    fenced_producers = counter(
        "outbox_relay_fenced_producers",
        "Producers of expired previous shard owners fenced at the broker before taking their shards",
    )
    aborted_transactions = counter(
        "outbox_relay_aborted_transactions",
        "Batches whose Kafka transaction was aborted (their rows stay pending and are sent again)",
    )
    batch_seconds = histogram(
        "outbox_relay_batch_seconds",
        "Claim-publish-mark duration of one batch",
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    )
    in_flight = gauge("outbox_relay_in_flight_rows", "Rows of the current batch sent and not yet acknowledged")
    shards_owned = gauge("outbox_relay_shards_owned", "Shards this instance holds a lease on")
    live_instances = gauge(
        "outbox_relay_live_instances", "Relay instances with a fresh heartbeat, as this one sees them"
    )
    leases_acquired = counter("outbox_relay_leases_acquired", "Shard leases acquired (free, released or expired)")
    leases_released = counter("outbox_relay_leases_released", "Shard leases handed back (rebalance or shutdown)")
    leases_lost = counter("outbox_relay_leases_lost", "Shard leases found taken by another instance at renewal")
    blocked_keys = gauge(
        "outbox_relay_blocked_keys", "Aggregate keys in this instance's shards held back by a parked (failed) row"
    )
    blocked_key = gauge(
        "outbox_relay_blocked_key",
        "1 per blocked key (bounded by blocked_keys_metric_limit): its aggregate id and parked outbox id",
        ["aggregate_id", "outbox_id"],
    )
    retention_deleted = counter("outbox_relay_retention_deleted", "Published rows removed by retention")
    broker_healthy = gauge(
        "outbox_relay_broker_healthy",
        "1 while this instance publishes (or may); 0 while it has given its shards up for want of the broker",
    )
    gave_up = counter("outbox_relay_gave_up", "Times this instance gave its shards up because it could not publish")
    broker_probes = counter(
        "outbox_relay_broker_probes",
        "Broker probes of an instance that gave its shards up, by result (ok, failed)",
        ["result"],
    )
    db_session_errors = counter("outbox_relay_db_session_errors", "Database sessions of the relay lost or failed")

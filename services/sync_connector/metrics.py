"""The connector's Prometheus metrics, registered on a registry made at start-up."""

from __future__ import annotations

from libs.kit.metrics import MetricSet, counter, gauge, histogram


class ConnectorMetrics(MetricSet):
    attempts = counter("sync_attempts", "HTTP attempts to external systems by outcome", ["system_code", "result"])
    attempt_seconds = histogram(
        "sync_attempt_duration_seconds",
        "Duration of one HTTP attempt",
        ["system_code"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    # The current counts are the gauge external_sync_status (status_gauges); this counts transitions.
    status = counter(
        "external_sync_transitions", "Sync record status transitions, by the status entered", ["system_code", "status"]
    )
    skipped = counter(
        "sync_redeliveries_skipped", "Messages whose record was already final (redelivery)", ["system_code"]
    )
    undecodable = counter(
        "messages_undecodable",
        "Messages whose headers or value could not be decoded (dead-lettered alone: messages_unprocessable_total)",
        ["system_code"],
    )
    ignored = counter(
        "messages_ignored", "Messages of event types this connector does not handle", ["system_code", "type"]
    )
    processing_errors = counter(
        "message_processing_errors",
        "Errors while processing messages, by kind: database, broker, timeout (transient: retried), refused_data, "
        "unexpected (the batch is split; a message failing alone is dead-lettered)",
        ["system_code", "kind"],
    )
    consumer_errors = counter(
        "consumer_errors",
        "Kafka consumer failures, all retried: connect, fetch, commit, crash (restart)",
        ["system_code", "kind"],
    )
    deferred = counter(
        "sync_deferred",
        "Deliveries not made on the spot, by why: circuit_open, lane_busy, parked, in_flight, scheduled",
        ["system_code", "reason"],
    )
    claims_lost = counter(
        "sync_claims_lost",
        "Call results discarded because the claim's lease had ended and another instance took the record",
        ["system_code"],
    )
    scheduled_claims = counter(
        "sync_retry_scheduler_claims", "Due records the retry scheduler claimed for a call", ["system_code"]
    )
    scheduler_errors = counter(
        "sync_retry_scheduler_errors",
        "Retry scheduler rounds that failed (database errors); the round is repeated",
        ["system_code"],
    )
    dead_letters = counter(
        "sync_dead_letters",
        "Records that ended failed and were dead-lettered, by reason: rejected, deadline or retries_exhausted",
        ["system_code", "reason"],
    )
    dead_letters_published = counter(
        "sync_dead_letters_published", "Dead letters published to their dead-letter topic", ["system_code"]
    )
    dead_letter_publish_errors = counter(
        "sync_dead_letter_publish_errors",
        "Failed rounds of publishing dead letters (retried), by kind: kafka, database or config (a dead-letter "
        "topic less durable than the settings, refused credentials); unexpected (the publisher crashed and was "
        "restarted); unbuildable (a row whose message could not be built, set aside)",
        ["kind"],
    )
    breaker_state = gauge(
        "circuit_breaker_state",
        "Circuit breaker per external system: 0 closed, 1 open, 2 half-open",
        ["system_code"],
    )
    breaker_transitions = counter(
        "circuit_breaker_transitions",
        "Circuit breaker state changes, by the state entered",
        ["system_code", "to_state"],
    )
    admin_retries = counter(
        "sync_admin_retries", "Records reset for another delivery by an admin, by channel (http, cli)", ["channel"]
    )
    consumer_lag = gauge(
        "consumer_lag",
        "Messages of an assigned partition not yet settled and committed (high watermark - committed offset)",
        ["system_code", "partition"],
    )
    assigned_partitions = gauge("consumer_assigned_partitions", "Partitions assigned to this instance", ["system_code"])

"""Settings of the outbox relay and its admin operations (``PROFILE_RELAY_*`` in the profile service)."""

from __future__ import annotations

import msgspec

from libs.kit.settings import require_at_least_one


class RelaySettings(msgspec.Struct, frozen=True):
    # The PostgreSQL schema that holds the outbox table, and the topic its rows go to.
    schema: str = "profile"
    topic: str = "customer-profile.v1"
    # Rows claimed per batch, one Kafka transaction each. Draining a backlog, the next batch is
    # claimed and sent while the previous one commits and is marked. On Apache Kafka a commit costs
    # a few round trips: 2,000 drained about twice as fast as 500 (25k vs 12k ev/s, same run),
    # at ~105 MB RSS; caught up, claims are small whatever this is.
    batch_size: int = 2_000
    # Without a NOTIFY the relay looks for new rows this often.
    poll_interval_s: float = 1.0
    # A row whose message fails this many attempts with a per-message error is parked
    # as ``failed``; later rows of its aggregate wait behind it.
    max_attempts: int = 10
    # The wait before a failed row is tried again.
    retry_delay_s: float = 0.5
    # After a lost database session the relay reconnects after this delay.
    reconnect_delay_s: float = 1.0
    # After this many consecutive batches failing with broker errors the producer is
    # closed and built afresh (new connections, new metadata).
    producer_reset_after: int = 3
    # Each batch is one Kafka transaction of the instance's transactional producer. Starting the
    # producer, beginning, committing or aborting a transaction, and fencing a previous owner's
    # producer each get this long before the producer is dropped and the batch counts as failed.
    transaction_timeout_s: float = 15.0
    # On stop, a batch in flight gets this long to finish; then it is cancelled and its
    # rows stay pending (the next owner of their shards sends them again).
    shutdown_grace_s: float = 5.0
    # Shard leases: a lease not renewed for ``lease_ttl_s`` may be taken by another
    # instance, so a killed instance's shards move after at most this long. Instances
    # renew (and rebalance) every ``lease_renew_interval_s``.
    lease_ttl_s: float = 10.0
    lease_renew_interval_s: float = 2.0
    # A relay that cannot publish gives its shards up for the other instances to take (a relay
    # that reaches PostgreSQL but not the broker would otherwise renew them for ever while its
    # customers' events wait): after ``give_up_after_failed_batches`` batches in a row failed with
    # broker errors, or after ``give_up_after_s`` seconds in which rows waited and none was
    # published (a batch can hang on an unreachable broker for the producer's request timeout).
    # Its ``/ready`` then answers 503; every ``broker_probe_interval_s`` it asks the broker for the
    # topic's metadata (bounded by ``broker_probe_timeout_s``) and once the broker answers, with a
    # leader for every partition, it is ready again and takes its fair share back.
    give_up_after_failed_batches: int = 5
    give_up_after_s: float = 30.0
    broker_probe_interval_s: float = 5.0
    broker_probe_timeout_s: float = 5.0
    # Empty: ``<host>:<pid>:<random>``, unique per process start.
    instance_id: str = ""
    # Retention: published rows older than this leave the table, in batches of
    # ``cleanup_batch_size`` rows, at most ``cleanup_max_batches`` per run, every
    # ``cleanup_interval_s``. Pending and failed rows are never removed.
    retention_s: float = 3 * 24 * 3600.0
    cleanup_interval_s: float = 60.0
    cleanup_batch_size: int = 1_000
    cleanup_max_batches: int = 20
    # Blocked keys (a parked row holds their later rows back) are labelled in a metric,
    # up to this many per instance, to keep the label set bounded.
    blocked_keys_metric_limit: int = 50
    # Admin API and CLI: the largest page of a listing, the most rows one re-drive may touch.
    admin_max_page_size: int = 500
    redrive_max_rows: int = 10_000

    def __post_init__(self) -> None:
        if self.lease_renew_interval_s * 2 > self.lease_ttl_s:
            msg = "lease_renew_interval_s must be at most half of lease_ttl_s (a lease must survive a missed renewal)"
            raise ValueError(msg)
        for name in (
            "batch_size",
            "max_attempts",
            "cleanup_batch_size",
            "cleanup_max_batches",
            "admin_max_page_size",
            "give_up_after_failed_batches",
        ):
            require_at_least_one(self, name)
        for name in ("give_up_after_s", "broker_probe_interval_s", "broker_probe_timeout_s"):
            if not getattr(self, name) > 0:  # also refuses NaN
                msg = f"{name} must be more than 0"
                raise ValueError(msg)
        if self.transaction_timeout_s <= 0:
            msg = "transaction_timeout_s must be positive"
            raise ValueError(msg)
        if self.retention_s < 0:
            msg = "retention_s must not be negative"
            raise ValueError(msg)

"""Prometheus metrics of the notification sender, registered on the connector's registry at start-up.

The consumer (``system_code="NOTIFY"``), the retry schedulers and the circuit
breakers (``system_code="EMAIL"`` / ``"SMS"``) report through the connector's
own metrics, like the external systems do.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class NotificationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "notification_attempts",
            "Notification attempts by result: sent, retryable, rejected, no_contact, contact_error",
            ["channel", "result"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "notification_attempt_duration_seconds",
            "Duration of one attempt: contact lookup, rendering and send",
            ["channel"],
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
        )
        self.status = Counter(
            "notification_status",
            "Notification record status transitions",
            ["channel", "status"],
            registry=registry,
        )
        self.redeliveries_skipped = Counter(
            "notification_redeliveries_skipped",
            "Events whose notification records existed already (a redelivery): nothing new is sent",
            registry=registry,
        )
        self.contact_lookups = Counter(
            "notification_contact_lookups",
            "Contact lookups at the profile service by result: found, not_found, error",
            ["result"],
            registry=registry,
        )
        self.deferred = Counter(
            "notification_deferred",
            "Due notifications not sent on the spot, by why: circuit_open",
            ["channel", "reason"],
            registry=registry,
        )
        self.claims_lost = Counter(
            "notification_claims_lost",
            "Send results discarded because the claim's lease had ended and another instance took the record",
            ["channel"],
            registry=registry,
        )
        self.settle_errors = Counter(
            "notification_settle_errors",
            "Database errors while recording a send's result (retried)",
            ["channel"],
            registry=registry,
        )
        self.admin_resends = Counter(
            "notification_admin_resends",
            "Notification records reset for another send by an admin, by channel and via (http, cli)",
            ["channel", "via"],
            registry=registry,
        )

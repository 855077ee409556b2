"""Prometheus metrics of the notification sender, registered on the connector's registry at start-up.

The consumer (``system_code="NOTIFY"``), the retry schedulers and the circuit
breakers (``system_code="EMAIL"`` / ``"SMS"``) report through the connector's
own metrics, like the external systems do.
"""

from __future__ import annotations

from libs.kit.metrics import MetricSet, counter, histogram


class NotificationMetrics(MetricSet):
    attempts = counter(
        "notification_attempts",
        "Notification attempts by result: sent, retryable, rejected, no_contact, contact_error",
        ["channel", "result"],
    )
    attempt_seconds = histogram(
        "notification_attempt_duration_seconds",
        "Duration of one attempt: contact lookup, rendering and send",
        ["channel"],
        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
    )
    status = counter("notification_status", "Notification record status transitions", ["channel", "status"])
    redeliveries_skipped = counter(
        "notification_redeliveries_skipped",
        "Events whose notification records existed already (a redelivery): nothing new is sent",
    )
    contact_lookups = counter(
        "notification_contact_lookups",
        "Contact lookups at the profile service by result: found, not_found, error",
        ["result"],
    )
    deferred = counter(
        "notification_deferred",
        "Due notifications not sent on the spot, by why: circuit_open",
        ["channel", "reason"],
    )
    claims_lost = counter(
        "notification_claims_lost",
        "Send results discarded because the claim's lease had ended and another instance took the record",
        ["channel"],
    )
    settle_errors = counter(
        "notification_settle_errors", "Database errors while recording a send's result (retried)", ["channel"]
    )
    admin_resends = counter(
        "notification_admin_resends",
        "Notification records reset for another send by an admin, by channel and via (http, cli)",
        ["channel", "via"],
    )

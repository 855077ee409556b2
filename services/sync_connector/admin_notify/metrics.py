"""Prometheus metrics of the admin notifications."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from libs.kit.metrics import MetricSet, counter, gauge, histogram

SOURCES = ("dead_letters", "notifications", "unprocessable", "breakers", "profile")


class AdminNotifyMetrics(MetricSet):
    occurrences = counter(
        "admin_notification_occurrences",
        "Occurrences of causes that need a person, counted into their window, by cause",
        ["cause"],
    )
    windows = counter("admin_notification_windows", "Windows opened (one admin mail each), by cause", ["cause"])
    mails = counter(
        "admin_notification_mails",
        "Admin mails by the window's status after an attempt: sent, retrying, failed (its deadline passed)",
        ["status"],
    )
    attempts = counter("admin_notification_attempts", "Attempts to send an admin mail, by outcome", ["outcome"])
    attempt_seconds = histogram("admin_notification_attempt_seconds", "Duration of one admin mail's SMTP send")
    sweep_errors = counter(
        "admin_notification_sweep_errors",
        "Watcher rounds that could not read a source of causes (database, profile service), by source",
        ["source"],
    )
    last_sweep = gauge(
        "admin_notification_last_sweep_timestamp_seconds", "When the watcher last read every source of causes"
    )

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        # Exposed from the start (0), so the alert rules have a series before the first failure.
        for status in ("sent", "retrying", "failed"):
            self.mails.labels(status)
        for source in SOURCES:
            self.sweep_errors.labels(source)

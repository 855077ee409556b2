"""Prometheus metrics of the profile use cases (seed 000 section 8.1), built at start-up."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ProfileMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.update_success = Counter(
            "profile_update_success", "Committed profile updates", ["customer_type"], registry=registry
        )
        self.update_failure = Counter(
            "profile_update_failure", "Failed profile updates by error code", ["code"], registry=registry
        )
        self.update_duration = Histogram(
            "profile_update_duration_seconds",
            "Duration of one profile update transaction",
            buckets=(0.1, 0.5, 1, 2, 5),
            registry=registry,
        )
        self.applications_submitted = Counter(
            "name_change_applications_submitted", "Submitted name-change applications", registry=registry
        )

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
        # Seed 000 6.1: a failed update marks its application update_failed (in its own transaction).
        self.update_failed = Counter(
            "name_change_update_failed",
            "Applications marked update_failed after a failed update, by failure code",
            ["code"],
            registry=registry,
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


class LedgerMetrics:
    """Customer ledger operations: edits, recycle bin, backups, restores, maintenance, idempotency."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.customer_changes = Counter(
            "ledger_customer_changes",
            "Committed customer profile changes by operation",
            ["operation"],
            registry=registry,
        )
        self.backups = Counter("ledger_backups", "Backup points taken by kind", ["kind"], registry=registry)
        self.backup_duration = Histogram(
            "ledger_backup_duration_seconds",
            "Duration of taking one backup point",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.restores = Counter(
            "ledger_restores",
            "Restores from a backup point by mode and outcome",
            ["mode", "outcome"],
            registry=registry,
        )
        self.restore_duration = Histogram(
            "ledger_restore_duration_seconds",
            "Duration of one restore (or dry run)",
            buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300),
            registry=registry,
        )
        self.restored_customers = Counter(
            "ledger_restored_customers", "Customers changed by restores, by action", ["action"], registry=registry
        )
        self.maintenance_tasks = Counter(
            "ledger_maintenance_tasks",
            "Maintenance task runs by task and outcome",
            ["task", "outcome"],
            registry=registry,
        )
        self.idempotency = Counter(
            "http_idempotency_requests",
            "POST requests carrying an Idempotency-Key, by outcome",
            ["outcome"],
            registry=registry,
        )

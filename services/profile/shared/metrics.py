"""Prometheus metrics of the profile use cases (seed 000 section 8.1), built at start-up."""

from __future__ import annotations

from libs.kit.metrics import MetricSet, counter, histogram


class ProfileMetrics(MetricSet):
    update_success = counter("profile_update_success", "Committed profile updates", ["customer_type"])
    update_failure = counter("profile_update_failure", "Failed profile updates by error code", ["code"])
    # Seed 000 6.1: a failed update marks its application update_failed (in its own transaction).
    update_failed = counter(
        "name_change_update_failed",
        "Applications marked update_failed after a failed update, by failure code",
        ["code"],
    )
    update_duration = histogram(
        "profile_update_duration_seconds", "Duration of one profile update transaction", buckets=(0.1, 0.5, 1, 2, 5)
    )
    applications_submitted = counter("name_change_applications_submitted", "Submitted name-change applications")


class LedgerMetrics(MetricSet):
    """Customer ledger operations: edits, recycle bin, backups, restores, maintenance, idempotency."""

    customer_changes = counter(
        "ledger_customer_changes", "Committed customer profile changes by operation", ["operation"]
    )
    backups = counter("ledger_backups", "Backup points taken by kind", ["kind"])
    backup_duration = histogram(
        "ledger_backup_duration_seconds",
        "Duration of taking one backup point",
        buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
    )
    restores = counter("ledger_restores", "Restores from a backup point by mode and outcome", ["mode", "outcome"])
    restore_duration = histogram(
        "ledger_restore_duration_seconds",
        "Duration of one restore (or dry run)",
        buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300),
    )
    restored_customers = counter("ledger_restored_customers", "Customers changed by restores, by action", ["action"])
    maintenance_tasks = counter(
        "ledger_maintenance_tasks", "Maintenance task runs by task and outcome", ["task", "outcome"]
    )
    idempotency = counter(
        "http_idempotency_requests", "POST requests carrying an Idempotency-Key, by outcome", ["outcome"]
    )

"""Settings of the customer ledger (``PROFILE_LEDGER_*``), built at start-up and passed down."""

from __future__ import annotations

import msgspec


class LedgerSettings(msgspec.Struct, frozen=True):
    # Deleted customers stay in the recycle bin this long, then the maintenance task purges them.
    recycle_bin_retention_days: int = 30
    # Backup points older than this are dropped by the maintenance task...
    backup_retention_days: int = 30
    # ...except the newest ones, whatever their age.
    backup_keep_min: int = 7
    # Monthly name-history partitions kept ready ahead of the current month.
    history_partitions_ahead: int = 3
    # Idempotency-Key records are answered from for this long.
    idempotency_ttl_s: int = 86_400
    # A request holding a key this long without finishing is presumed dead; the key may be reused.
    idempotency_lease_s: float = 60.0
    # Customers per transaction when restoring from a backup.
    restore_chunk_size: int = 1_000
    # Differences listed in a restore report (the counts always cover every customer).
    restore_max_differences: int = 1_000
    # Customers purged per transaction by the maintenance task.
    purge_batch_size: int = 500
    # Versions kept per customer: 0 keeps every one (seed 004 版本控制); N > 0 lets the maintenance
    # task prune the oldest beyond the newest N, never the current one nor one a backup point holds.
    # A purged customer's versions go with it (the recycle bin's retention).
    versions_keep_per_customer: int = 0
    # Customers whose versions the maintenance task prunes per transaction.
    versions_prune_batch_size: int = 1_000

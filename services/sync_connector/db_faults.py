"""What a lost or refused database looks like to the connector: the shared kit's policy (one owner)."""

from __future__ import annotations

from libs.kit.db_faults import DATABASE_FAULTS, is_transient_database_fault, refuses_the_data

__all__ = ["DATABASE_FAULTS", "is_transient_database_fault", "refuses_the_data"]

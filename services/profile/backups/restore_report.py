"""What a restore changed (or, in a dry run, would change): the report and the tally that builds it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import msgspec

from services.profile.domain.restore import RestoreAction, RestoreStep


class RestoreDifference(msgspec.Struct, frozen=True, rename="camel"):
    customer_id: str
    action: RestoreAction
    changed_fields: list[str]
    current_name: str | None  # None: purged since the backup
    backup_name: str | None  # None: created after the backup


class RestoreConflict(msgspec.Struct, frozen=True, rename="camel"):
    """A customer left as it is: its backed-up code is held by another customer."""

    customer_id: str
    customer_code: str
    held_by: str


class RestoreReport(msgspec.Struct, frozen=True, rename="camel"):
    backup_id: str
    customer_id: str | None
    dry_run: bool
    customers_changed: int
    actions: dict[str, int]
    name_changes: int  # outbox events written (or, in a dry run, that would be)
    differences: list[RestoreDifference]  # the first ``max_differences``
    truncated: bool
    duration_ms: float
    conflicts: list[RestoreConflict] = msgspec.field(default_factory=list)  # the first ``max_differences``
    # The backup point taken by itself just before a whole-ledger restore (the way back from this restore).
    safety_backup_id: str | None = None


class RestoreTally:
    def __init__(self, max_differences: int) -> None:
        self.actions: Counter[str] = Counter()
        self.name_changes = 0
        self.differences: list[RestoreDifference] = []
        self.truncated = False
        self.conflicts: dict[str, RestoreConflict] = {}
        self._max = max_differences

    def add(self, steps: Sequence[RestoreStep], *, in_backup: bool) -> None:
        for step in steps:
            self.actions[step.action.value] += 1
            self.name_changes += int(step.name_changed)
            if len(self.differences) >= self._max:
                self.truncated = True
                continue
            self.differences.append(
                RestoreDifference(
                    customer_id=step.customer_id,
                    action=step.action,
                    changed_fields=list(step.changed),
                    current_name=step.before.customer_name if step.before else None,
                    backup_name=step.after.customer_name if in_backup else None,
                )
            )

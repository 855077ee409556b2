"""Applying one chunk of a restore: rows, name changes and audit entries, committed in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from services.profile.domain.model import ApplicationOrigin, direct_name_change
from services.profile.domain.restore import RestoreAction, RestoreStep
from services.profile.name_changes.records import new_application_id, record_name_changes
from services.profile.shared.audit import AuditEvent, customer_entry
from services.profile.shared.ports import ProfileUnitOfWork
from services.profile.shared.results import Actor


async def write_restore_steps(
    uow: ProfileUnitOfWork, steps: Sequence[RestoreStep], backup_id: str, actor: Actor
) -> None:
    # Codes are checked at commit: two customers of this chunk may swap theirs.
    await uow.customers.defer_code_uniqueness()
    recreated = [s.after for s in steps if s.action is RestoreAction.RECREATE]
    await uow.customers.insert_many(recreated)
    await uow.customers.forget_purged([c.customer_id for c in recreated])
    await uow.customers.save_many([s.after for s in steps if s.action is not RestoreAction.RECREATE])
    reason = f"restored from backup {backup_id}"
    changes = [
        direct_name_change(
            new_application_id(),
            ApplicationOrigin.BACKUP_RESTORE,
            before=s.before or s.after,
            after=s.after,
            reason=reason,
            operator_id=actor.actor_id,
            now=s.after.updated_at,
        )
        for s in steps
        if s.name_changed
    ]
    await record_name_changes(uow, changes)
    application_ids = {c.application.customer_id: c.application.application_id for c in changes}
    entries = [
        customer_entry(
            AuditEvent.CUSTOMER_RESTORED_FROM_BACKUP,
            reason,
            actor,
            before=s.before,
            after=s.after,
            changed=s.changed,
            application_id=application_ids.get(s.customer_id),
            extra={"backupId": backup_id, "action": s.action.value},
        )
        for s in steps
    ]
    await uow.audit.add_many(entries, steps[0].after.updated_at)
    await uow.commit()

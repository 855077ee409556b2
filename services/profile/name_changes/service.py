"""Use cases of the name-change lifecycle: submit, decide, re-apply (seed 000 5.2.1); the update runs in ``updates``."""

from __future__ import annotations

from dataclasses import dataclass

from services.profile.domain.errors import ApplicationNotFound, ProfileNotFound
from services.profile.domain.lookup import found
from services.profile.domain.model import Decision, NameChangeApplication, new_application
from services.profile.name_changes.records import new_application_id
from services.profile.name_changes.updates import NameChangeUpdates, application_audit
from services.profile.shared.audit import AuditEvent, actor_entry
from services.profile.shared.pagination import Keyset, Page, time_key
from services.profile.shared.ports import ApplicationFilter, ProfileUnitOfWork
from services.profile.shared.results import Actor, UpdateResult


@dataclass(frozen=True)
class NameChangeService(NameChangeUpdates):
    async def submit(self, customer_id: str, new_name: str, reason: str, actor: Actor) -> NameChangeApplication:
        now = self.clock()
        async with self.uow_factory() as uow:
            customer = found(
                await uow.customers.get(customer_id), ProfileNotFound(f"customer profile {customer_id} not found")
            )
            application = new_application(new_application_id(), customer, new_name, reason, now)
            await uow.applications.add(application)
            await uow.audit.add(
                application_audit(AuditEvent.APPLICATION_SUBMITTED, "submit name change", actor, application), now
            )
            await uow.commit()
        self.metrics.applications_submitted.inc()
        return application

    async def get(self, application_id: str) -> NameChangeApplication:
        async with self.uow_factory() as uow:
            application = await uow.applications.get(application_id)
        return found(application, ApplicationNotFound(f"application {application_id} not found"))

    async def page(
        self, filters: ApplicationFilter, cursor: str | None, limit: int | None
    ) -> Page[NameChangeApplication]:
        """Newest first; a stable cursor over (created_at, application_id)."""
        keyset = Keyset(time_key, cursor, limit, "applications", filters)
        async with self.uow_factory() as uow:
            rows = await uow.applications.list_page(filters, keyset.after, keyset.fetch)
        return keyset.page(rows, lambda a: [a.created_at.isoformat(), a.application_id])

    async def reapply(self, application_id: str, actor: Actor) -> NameChangeApplication:
        """An ``update_failed`` application, re-based on the current profile, goes back to ``pending``."""
        now = self.clock()
        async with self.uow_factory() as uow:
            application = await _locked_application(uow, application_id)
            customer = found(
                await uow.customers.get(application.customer_id, for_update=True),
                ProfileNotFound(f"customer profile {application.customer_id} not found"),
            )
            rebased = application.reapply(customer, now)
            await uow.applications.save(rebased)
            await uow.audit.add(
                actor_entry(
                    AuditEvent.APPLICATION_REAPPLIED,
                    "re-apply failed name change",
                    actor,
                    customer_id=rebased.customer_id,
                    application_id=rebased.application_id,
                    old_value={
                        "status": application.status.value,
                        "profileVersion": application.profile_version,
                        "oldName": application.old_name,
                        "failureCode": application.failure_code,
                    },
                    new_value={
                        "status": rebased.status.value,
                        "profileVersion": rebased.profile_version,
                        "oldName": rebased.old_name,
                    },
                ),
                now,
            )
            await uow.commit()
        return rebased

    async def decide(
        self, application_id: str, decision: Decision, auditor_id: str, comment: str | None, actor: Actor
    ) -> NameChangeApplication | UpdateResult:
        """Reject, or approve and run the update in the same transaction."""
        if decision is Decision.REJECTED:
            return await self._reject(application_id, auditor_id, comment, actor)
        return await self._run_update(application_id, actor, approval=(auditor_id, comment))

    async def _reject(
        self, application_id: str, auditor_id: str, comment: str | None, actor: Actor
    ) -> NameChangeApplication:
        now = self.clock()
        async with self.uow_factory() as uow:
            application = await _locked_application(uow, application_id)
            decided = application.decide(Decision.REJECTED, auditor_id, comment, now)
            await uow.applications.save(decided)
            await uow.audit.add(
                application_audit(AuditEvent.APPLICATION_REJECTED, "audit decision: rejected", actor, decided), now
            )
            await uow.commit()
        return decided


async def _locked_application(uow: ProfileUnitOfWork, application_id: str) -> NameChangeApplication:
    application = await uow.applications.get(application_id, for_update=True)
    return found(application, ApplicationNotFound(f"application {application_id} not found"))

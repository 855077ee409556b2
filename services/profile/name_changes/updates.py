"""The update use case of a name change: run it (alone, in a batch, or on approval), record its failure or refusal."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from libs.kit.errors import AppError
from libs.kit.logging import get_logger
from libs.kit.telemetry import current_trace_headers
from services.profile.domain.errors import ApplicationNotFound, InvalidStatus, UnexpectedUpdateError
from services.profile.domain.model import (
    ApplicationStatus,
    Decision,
    NameChange,
    NameChangeApplication,
    plan_name_change,
)
from services.profile.name_changes.records import name_change_rows
from services.profile.shared.audit import AuditEvent, actor_entry
from services.profile.shared.clock import Clock, utc_now
from services.profile.shared.metrics import ProfileMetrics
from services.profile.shared.ports import AuditEntry, CompletedNameChange, UnitOfWorkFactory
from services.profile.shared.results import Actor, BatchItemResult, UpdateResult

log = get_logger(__name__)


@dataclass(frozen=True)
class NameChangeUpdates:
    """Running the update; ``service.NameChangeService`` adds submit and decide on top (an approval runs it)."""

    uow_factory: UnitOfWorkFactory
    metrics: ProfileMetrics
    clock: Clock = utc_now

    async def update(self, application_id: str, actor: Actor) -> UpdateResult:
        """Run the update of an approved application; a completed one returns its first result."""
        return await self._run_update(application_id, actor, approval=None)

    async def update_batch(self, application_ids: Sequence[str], actor: Actor) -> list[BatchItemResult]:
        """One transaction per application, a result per item, in the order given."""
        results: list[BatchItemResult] = []
        for application_id in application_ids:
            try:
                result = await self.update(application_id, actor)
            except AppError as exc:
                results.append(
                    BatchItemResult(application_id, success=False, error_code=exc.code, error_detail=exc.detail)
                )
            else:
                results.append(BatchItemResult(application_id, success=True, result=result))
        return results

    async def _run_update(
        self, application_id: str, actor: Actor, approval: tuple[str, str | None] | None
    ) -> UpdateResult:
        started = time.perf_counter()
        log.info("UPDATE_START", application_id=application_id)
        try:
            result = await self._update_transaction(application_id, actor, approval)
        except AppError as exc:
            self._update_error(application_id, exc.code, exc.detail, exc)
            if isinstance(exc, InvalidStatus):
                await self._record_refusal(application_id, exc, actor)
            elif not isinstance(exc, ApplicationNotFound):
                await self._mark_failed(application_id, exc.code, exc.detail, actor, approval)
            raise
        except Exception as exc:
            # Seed 000 6.1/6.2: any error, not only the known kinds, rolls back, is logged and marks
            # the application update_failed; the client gets a problem with a stable type.
            error = UnexpectedUpdateError(
                f"the update of application {application_id} failed unexpectedly and was rolled back; "
                "the application is update_failed and needs an operator: quote the trace id"
            )
            cause = f"{type(exc).__name__}: {exc}"
            self._update_error(application_id, error.code, cause, exc)
            await self._mark_failed(application_id, error.code, cause, actor, approval)
            raise error from exc
        duration = time.perf_counter() - started
        self.metrics.update_duration.observe(duration)
        log.info(
            "UPDATE_SUCCESS",
            application_id=application_id,
            customer_id=result.customer_id,
            duration_ms=round(duration * 1000, 2),
        )
        return result

    def _update_error(self, application_id: str, code: str, detail: str, exc: BaseException) -> None:
        """Seed 000 section 8: UPDATE_ERROR at error level, with the error and its stack."""
        self.metrics.update_failure.labels(code).inc()
        log.error("UPDATE_ERROR", application_id=application_id, code=code, error=detail, exc_info=exc)

    async def _update_transaction(
        self, application_id: str, actor: Actor, approval: tuple[str, str | None] | None
    ) -> UpdateResult:
        now = self.clock()
        async with self.uow_factory() as uow:
            locked = await uow.name_changes.lock(application_id)
            if locked is None:
                raise ApplicationNotFound(f"application {application_id} not found")
            application, customer = locked
            if approval is None and application.status is ApplicationStatus.COMPLETED:
                stored = await uow.applications.stored_result(application_id)
                if stored is not None:
                    return msgspec.convert(stored, UpdateResult)
            audit: list[AuditEntry] = []
            if approval is not None:
                application = application.decide(Decision.APPROVED, approval[0], approval[1], now)
                audit.append(
                    application_audit(AuditEvent.APPLICATION_APPROVED, "audit decision: approved", actor, application)
                )
            change = plan_name_change(application, customer, now)
            completed, result = _completed_name_change(change, actor, audit)
            await uow.name_changes.write(completed)
            await uow.commit()
        self.metrics.update_success.labels(change.customer_type).inc()
        return result

    async def _mark_failed(
        self, application_id: str, code: str, detail: str, actor: Actor, approval: tuple[str, str | None] | None
    ) -> None:
        """After the rollback, in its own transaction: the application becomes update_failed."""
        now = self.clock()
        try:
            async with self.uow_factory() as uow:
                application = await uow.applications.get(application_id, for_update=True)
                if application is None or application.status not in _FAILABLE:
                    return
                if approval is not None and application.status is ApplicationStatus.PENDING:
                    application = application.decide(Decision.APPROVED, approval[0], approval[1], now)
                await uow.applications.save(application.update_failed(code, detail, now))
                # The operation log's trigger queues an admin signal with the entry (seed 000 6.2 notifyAdmin).
                await uow.audit.add(
                    application_audit(
                        AuditEvent.UPDATE_FAILED,
                        f"profile update failed: {code}",
                        actor,
                        application,
                        failure_code=code,
                    ),
                    now,
                )
                await uow.commit()
        except Exception:  # the update's own error is the one the caller gets
            log.exception("UPDATE_FAILED_NOT_RECORDED", application_id=application_id, code=code)
            return
        self.metrics.update_failed.labels(code).inc()

    async def _record_refusal(self, application_id: str, error: InvalidStatus, actor: Actor) -> None:
        """Seed 000 6.2: INVALID_STATUS needs a person. Logged in the operation log in its own transaction (the
        update's rolled back), whose trigger queues the admin signal; the application is left as it is."""
        now = self.clock()
        try:
            async with self.uow_factory() as uow:
                application = await uow.applications.get(application_id)
                await uow.audit.add(
                    actor_entry(
                        AuditEvent.UPDATE_REFUSED,
                        f"profile update refused: {error.code}",
                        actor,
                        customer_id=application.customer_id if application is not None else None,
                        application_id=application_id,
                        new_value={
                            "status": application.status.value if application is not None else None,
                            "failureCode": error.code,
                        },
                    ),
                    now,
                )
                await uow.commit()
        except Exception:  # the refusal itself is the answer the caller gets
            log.exception("UPDATE_REFUSAL_NOT_RECORDED", application_id=application_id, code=error.code)


_FAILABLE = (ApplicationStatus.PENDING, ApplicationStatus.APPROVED, ApplicationStatus.UPDATE_FAILED)


def _completed_name_change(
    change: NameChange, actor: Actor, audit: list[AuditEntry]
) -> tuple[CompletedNameChange, UpdateResult]:
    """Profile, history, completed application, audit log and outbox row: written in one transaction."""
    application = change.application
    history, result, message = name_change_rows(change, current_trace_headers())
    audit.append(
        actor_entry(
            AuditEvent.PROFILE_UPDATED,
            "name change applied",
            actor,
            customer_id=application.customer_id,
            application_id=application.application_id,
            old_value={"customerName": application.old_name, "version": change.customer.version},
            new_value={"customerName": application.new_name, "version": change.new_version},
        )
    )
    completed = CompletedNameChange(
        change=change,
        application=application.completed(change.changed_at),
        stored_result=msgspec.to_builtins(result),
        history=history,
        audit=audit,
        message=message,
    )
    return completed, result


def application_audit(
    event: AuditEvent,
    operation: str,
    actor: Actor,
    application: NameChangeApplication,
    *,
    failure_code: str | None = None,
) -> AuditEntry:
    """An application's step in the operation log (its status and new name)."""
    new_value = {"status": application.status.value, "newName": application.new_name}
    if failure_code is not None:
        new_value["failureCode"] = failure_code
    return actor_entry(
        event,
        operation,
        actor,
        customer_id=application.customer_id,
        application_id=application.application_id,
        new_value=new_value,
    )

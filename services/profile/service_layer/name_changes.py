"""Use cases of the name-change lifecycle: submit, decide, update (seed 000 5.2.1)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import msgspec

from contracts.cloudevents import CloudEventAttributes, kafka_headers
from contracts.events import EVENT_SOURCE, NAME_CHANGED_TYPE, CustomerNameChanged
from libs.kit.errors import AppError
from libs.kit.logging import get_logger
from libs.kit.telemetry import current_trace_headers
from libs.outbox.writer import OutboxMessage
from services.profile.domain.errors import ApplicationNotFound, InvalidStatus, ProfileNotFound
from services.profile.domain.model import (
    SYSTEM_OPERATOR_ID,
    SYSTEM_OPERATOR_NAME,
    ApplicationStatus,
    Decision,
    NameChange,
    NameChangeApplication,
    new_application,
    plan_name_change,
)
from services.profile.service_layer.metrics import ProfileMetrics
from services.profile.service_layer.ports import AuditEntry, HistoryEntry, ProfileUnitOfWork, UnitOfWorkFactory
from services.profile.service_layer.results import Actor, BatchItemResult, UpdateResult

log = get_logger(__name__)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class NameChangeService:
    def __init__(self, uow_factory: UnitOfWorkFactory, metrics: ProfileMetrics, clock: Clock = utc_now) -> None:
        self._uow_factory = uow_factory
        self._metrics = metrics
        self._clock = clock

    async def submit(self, customer_id: str, new_name: str, reason: str, actor: Actor) -> NameChangeApplication:
        now = self._clock()
        async with self._uow_factory() as uow:
            customer = await uow.customers.get(customer_id)
            if customer is None:
                raise ProfileNotFound(f"customer profile {customer_id} not found")
            application = new_application(f"APP-{uuid.uuid4().hex}", customer, new_name, reason, now)
            await uow.applications.add(application)
            await uow.audit.add(_audit("APPLICATION_SUBMITTED", "submit name change", actor, application), now)
            await uow.commit()
        self._metrics.applications_submitted.inc()
        return application

    async def get(self, application_id: str) -> NameChangeApplication:
        async with self._uow_factory() as uow:
            application = await uow.applications.get(application_id)
        if application is None:
            raise ApplicationNotFound(f"application {application_id} not found")
        return application

    async def decide(
        self, application_id: str, decision: Decision, auditor_id: str, comment: str | None, actor: Actor
    ) -> NameChangeApplication | UpdateResult:
        """Reject, or approve and run the update in the same transaction."""
        if decision is Decision.REJECTED:
            return await self._reject(application_id, auditor_id, comment, actor)
        return await self._run_update(application_id, actor, approval=(auditor_id, comment))

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

    async def _reject(
        self, application_id: str, auditor_id: str, comment: str | None, actor: Actor
    ) -> NameChangeApplication:
        now = self._clock()
        async with self._uow_factory() as uow:
            application = await _locked_application(uow, application_id)
            decided = application.decide(Decision.REJECTED, auditor_id, comment, now)
            await uow.applications.save(decided)
            await uow.audit.add(_audit("APPLICATION_REJECTED", "audit decision: rejected", actor, decided), now)
            await uow.commit()
        return decided

    async def _run_update(
        self, application_id: str, actor: Actor, approval: tuple[str, str | None] | None
    ) -> UpdateResult:
        started = time.perf_counter()
        log.info("UPDATE_START", application_id=application_id)
        try:
            result = await self._update_transaction(application_id, actor, approval)
        except AppError as exc:
            self._metrics.update_failure.labels(exc.code).inc()
            log.warning("UPDATE_ERROR", application_id=application_id, code=exc.code, error=exc.detail)
            if not isinstance(exc, ApplicationNotFound | InvalidStatus):
                await self._mark_failed(application_id, exc, actor, approval)
            raise
        duration = time.perf_counter() - started
        self._metrics.update_duration.observe(duration)
        log.info(
            "UPDATE_SUCCESS",
            application_id=application_id,
            customer_id=result.customer_id,
            duration_ms=round(duration * 1000, 2),
        )
        return result

    async def _update_transaction(
        self, application_id: str, actor: Actor, approval: tuple[str, str | None] | None
    ) -> UpdateResult:
        now = self._clock()
        async with self._uow_factory() as uow:
            application = await _locked_application(uow, application_id)
            if approval is None and application.status is ApplicationStatus.COMPLETED:
                stored = await uow.applications.stored_result(application_id)
                if stored is not None:
                    return msgspec.convert(stored, UpdateResult)
            if approval is not None:
                application = application.decide(Decision.APPROVED, approval[0], approval[1], now)
                await uow.applications.save(application)
                await uow.audit.add(_audit("APPLICATION_APPROVED", "audit decision: approved", actor, application), now)
            customer = await uow.customers.get(application.customer_id, for_update=True)
            change = plan_name_change(application, customer, now)
            result = await _write_name_change(uow, change, actor)
            await uow.commit()
        self._metrics.update_success.labels(change.customer_type).inc()
        return result

    async def _mark_failed(
        self, application_id: str, error: AppError, actor: Actor, approval: tuple[str, str | None] | None
    ) -> None:
        """After the rollback, in its own transaction: the application becomes update_failed."""
        now = self._clock()
        try:
            async with self._uow_factory() as uow:
                application = await uow.applications.get(application_id, for_update=True)
                if application is None or application.status not in _FAILABLE:
                    return
                if approval is not None and application.status is ApplicationStatus.PENDING:
                    application = application.decide(Decision.APPROVED, approval[0], approval[1], now)
                    await uow.applications.save(application)
                await uow.applications.mark_update_failed(application_id, error.code, error.detail, now)
                await uow.audit.add(
                    _audit("UPDATE_FAILED", f"profile update failed: {error.code}", actor, application), now
                )
                await uow.commit()
        except AppError as exc:
            log.exception("UPDATE_FAILED_NOT_RECORDED", application_id=application_id, code=exc.code, error=exc.detail)


_FAILABLE = (ApplicationStatus.PENDING, ApplicationStatus.APPROVED, ApplicationStatus.UPDATE_FAILED)


async def _locked_application(uow: ProfileUnitOfWork, application_id: str) -> NameChangeApplication:
    application = await uow.applications.get(application_id, for_update=True)
    if application is None:
        raise ApplicationNotFound(f"application {application_id} not found")
    return application


async def _write_name_change(uow: ProfileUnitOfWork, change: NameChange, actor: Actor) -> UpdateResult:
    """Profile, history, completed application, audit log and outbox row: one transaction."""
    application, now = change.application, change.changed_at
    event_id = uuid.uuid4()
    await uow.customers.apply_name_change(change)
    await uow.history.add(
        HistoryEntry(
            customer_id=application.customer_id,
            application_id=application.application_id,
            old_name=application.old_name,
            new_name=application.new_name,
            change_reason=application.reason,
            profile_version=change.new_version,
            change_date=now,
            operator_id=SYSTEM_OPERATOR_ID,
            operator_name=SYSTEM_OPERATOR_NAME,
        )
    )
    result = UpdateResult(
        success=True,
        application_id=application.application_id,
        customer_id=application.customer_id,
        old_name=application.old_name,
        new_name=application.new_name,
        profile_version=change.new_version,
        update_time=now,
        event_id=str(event_id),
    )
    await uow.applications.complete(application.application_id, msgspec.to_builtins(result), now)
    await uow.audit.add(
        AuditEntry(
            event_type="PROFILE_UPDATED",
            actor_id=actor.actor_id,
            operation="name change applied",
            customer_id=application.customer_id,
            application_id=application.application_id,
            old_value={"customerName": application.old_name, "version": change.customer.version},
            new_value={"customerName": application.new_name, "version": change.new_version},
            ip_address=actor.ip_address,
            user_agent=actor.user_agent,
            trace_id=actor.trace_id,
        ),
        now,
    )
    await uow.outbox.add(_name_changed_message(event_id, change))
    return result


def _name_changed_message(event_id: uuid.UUID, change: NameChange) -> OutboxMessage:
    application = change.application
    event = CustomerNameChanged(
        customer_id=application.customer_id,
        application_id=application.application_id,
        old_name=application.old_name,
        new_name=application.new_name,
        profile_version=change.new_version,
        reason=application.reason,
        changed_at=change.changed_at,
    )
    attributes = CloudEventAttributes(
        id=str(event_id),
        source=EVENT_SOURCE,
        type=NAME_CHANGED_TYPE,
        time=change.changed_at,
        subject=application.customer_id,
    )
    return OutboxMessage(
        id=event_id,
        aggregate_type="customer",
        aggregate_id=application.customer_id,
        event_type=NAME_CHANGED_TYPE,
        payload=msgspec.to_builtins(event),
        headers=kafka_headers(attributes, current_trace_headers()),
        created_at=change.changed_at,
    )


def _audit(event_type: str, operation: str, actor: Actor, application: NameChangeApplication) -> AuditEntry:
    return AuditEntry(
        event_type=event_type,
        actor_id=actor.actor_id,
        operation=operation,
        customer_id=application.customer_id,
        application_id=application.application_id,
        new_value={"status": application.status.value, "newName": application.new_name},
        ip_address=actor.ip_address,
        user_agent=actor.user_agent,
        trace_id=actor.trace_id,
    )

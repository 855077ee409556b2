"""Per-request collaborators, taken from the application state built at start-up."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from opentelemetry import trace

from services.profile.access.auth import Principal
from services.profile.backups.restore import RestoreService
from services.profile.backups.service import BackupService
from services.profile.customers.service import CustomerService
from services.profile.customers.versions import VersionService
from services.profile.name_changes.service import NameChangeService
from services.profile.shared.audit import AuditLogService
from services.profile.shared.results import Actor

ANONYMOUS = "anonymous"


def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    # The verified token's subject, never a header the caller writes; every guarded route has one.
    principal = request.scope.get("user")
    actor_id = principal.subject if isinstance(principal, Principal) else ANONYMOUS
    context = trace.get_current_span().get_span_context()
    return Actor(
        actor_id=actor_id,
        ip_address=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:500] or None,
        trace_id=format(context.trace_id, "032x") if context.is_valid else None,
    )


def provide_customers(state: State) -> CustomerService:
    service: CustomerService = state.customer_service
    return service


def provide_name_changes(state: State) -> NameChangeService:
    service: NameChangeService = state.name_change_service
    return service


def provide_backups(state: State) -> BackupService:
    service: BackupService = state.backup_service
    return service


def provide_restores(state: State) -> RestoreService:
    service: RestoreService = state.restore_service
    return service


def provide_audit_log(state: State) -> AuditLogService:
    service: AuditLogService = state.audit_log_service
    return service


def provide_versions(state: State) -> VersionService:
    service: VersionService = state.version_service
    return service


LEDGER_DEPENDENCIES = {
    "versions": provide_versions,
    "backups": provide_backups,
    "restores": provide_restores,
    "audit_log": provide_audit_log,
}

"""Litestar dependency providers, each reading the one typed ``ProfileServices`` built at start-up."""

from __future__ import annotations

from datetime import timedelta

from litestar.di import Provide

from services.profile.access.auth import actor_of
from services.profile.bootstrap import ProfileServices, SqlAdapters
from services.profile.settings import ProfileSettings


def _constant(value: object) -> Provide:
    def provide() -> object:
        return value

    return Provide(provide, sync_to_thread=False)


def profile_dependencies(services: ProfileServices[SqlAdapters], settings: ProfileSettings) -> dict[str, Provide]:
    """By name, as the route handlers ask for them (``NamedDependency``)."""
    return {
        "actor": Provide(actor_of, sync_to_thread=False),
        "customers": _constant(services.customers),
        "versions": _constant(services.versions),
        "name_changes": _constant(services.name_changes),
        "backups": _constant(services.backups),
        "restores": _constant(services.restores),
        "audit_log": _constant(services.audit_log),
        "outbox_admin": _constant(services.outbox_admin),
        "admin_signals": _constant(services.admin_signals),
        "engine": _constant(services.adapters.engine),
        "recycle_bin_retention": _constant(timedelta(days=settings.ledger.recycle_bin_retention_days)),
        "max_batch_size": _constant(settings.http.max_batch_size),
    }

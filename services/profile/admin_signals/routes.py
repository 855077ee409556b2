"""``/internal/v1/admin-signals``: what the admins must hear of, for the sync-connector's admin notifications.

Read and acknowledged with the connector's service token (role ``notifier``): the connector counts the
signals into its windows (one mail per cause and window), then acknowledges them, and they leave the
profile's queue. The parked outbox rows are a state: listed as long as they are parked.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from contracts.admin_signals import SIGNALS_PATH, AdminSignals
from services.profile.access.auth import Role, requires
from services.profile.admin_signals.service import MAX_SIGNALS, AdminSignalService
from services.profile.shared.web import examples as ex

SignalId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]  # a bigint identity


class NotedRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ids: Annotated[list[SignalId], msgspec.Meta(max_length=MAX_SIGNALS)]


class NotedResult(msgspec.Struct, frozen=True):
    removed: int


class InternalSignalController(Controller):
    path = SIGNALS_PATH
    tags = ["internal"]  # noqa: RUF012

    @get("/", guards=[requires(Role.NOTIFIER)], responses=ex.problems("VALIDATION"))
    async def admin_signals(
        self,
        admin_signals: NamedDependency[AdminSignalService],
        limit: Annotated[int, Parameter(ge=1, le=MAX_SIGNALS)] = 500,
    ) -> AdminSignals:
        """Failed and refused updates not yet noted (oldest first) and the parked outbox rows (role ``notifier``)."""
        return await admin_signals.read(limit)

    @post("/noted", guards=[requires(Role.NOTIFIER)], status_code=200, responses=ex.problems("VALIDATION"))
    async def noted(
        self, data: JSONBody[NotedRequest], admin_signals: NamedDependency[AdminSignalService]
    ) -> NotedResult:
        """The connector counted these signals: they leave the queue."""
        return NotedResult(await admin_signals.noted(data.ids))

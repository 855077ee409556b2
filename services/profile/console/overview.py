"""The pipeline at a glance: the outbox backlog (our database) and, per external system, the
sync-connector's record counts, circuit breaker and consumer lag (its HTTP API).

The page refreshes itself: a small script swaps in ``/console/overview/panel`` every
``PROFILE_CONSOLE_REFRESH_S`` seconds (without scripts, a meta refresh reloads the page).
A connector that does not answer is shown as such; the outbox half still renders.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.response import Template

from libs.kit.errors import AppError
from libs.outbox.backlog import OutboxBacklog, OutboxBacklogReader
from services.profile.console.connector_api import PipelineStatus
from services.profile.console.connector_client import ConnectorClient
from services.profile.console.context import console_of
from services.profile.console.rendering import render
from services.profile.console.session import READ, caller

SYNC_STATUSES = ("success", "pending", "retrying", "failed", "superseded")


async def _overview(
    request: Request[Any, Any, Any], backlog: OutboxBacklogReader, connector: ConnectorClient
) -> dict[str, Any]:
    outbox_result, sync_result = await asyncio.gather(
        backlog.read(), connector.pipeline_status(caller(request)), return_exceptions=True
    )
    for result in (outbox_result, sync_result):
        if isinstance(result, BaseException) and not isinstance(result, AppError):
            raise result
    return {
        "outbox": outbox_result if isinstance(outbox_result, OutboxBacklog) else None,
        "outbox_error": outbox_result.detail if isinstance(outbox_result, AppError) else None,
        "pipeline": sync_result if isinstance(sync_result, PipelineStatus) else None,
        "pipeline_error": sync_result.detail if isinstance(sync_result, AppError) else None,
        "connector_url": connector.base_url,
        "sync_statuses": SYNC_STATUSES,
        "refresh_s": console_of(request).settings.refresh_s,
    }


def _pipeline_page(
    path: str, template: str, *, name: str | None = None, page: str = "", title: str = ""
) -> HTTPRouteHandler:
    """A page of the pipeline's state (the outbox backlog and the connector's status) in ``template``."""

    @get(path, guards=READ, name=name)
    async def pipeline_page(
        request: Request[Any, Any, Any],
        outbox_backlog: NamedDependency[OutboxBacklogReader],
        connector: NamedDependency[ConnectorClient],
    ) -> Template:
        context = await _overview(request, outbox_backlog, connector)
        return render(request, template, context, page=page, title=title)

    return pipeline_page


overview = _pipeline_page("/", "overview.html", name="console:overview", page="overview", title="Pipeline overview")
# The panels alone, for the page's self-refresh.
overview_panel = _pipeline_page("/overview/panel", "overview_panel.html")

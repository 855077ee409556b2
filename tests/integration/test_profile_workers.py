"""``serve`` with several worker processes: approvals on every worker, one set of metrics."""

from __future__ import annotations

import re

import aiohttp

from libs.devstack.embedded import free_port
from libs.devstack.processes import ServiceProcess
from libs.kit.db import sqlalchemy_url
from libs.kit.tokens import Role
from tests.auth_support import auth_env, bearer
from tests.perf.bench_http_updates import seed_pending_applications

APPROVALS = 24


def _committed_updates(metrics_text: str) -> float:
    pattern = r'^profile_update_success_total\{customer_type="residential"\} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, metrics_text, re.MULTILINE))


async def test_two_workers_share_the_port_and_one_metrics_view(database_url: str) -> None:
    application_ids = await seed_pending_applications(database_url, APPROVALS, "W")
    port = free_port()
    service = ServiceProcess(
        "profile-workers",
        "services.profile",
        ["serve"],
        env={
            "PROFILE_DB_URL": sqlalchemy_url(database_url),
            "PROFILE_HTTP_PORT": str(port),
            "PROFILE_HTTP_WORKERS": "2",
            "PROFILE_LOG_LEVEL": "WARNING",
            **auth_env(),
        },
        health_url=f"http://127.0.0.1:{port}/health",
    )
    service.start(timeout=60)
    headers = bearer(Role.AUDIT_SYSTEM, subject="workers")
    try:
        # A new connection per request, so the kernel hands them to either worker.
        async with aiohttp.ClientSession(
            f"http://127.0.0.1:{port}", connector=aiohttp.TCPConnector(force_close=True)
        ) as http:
            for application_id in application_ids:
                async with http.post(
                    f"/v1/name-change-applications/{application_id}/decision",
                    json={"decision": "approved", "auditorId": "a1"},
                    headers=headers,
                ) as response:
                    assert response.status == 200, await response.text()
            for _ in range(4):  # whichever worker answers the scrape, it counts every worker's approvals
                async with http.get("/metrics") as response:
                    assert _committed_updates(await response.text()) == APPROVALS
    finally:
        service.stop()

"""``serve`` with several worker processes: approvals on every worker, one set of metrics."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from libs.kit.tokens import Role
from tests.auth_support import bearer
from tests.perf.bench_http_updates import seed_pending_applications
from tests.system_support import profile_alone

APPROVALS = 24


def _committed_updates(metrics_text: str) -> float:
    pattern = r'^profile_update_success_total\{customer_type="residential"\} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, metrics_text, re.MULTILINE))


async def test_two_workers_share_the_port_and_one_metrics_view(database_url: str, artifacts_dir: Path) -> None:
    application_ids = await seed_pending_applications(database_url, APPROVALS, "W")
    service = profile_alone(database_url, artifacts_dir / "profile-workers", PROFILE_HTTP_WORKERS="2")
    service.start(timeout=60)
    headers = bearer(Role.AUDIT_SYSTEM, subject="workers")
    try:
        # A new connection per request, so the kernel hands them to either worker.
        async with aiohttp.ClientSession(service.url, connector=aiohttp.TCPConnector(force_close=True)) as http:
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

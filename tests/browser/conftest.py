"""The whole system as real processes, and Debian's Chromium driven by Playwright, for the console's
browser tests. One system per module (the three journeys share it; each uses its own customers).

The browser is the system package ``chromium`` (``make test`` installs it with apt); Playwright's
own browser download is never used. Without a Chromium the tests skip and say why.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Coroutine, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest

from libs.devstack.topology import SYSTEMS as SYSTEMS  # noqa: PLC0414 - re-exported for the browser tests
from libs.kit.kafka import KafkaSettings
from libs.kit.kafka_topics import ensure_topic
from libs.kit.tokens import Role
from tests.auth_support import bearer
from tests.polling import eventually_sync
from tests.system_support import topology_for_tests

CHROMIUM = os.environ.get("CONSOLE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The journey page links each change's trace here (Jaeger's URL; nothing needs to listen for the tests).
TRACE_UI = "http://127.0.0.1:16686/trace/{trace_id}"
T = TypeVar("T")


@dataclass
class ConsoleSystem:
    profile_url: str
    connector_url: str
    stubs_url: str
    database_url: str
    api: httpx.Client  # the JSON APIs as an admin (set-up and checks)

    def wait_for(self, probe: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        return eventually_sync(probe, what, timeout)


def in_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh loop in a helper thread: Playwright's sync API
    keeps an event loop running in the test's thread, where ``asyncio.run`` is refused."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def sql_value(database_url: str, statement: str, *args: Any) -> Any:
    async def fetch() -> Any:
        connection = await asyncpg.connect(database_url)
        try:
            return await connection.fetchval(statement, *args)
        finally:
            await connection.close()

    return in_own_loop(fetch())


@pytest.fixture(scope="module")
def console_system(
    clone_database: Callable[[str], str], kafka_bootstrap: str, artifacts_dir: Path
) -> Iterator[ConsoleSystem]:
    database_url = clone_database("t_browser")
    topic = f"customer-profile.v1.browser-{uuid.uuid4().hex[:8]}"
    in_own_loop(ensure_topic(KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=3), topic))
    topology = topology_for_tests(
        database_url,
        kafka_bootstrap,
        topic,
        artifacts_dir / "browser" / "logs",
        group_prefix=f"browser-{uuid.uuid4().hex[:8]}",
        overrides={"profile": {"PROFILE_CONSOLE_REFRESH_S": "2", "PROFILE_CONSOLE_TRACE_URL_TEMPLATE": TRACE_UI}},
    )
    api = httpx.Client(timeout=10, headers=bearer(Role.ADMIN, Role.AUDIT_SYSTEM, subject="browser-setup"))
    try:
        with topology.start() as processes:
            connector_url = processes.url("connector")
            system = ConsoleSystem(processes.url("profile"), connector_url, processes.url("stubs"), database_url, api)
            system.wait_for(
                lambda: httpx.get(f"{connector_url}/ready", timeout=5).status_code == 200,
                "the connector's consumer groups to join",
                timeout=60,
            )
            yield system
    finally:
        api.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's package (`apt-get install chromium`, which `make test` "
            "does as root) or point CONSOLE_TEST_CHROMIUM at a Chromium binary"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, so ``shots`` knows whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


class Screenshots:
    """Numbered full-page screenshots of one test, under ``<artifacts>/browser/<test>/``."""

    def __init__(self, page: Any, folder: Path) -> None:
        self._page = page
        self.folder = folder
        self.taken: list[Path] = []
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        self._page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@pytest.fixture
def page(browser: Any, console_system: ConsoleSystem) -> Iterator[Any]:
    context = browser.new_context(base_url=console_system.profile_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def shots(page: Any, artifacts_dir: Path, request: pytest.FixtureRequest) -> Iterator[Screenshots]:
    screenshots = Screenshots(page, artifacts_dir / "browser" / request.node.name)
    yield screenshots
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        screenshots("failure")

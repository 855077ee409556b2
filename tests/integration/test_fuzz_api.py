"""Property-based testing of the profile API against its own OpenAPI document: every check.

A real ``python -m services.profile serve`` process on a fresh database with a few customers.
Schemathesis runs as a new user would (``schemathesis run``, as for the connector in
``test_fuzz_connector_api.py``): all of its checks (server errors, status codes, content types,
headers, response schemas, invalid data rejected, valid data accepted, missing required headers,
unsupported methods with ``Allow``, ignored authentication...), positive and negative data, with one
token that may call every route (admin, audit-system and notifier; it tries without one by itself).
Zero failures expected. ``FUZZ_MAX_EXAMPLES`` (default 5 per operation) bounds the run in
``make test``; docs/security.md has a longer run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis.core.result import Ok

from libs.kit.tokens import Role
from tests.auth_support import bearer, token
from tests.ledger_support import customer_body
from tests.system_support import profile_alone

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "5"))
EVERY_ROLE = (Role.ADMIN, Role.AUDIT_SYSTEM, Role.NOTIFIER)
RUN_TIMEOUT_S = 300
CONFIG = Path(__file__).parents[1] / "schemathesis_profile.toml"


@pytest.fixture(scope="module")
def fuzz_server(clone_database: Callable[[str], str], artifacts_dir: Path) -> Iterator[str]:
    database_url = clone_database("fuzz")
    process = profile_alone(database_url, artifacts_dir / "fuzz")
    process.start(timeout=60)
    assert process.url is not None
    base = process.url
    try:
        with httpx.Client(base_url=base, headers=bearer(*EVERY_ROLE, subject="fuzzer"), timeout=10) as client:
            for number in range(1, 4):  # something for the generated ids to find now and then
                client.post("/v1/customers", json=customer_body(f"C{number}")).raise_for_status()
        yield base
    finally:
        process.stop()


def test_every_check_passes_on_positive_and_negative_data(fuzz_server: str, artifacts_dir: Path) -> None:
    document = f"{fuzz_server}/schema/openapi.json"
    results = list(schemathesis.openapi.from_url(document).get_all_operations())
    assert all(isinstance(result, Ok) for result in results), "the OpenAPI document has an invalid operation"
    assert len(results) >= 20
    reports = artifacts_dir / "fuzz"
    command = [
        *(sys.executable, "-m", "tests.schemathesis_cli", "--no-color", "--config-file", str(CONFIG), "run", document),
        *("--checks", "all", "--mode", "all", "--max-examples", str(MAX_EXAMPLES)),
        *("--header", f"Authorization: Bearer {token(*EVERY_ROLE, subject='fuzzer')}"),
        *("--request-timeout", "10", "--workers", "2", "--suppress-health-check", "all"),
        *("--report", "junit", "--report-dir", str(reports)),
    ]
    finished = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks"},  # a fresh Idempotency-Key per request
    )
    (reports / "findings.txt").write_text(finished.stdout + finished.stderr, encoding="utf-8")
    assert finished.returncode == 0, finished.stdout[-12000:] + finished.stderr[-3000:]

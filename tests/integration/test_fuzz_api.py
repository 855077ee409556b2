"""Property-based fuzzing of the profile API against its own OpenAPI document (schemathesis).

A real ``python -m services.profile serve`` process on a fresh database with a few customers;
every operation of ``/schema/openapi.json`` gets generated requests, valid and invalid, with an
admin + audit-system token (the notifier's route with a notifier token). No response may be a
5xx, and every response must match the document: a documented status code, content type
and body schema. ``FUZZ_MAX_EXAMPLES`` (default 15 per operation) bounds the run in
``make test``; the README's Security section has a longer run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from libs.kit.tokens import Role
from tests.auth_support import bearer
from tests.ledger_support import customer_body
from tests.system_support import profile_alone

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "15"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EVERYTHING = bearer(Role.ADMIN, Role.AUDIT_SYSTEM, subject="fuzzer")
NOTIFIER = bearer(Role.NOTIFIER, subject="fuzzer-notifier")


@pytest.fixture(scope="module")
def fuzz_server(clone_database: Callable[[str], str], artifacts_dir: Path) -> Iterator[str]:
    database_url = clone_database("fuzz")
    process = profile_alone(database_url, artifacts_dir / "fuzz")
    process.start(timeout=60)
    assert process.url is not None
    base = process.url
    try:
        with httpx.Client(base_url=base, headers=EVERYTHING, timeout=10) as client:
            for number in range(1, 4):  # something for the generated ids to find now and then
                client.post("/v1/customers", json=customer_body(f"C{number}")).raise_for_status()
        yield base
    finally:
        process.stop()


def _fuzz(operation: Any, mode: GenerationMode, base_url: str) -> None:
    """Up to ``MAX_EXAMPLES`` generated requests to one operation; raises on the first finding."""
    headers = NOTIFIER if operation.path.startswith("/internal/") else EVERYTHING

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    fuzz()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_server_error_and_every_response_matches_the_document(
    fuzz_server: str, mode: GenerationMode, artifacts_dir: Path
) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server}/schema/openapi.json")
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), "the OpenAPI document has an invalid operation"
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) >= 20
    failures: dict[str, str] = {}
    for operation in operations:
        try:
            _fuzz(operation, mode, fuzz_server)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every finding, then fail once
            failures[operation.label] = str(exc)[:3000]
    report = "\n\n".join(f"{label}:\n{finding}" for label, finding in failures.items())
    (artifacts_dir / "fuzz" / f"findings-{mode.value}.txt").write_text(report or "none", encoding="utf-8")
    assert sorted(failures) == [], report

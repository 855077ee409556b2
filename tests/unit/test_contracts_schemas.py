"""The published JSON Schemas: generated from the code, no drift, and they say what the code does."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from contracts import generate
from contracts.cloudevents import CloudEventAttributes, kafka_headers
from contracts.events import EVENT_SOURCE, NAME_CHANGED_TYPE, CustomerNameChanged, decode_event, encode_event
from contracts.external_systems import (
    IDEMPOTENCY_KEY_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_PATTERN,
    SYSTEM_PATHS,
    ExternalSyncRequest,
)

SCHEMAS = Path(generate.__file__).parent / "schemas"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def validator(file_name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / file_name).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def errors(file_name: str, instance: Any) -> list[str]:
    return [error.message for error in validator(file_name).iter_errors(instance)]


def an_event(**overrides: Any) -> CustomerNameChanged:
    values: dict[str, Any] = {
        "customer_id": "C001",
        "application_id": "APP-1",
        "old_name": "张三",
        "new_name": "李四",
        "profile_version": 2,
        "reason": 'marriage "quoted" 😀',
        "changed_at": datetime(2025, 5, 20, 8, 30, 0, 123456, tzinfo=UTC),
    }
    values.update(overrides)
    return CustomerNameChanged(**values)


def test_committed_files_are_what_the_generator_writes() -> None:
    drifted = generate.drifted_files(generate.rendered_files())
    assert drifted == [], f"run `python -m contracts.generate` and commit: {drifted}"


def test_the_check_command_passes_on_the_committed_files() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "contracts.generate", "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_drift_is_detected_for_a_changed_or_missing_file(tmp_path: Path) -> None:
    changed, missing, same = tmp_path / "changed.json", tmp_path / "missing.json", tmp_path / "same.json"
    changed.write_text("{}\n")
    same.write_text('{"a": 1}\n')
    files = {changed: '{"b": 2}\n', missing: "{}\n", same: '{"a": 1}\n'}
    assert generate.drifted_files(files) == [changed, missing]


@pytest.mark.parametrize("file_name", sorted(generate.SCHEMA_TYPES))
def test_every_schema_is_valid_json_schema_2020_12(file_name: str) -> None:
    schema = json.loads((SCHEMAS / file_name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == generate.SCHEMA_DIALECT
    assert schema["$id"].endswith("/" + file_name)
    assert schema["description"]


def test_an_encoded_event_validates_and_broken_ones_do_not() -> None:
    name = "customer-name-changed.v1.schema.json"
    payload = json.loads(encode_event(an_event()))
    assert errors(name, payload) == []
    assert errors(name, {**payload, "addedLater": True}) == [], "consumers must tolerate new fields"
    assert errors(name, {k: v for k, v in payload.items() if k != "profileVersion"})
    assert errors(name, {**payload, "profileVersion": "2"})
    assert errors(name, {**payload, "changedAt": "yesterday"})


def test_the_event_type_rejects_what_the_schema_rejects() -> None:
    payload = json.loads(encode_event(an_event()))
    naive = {**payload, "changedAt": "2025-05-20T08:30:00"}
    assert errors("customer-name-changed.v1.schema.json", naive)
    with pytest.raises(msgspec.ValidationError):
        decode_event(json.dumps(naive).encode())
    assert decode_event(encode_event(an_event())) == an_event()


def test_headers_written_for_an_event_validate_against_the_header_schema() -> None:
    attributes = CloudEventAttributes(
        id=str(uuid.uuid4()),
        source=EVENT_SOURCE,
        type=NAME_CHANGED_TYPE,
        time=datetime.now(UTC),
        subject="C001",
    )
    name = "customer-profile-event-headers.v1.schema.json"
    traced = kafka_headers(attributes, {"traceparent": TRACEPARENT, "tracestate": "vendor=1", "baggage": "x"})
    untraced = kafka_headers(attributes, {})
    assert errors(name, traced) == []
    assert errors(name, untraced) == []
    assert "baggage" not in traced
    assert errors(name, {**traced, "ce_id": "not-a-uuid"})
    assert errors(name, {**traced, "traceparent": "garbage"})
    assert errors(name, {k: v for k, v in traced.items() if k != "ce_subject"})


def test_dead_letter_headers_as_the_connector_writes_them_validate() -> None:
    name = "dead-letter-headers.v1.schema.json"
    written = {
        "x-dlq-reason": "retries_exhausted: HTTP 503: down",
        "x-dlq-system": "CRM",
        "x-dlq-attempts": "4",
        "x-dlq-record-id": "17",
    }
    assert errors(name, written) == []
    assert errors(name, {**written, "x-dlq-reason": "because"})
    assert errors(name, {**written, "x-dlq-system": "ERP"})
    assert errors(name, {**written, "x-dlq-attempts": "four"})


def test_the_connector_sends_the_published_request_body_and_headers() -> None:
    from services.sync_connector.signing import sign_body
    from services.sync_connector.sinks import EXTERNAL_SYSTEMS, encode_payload

    event_id = str(uuid.uuid4())
    body = encode_payload(event_id, an_event())
    assert errors("external-sync-request.v1.schema.json", json.loads(body)) == []
    strict = msgspec.defstruct("Strict", [], bases=(ExternalSyncRequest,), forbid_unknown_fields=True)
    request = msgspec.json.decode(body, type=strict)  # every field sent is a published one
    assert isinstance(request, ExternalSyncRequest)
    assert (request.event_id, request.customer_name, request.profile_version) == (event_id, "李四", 2)
    # The connector takes paths and headers from the contract; these are the published values (DESIGN.md).
    assert (
        {system.code: system.path for system in EXTERNAL_SYSTEMS}
        == SYSTEM_PATHS
        == {
            "CRM": "/api/customer/update",
            "CMS": "/api/profile/sync",
            "CSS": "/api/customer/profile",
        }
    )
    assert SIGNATURE_HEADER == "X-Signature"
    assert IDEMPOTENCY_KEY_HEADER == "Idempotency-Key"

    signature = sign_body("s3cret", body)
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()  # as documented
    assert signature == expected
    assert jsonschema.Draft202012Validator({"pattern": SIGNATURE_PATTERN}).is_valid(signature)


@pytest.mark.parametrize(
    ("current_version", "outcome"),
    [(2, "already_applied"), (3, "superseded"), (1, "rejected")],
)
def test_409_answers_mean_what_the_contract_says(current_version: int, outcome: str) -> None:
    from services.sync_connector.outcome import classify_response

    body = msgspec.json.encode({"currentVersion": current_version})
    assert errors("external-version-conflict.v1.schema.json", json.loads(body)) == []
    assert classify_response(409, body, event_version=2).outcome.value == outcome

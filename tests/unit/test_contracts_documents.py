"""The AsyncAPI and OpenAPI documents agree with the code and with the committed schemas."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from contracts import generate
from contracts.cloudevents import CloudEventAttributes, kafka_headers
from contracts.events import EVENT_SOURCE, NAME_CHANGED_TYPE
from contracts.external_systems import SYSTEM_PATHS, openapi_document
from contracts.topics import CUSTOMER_PROFILE_TOPIC, DEAD_LETTER_TOPICS, dead_letter_topic

CONTRACTS = Path(generate.__file__).parent
# The official AsyncAPI 3.0.0 JSON Schema (draft-07), vendored unchanged: tests/vendor/asyncapi/README.md.
ASYNCAPI_SCHEMA = Path(__file__).resolve().parents[1] / "vendor" / "asyncapi" / "3.0.0.json"
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


def asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((CONTRACTS / "asyncapi.yaml").read_text(encoding="utf-8"))
    return document


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    """A local ``#/a/b`` pointer, or a file relative to contracts/ (loaded as JSON)."""
    if ref.startswith("#/"):
        node: Any = document
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node
    return json.loads((CONTRACTS / ref).read_text(encoding="utf-8"))


def test_dead_letter_topics_are_named_per_system() -> None:
    assert DEAD_LETTER_TOPICS == (
        "customer-profile.v1.dlq.crm",
        "customer-profile.v1.dlq.cms",
        "customer-profile.v1.dlq.css",
    )
    assert dead_letter_topic("CRM", "other.v2") == "other.v2.dlq.crm"


def test_asyncapi_describes_the_event_topic_and_every_dead_letter_topic() -> None:
    document = asyncapi()
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {CUSTOMER_PROFILE_TOPIC, *DEAD_LETTER_TOPICS}
    for name, channel in document["channels"].items():
        assert channel["bindings"]["kafka"]["topic"] == channel["address"], name
    sent = {operation["channel"]["$ref"] for operation in document["operations"].values()}
    assert sent == {f"#/channels/{name}" for name in document["channels"]}
    for operation in document["operations"].values():
        assert operation["action"] == "send"


def test_asyncapi_is_valid_against_the_official_asyncapi_3_schema() -> None:
    schema = json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(asyncapi())
    ]
    assert errors == []
    wrong = asyncapi()
    next(iter(wrong["operations"].values()))["action"] = "publish"  # AsyncAPI 2's word: 3.0 knows send and receive
    assert not validator.is_valid(wrong), "the schema reaches into operations"


def test_every_reference_resolves_and_file_references_point_at_committed_schemas() -> None:
    document = asyncapi()
    found = list(refs(document))
    assert found
    for ref in found:
        assert resolve(document, ref) is not None, ref
    files = {ref.removeprefix("./") for ref in found if not ref.startswith("#")}
    assert files == {
        "schemas/customer-name-changed.v1.schema.json",
        "schemas/customer-profile-event-headers.v1.schema.json",
        "schemas/dead-letter-headers.v1.schema.json",
    }


def test_the_message_is_the_event_type_with_its_key_and_correlation_id() -> None:
    message = asyncapi()["components"]["messages"]["CustomerNameChanged"]
    assert message["name"] == NAME_CHANGED_TYPE
    assert message["contentType"] == "application/json"
    assert message["correlationId"]["location"] == "$message.header#/ce_id"
    assert message["bindings"]["kafka"]["key"]["type"] == "string"


def test_the_documented_example_validates_against_the_published_schemas() -> None:
    document = asyncapi()
    message = document["components"]["messages"]["CustomerNameChanged"]
    headers_schema = resolve(document, message["headers"]["$ref"])
    payload_schema = resolve(document, message["payload"]["$ref"])
    for example in message["examples"]:
        jsonschema.validate(example["headers"], headers_schema, format_checker=FORMATS)
        jsonschema.validate(example["payload"], payload_schema, format_checker=FORMATS)
        assert example["headers"]["ce_subject"] == example["payload"]["customerId"]
    written = kafka_headers(
        CloudEventAttributes(
            id=str(uuid.uuid4()), source=EVENT_SOURCE, type=NAME_CHANGED_TYPE, time=datetime.now(UTC), subject="C"
        ),
        {"traceparent": message["examples"][0]["headers"]["traceparent"]},
    )
    assert set(message["examples"][0]["headers"]) == set(written), "the example shows every header the relay writes"


def test_a_dead_letter_carries_the_event_headers_and_the_dead_letter_headers() -> None:
    document = asyncapi()
    message = document["components"]["messages"]["DeadLetter"]
    combined = {"allOf": [resolve(document, part["$ref"]) for part in message["headers"]["allOf"]]}
    event_headers = document["components"]["messages"]["CustomerNameChanged"]["examples"][0]["headers"]
    dead_letter = {
        **event_headers,
        "x-dlq-reason": "rejected: HTTP 422",
        "x-dlq-system": "CSS",
        "x-dlq-attempts": "1",
        "x-dlq-record-id": "9",
    }
    jsonschema.validate(dead_letter, combined, format_checker=FORMATS)
    assert not jsonschema.Draft202012Validator(combined).is_valid(event_headers), "x-dlq-* headers are required"
    assert message["payload"] == document["components"]["messages"]["CustomerNameChanged"]["payload"]


def test_openapi_describes_each_system_path_with_the_published_schemas() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == set(SYSTEM_PATHS.values())
    for ref in refs(document):
        assert resolve(document, ref) is not None, ref
    parameters = document["components"]["parameters"]
    assert {p["name"] for p in parameters.values()} == {"Idempotency-Key", "X-Signature", "traceparent"}
    for path in SYSTEM_PATHS.values():
        responses = document["paths"][path]["post"]["responses"]
        assert set(responses) == {"2XX", "409", "4XX", "5XX"}

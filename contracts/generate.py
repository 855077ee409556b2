"""Generate the published JSON Schemas from the contract types.

python -m contracts.generate           # write contracts/schemas/*.json
python -m contracts.generate --check   # exit 1 if the committed files differ (CI, tests)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from contracts.cloudevents import EventHeaders
from contracts.dead_letters import DeadLetterHeaders
from contracts.events import CustomerNameChanged
from contracts.external_systems import ExternalSyncRequest, VersionConflict, openapi_document

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE_URI = "https://customer-profile.example/schemas/"
SCHEMAS_DIR = Path(__file__).parent / "schemas"
OPENAPI_FILE = Path(__file__).parent / "external-systems.openapi.json"

# File name -> (type, what it describes).
SCHEMA_TYPES: dict[str, tuple[type[msgspec.Struct], str]] = {
    "customer-name-changed.v1.schema.json": (
        CustomerNameChanged,
        (
            "Value of a customer.profile.name-changed.v1 message on customer-profile.v1 (JSON, UTF-8): the full "
            "new state after a name change, so the latest event (highest profileVersion) wins. "
            "Ignore fields you do not know."
        ),
    ),
    "customer-profile-event-headers.v1.schema.json": (
        EventHeaders,
        (
            "Kafka headers of every message on customer-profile.v1 (UTF-8 strings): CloudEvents 1.0 binary "
            "content mode plus W3C trace context. Ignore headers you do not know."
        ),
    ),
    "dead-letter-headers.v1.schema.json": (
        DeadLetterHeaders,
        (
            "Headers a dead letter on customer-profile.v1.dlq.<system> carries in addition to the original "
            "event's headers (UTF-8 strings)."
        ),
    ),
    "external-sync-request.v1.schema.json": (
        ExternalSyncRequest,
        (
            "Body of the POST an external system (CRM, CMS, CSS) receives for one name change. "
            "Ignore fields you do not know."
        ),
    ),
    "external-version-conflict.v1.schema.json": (
        VersionConflict,
        "Body of an external system's 409 answer: the profile version it already holds for the customer.",
    ),
}


def json_schema(struct: type[msgspec.Struct], file_name: str, description: str) -> dict[str, Any]:
    """A standalone JSON Schema (2020-12) document for one type."""
    generated = msgspec.json.schema(struct)
    definitions: dict[str, Any] = generated["$defs"]
    root = definitions.pop(generated["$ref"].rsplit("/", 1)[-1])
    document: dict[str, Any] = {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_BASE_URI + file_name}
    document.update(root)
    document["description"] = description  # the type's docstring speaks to us, this to consumers
    if definitions:
        document["$defs"] = definitions
    return document


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def rendered_files() -> dict[Path, str]:
    """Every generated file and its exact content."""
    files = {
        SCHEMAS_DIR / name: _dump(json_schema(struct, name, description))
        for name, (struct, description) in SCHEMA_TYPES.items()
    }
    files[OPENAPI_FILE] = _dump(openapi_document())
    return files


def drifted_files(files: dict[Path, str]) -> list[Path]:
    """Files whose committed content differs from ``files`` (missing ones included)."""
    return [path for path, text in files.items() if not path.is_file() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed files are not up to date")
    args = parser.parse_args(argv)
    files = rendered_files()
    drifted = drifted_files(files)
    if args.check:
        for path in drifted:
            print(f"out of date: {path} (run: python -m contracts.generate)", file=sys.stderr)
        return 1 if drifted else 0
    SCHEMAS_DIR.mkdir(exist_ok=True)
    for path in drifted:
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Migrations are frozen: none imports code that can change later (``libs``, ``services``), and the sealing
scheme profile_0004 applied is pinned by vectors made with the service's code of that time.

Alembic loads a version file by path, so the file's imports are read here from its syntax tree (the
import-linter contract sees the same through the packages' ``__init__.py``).
"""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

from migrations.profile.sealing_v1 import ContactSealer, SealingError
from tests.python_source import parse_source

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
FORBIDDEN = ("libs", "services")


def imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(parse_source(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            modules.add(node.module)
    return modules


def _forbidden(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)


@pytest.mark.parametrize("path", sorted(MIGRATIONS.rglob("*.py")), ids=lambda p: str(p.relative_to(MIGRATIONS)))
def test_no_migration_module_imports_libs_or_services(path: Path) -> None:
    assert _forbidden(imported_modules(path.read_text(encoding="utf-8"))) == []


def test_the_check_sees_every_kind_of_import() -> None:
    source = "import libs.kit\nfrom services.profile import x\ndef f():\n    from libs.kit.db import y\nimport alembic"
    assert _forbidden(imported_modules(source)) == ["libs.kit", "libs.kit.db", "services.profile"]


def test_every_version_file_is_seen() -> None:
    versions = [p for area in ("profile", "sync") for p in (MIGRATIONS / area / "versions").glob("0*.py")]
    assert len(versions) >= 10


# Made with services.profile.shared.storage.contact_crypto and libs.kit.crypto as of profile_0004.
_SETTINGS = types.SimpleNamespace(
    keys={"k1": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"},
    active_key_id="k1",
    hash_key="ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8",
)
_CONTACT = {"contact_phone": "+86 138-0013 8000", "contact_email": "a@example.com", "contact_address": None}
_PHONE_HASH = "8a329c6f70847aa3429c06c55a371a69fcb8c4ebe1836e39931a1d8842272367"
_DIGEST = "0ead7d253ab1e9ffacbc29d45103efb8fbe77534f94295f1ca9ac62a6753d0fb"
_SEALED_EMAIL = "01026b31cfd5e116a795fdc9871b2fcb713907dd6e0361944316f0d49ad810af20e614ff53affb755a0d581a6d"
_SEALED_RESPONSE = (
    "01026b319bf3888cdf4cf07ffce27951bc98146542e3a2e8d7865deeb9d186414e81b52b31e47e580f1f6aed505682967b755105b77c"
)


def test_the_frozen_sealing_matches_what_profile_0004_wrote() -> None:
    sealer = ContactSealer.from_settings(_SETTINGS)
    sealed = sealer.seal("C1", _CONTACT)
    assert (sealed["contact_key_id"], sealed["contact_phone_hash"].hex(), sealed["contact_digest"].hex()) == (
        "k1",
        _PHONE_HASH,
        _DIGEST,
    )
    assert sealer.open({"customer_id": "C1", **sealed}) == _CONTACT
    stored = {"customer_id": "C1", **sealed, "contact_email_encrypted": bytes.fromhex(_SEALED_EMAIL)}
    assert sealer.open(stored)["contact_email"] == "a@example.com"
    response = sealer.open_response("POST /v1/customers", "k", bytes.fromhex(_SEALED_RESPONSE))
    assert response == b'{"contactPhone":"138"}'
    with pytest.raises(SealingError, match="failed authentication"):
        sealer.open({**stored, "customer_id": "C2"})

"""Every PROFILE_, CONNECTOR_ and STUBS_ variable that compose, its .env example and the Kubernetes
manifests name is one a setting reads: a misspelt one would only be a start-up warning in production."""

from __future__ import annotations

import re
from pathlib import Path

from services import settings_reference
from services.sync_connector.settings import ADMIN_TOKEN_ENV

ROOT = Path(__file__).resolve().parents[2]
_NAME = re.compile(r"(?<![A-Za-z0-9_])((?:PROFILE|CONNECTOR|STUBS)_[A-Z0-9_]*[A-Z0-9])\b")


def known_variables() -> set[str]:
    """The variables of docs/settings.md, and the admin CLI's token."""
    sections = [section for service in settings_reference.services() for section in service.sections]
    return {ADMIN_TOKEN_ENV} | {name for section in sections for name in section.variables()}


def deployment_files() -> list[Path]:
    files = [ROOT / "docker-compose.yml", ROOT / "infra" / "compose.env.example"]
    return files + sorted((ROOT / "infra" / "k8s").rglob("*.yaml"))


def test_deployments_name_only_variables_that_settings_read() -> None:
    known = known_variables()
    unknown = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in deployment_files()
        for name in _NAME.findall(path.read_text(encoding="utf-8"))
        if name not in known
    }
    assert unknown == set()


def test_the_check_sees_the_deployments_variables() -> None:
    names = {name for path in deployment_files() for name in _NAME.findall(path.read_text(encoding="utf-8"))}
    assert {"PROFILE_DB_URL", "CONNECTOR_DB_URL", "PROFILE_AUTH_SIGNING_KEY"} <= names

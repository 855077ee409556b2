"""Run the Alembic migrations of one schema area programmatically."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config

Area = Literal["profile", "sync"]
AREAS: tuple[Area, ...] = ("profile", "sync")
_HERE = Path(__file__).parent


def alembic_config(area: Area, database_url: str, attributes: Mapping[str, object] | None = None) -> Config:
    """``attributes`` reach the migrations, e.g. ``profile_crypto`` (CryptoSettings) to seal existing rows."""
    config = Config()
    config.attributes.update(attributes or {})
    config.set_main_option("script_location", str(_HERE / area))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(_HERE / area / "versions"))
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = area
    return config


def upgrade(
    database_url: str, area: Area, revision: str = "head", attributes: Mapping[str, object] | None = None
) -> None:
    command.upgrade(alembic_config(area, database_url, attributes), revision)


def downgrade(
    database_url: str, area: Area, revision: str = "base", attributes: Mapping[str, object] | None = None
) -> None:
    command.downgrade(alembic_config(area, database_url, attributes), revision)


def upgrade_all(database_url: str, attributes: Mapping[str, object] | None = None) -> None:
    for area in AREAS:
        upgrade(database_url, area, attributes=attributes)

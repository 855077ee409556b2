"""Run the Alembic migrations of one schema area programmatically."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config

Area = Literal["profile", "sync"]
AREAS: tuple[Area, ...] = ("profile", "sync")
_HERE = Path(__file__).parent


def alembic_config(area: Area, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE / area))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(_HERE / area / "versions"))
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = area
    return config


def upgrade(database_url: str, area: Area, revision: str = "head") -> None:
    command.upgrade(alembic_config(area, database_url), revision)


def downgrade(database_url: str, area: Area, revision: str = "base") -> None:
    command.downgrade(alembic_config(area, database_url), revision)


def upgrade_all(database_url: str) -> None:
    for area in AREAS:
        upgrade(database_url, area)

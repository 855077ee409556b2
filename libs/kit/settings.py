"""Settings read from the environment once, at start-up, and passed down.

A service reads its settings through a ``SettingsReader``: each struct from the variables under its
own prefix (``PROFILE_DB_``...). The reader remembers every section it loaded, so the variables with
the service's prefix that no setting reads (a misspelt name) are named in a warning at start-up,
and the settings reference (docs/settings.md) is generated from the same sections.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import msgspec

SettingsT = TypeVar("SettingsT", bound=msgspec.Struct)
BuiltT = TypeVar("BuiltT")

_log = logging.getLogger(__name__)  # stdlib: before logging is configured it still goes to stderr


class SettingsError(ValueError):
    """The environment holds a value that does not fit a setting."""


def load_settings(cls: type[SettingsT], environ: Mapping[str, str], prefix: str) -> SettingsT:
    """Build ``cls`` from ``PREFIX_FIELD`` variables; missing ones keep their defaults.

    Strings are converted to the field types (ints, floats, bools, lists and objects from JSON).
    """
    values: dict[str, object] = {}
    for name in cls.__struct_fields__:
        key = f"{prefix}{name.upper()}"
        if key not in environ:
            continue
        raw = environ[key]
        values[name] = _decode_json(raw) if raw.startswith(("[", "{")) else raw
    try:
        return msgspec.convert(values, cls, strict=False)
    except msgspec.ValidationError as exc:
        msg = f"invalid setting under prefix {prefix!r}: {exc}"
        raise SettingsError(msg) from exc


def require_at_least_one(settings: msgspec.Struct, *names: str, label: str = "") -> None:
    """``ValueError`` naming ``names`` together (``a, b and c``) if any of them is below 1; None is no value.

    For a ``__post_init__``; ``label`` starts the message (``"admin_notify "``).
    """
    values = [getattr(settings, name) for name in names]
    if any(value is not None and value < 1 for value in values):
        listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        msg = f"{label}{listed} must be at least 1"
        raise ValueError(msg)


def _decode_json(raw: str) -> object:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw


class SettingsSection(msgspec.Struct, frozen=True):
    """One struct, read from the variables under ``prefix``; ``defaults`` replace some of its defaults."""

    prefix: str
    struct: type[msgspec.Struct]
    defaults: Mapping[str, str] = msgspec.field(default_factory=dict)

    def variables(self) -> dict[str, msgspec.structs.FieldInfo]:
        """Variable name -> field; a field that is itself a struct is a section of its own, not a variable."""
        return {
            f"{self.prefix}{field.name.upper()}": field
            for field in msgspec.structs.fields(self.struct)
            if not (isinstance(field.type, type) and issubclass(field.type, msgspec.Struct))
        }


class SettingsReader:
    """A service's environment as its settings read it, section by section."""

    def __init__(self, environ: Mapping[str, str], prefix: str) -> None:
        self.environ = environ
        self.prefix = prefix
        self.sections: list[SettingsSection] = []

    def load(self, cls: type[SettingsT], section: str = "", defaults: Mapping[str, str] | None = None) -> SettingsT:
        """``cls`` from the variables ``<prefix><section><FIELD>``; ``defaults`` by variable name."""
        read = SettingsSection(f"{self.prefix}{section}", cls, dict(defaults or {}))
        self.sections.append(read)
        return load_settings(cls, {**read.defaults, **self.environ}, read.prefix)

    def unknown_variables(self, also_read: Collection[str] = ()) -> list[str]:
        """Variables with the service's prefix that no setting (nor ``also_read``) reads, sorted."""
        known = {name for section in self.sections for name in section.variables()} | set(also_read)
        return sorted(name for name in self.environ if name.startswith(self.prefix) and name not in known)


def read_settings(
    build: Callable[[SettingsReader], BuiltT],
    environ: Mapping[str, str],
    prefix: str,
    also_read: Collection[str] = (),
) -> BuiltT:
    """The settings ``build`` reads from ``environ``; logs a warning naming each unknown ``prefix`` variable."""
    reader = SettingsReader(environ, prefix)
    settings = build(reader)
    for name in reader.unknown_variables(also_read):
        _log.warning("unknown setting variable %s: no setting reads it (misspelt? see docs/settings.md)", name)
    return settings


def settings_sections(build: Callable[[SettingsReader], Any], prefix: str) -> list[SettingsSection]:
    """The sections ``build`` reads, in order (for the settings reference)."""
    reader = SettingsReader({}, prefix)
    build(reader)
    return reader.sections

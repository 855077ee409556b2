"""Settings read from the environment once, at start-up, and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import msgspec

SettingsT = TypeVar("SettingsT", bound=msgspec.Struct)


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


def _decode_json(raw: str) -> object:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw

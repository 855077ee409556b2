"""A lookup that must find something: what it found, or the caller's not-found error."""

from __future__ import annotations

from typing import TypeVar

from libs.kit.errors import AppError

T = TypeVar("T")


def found(value: T | None, missing: AppError) -> T:
    """``value``; ``missing`` raised when there is none."""
    if value is None:
        raise missing
    return value

"""docs/settings.md is generated from the settings structs and kept up to date."""

from __future__ import annotations

import msgspec

from libs.kit.settings import SettingsSection
from libs.kit.settings_reference import render_section
from services import settings_reference


def test_the_committed_reference_is_up_to_date() -> None:
    assert settings_reference.main(["--check"]) == 0, "run: python -m services.settings_reference"


class _Nested(msgspec.Struct, frozen=True):
    size: int = 1


class _Example(msgspec.Struct, frozen=True):
    """Settings of an example."""

    # How long to wait,
    # in seconds.
    wait_s: float = 1.5

    hosts: tuple[str, ...] = ("a", "b")
    token: str | None = None  # unset: no token
    name: str = "x"
    """A docstring below the field."""
    nested: _Nested = msgspec.field(default_factory=_Nested)
    # The CA to trust, and the client's certificate.
    ca_file: str = ""
    cert_file: str = ""


def test_a_section_lists_each_variable_with_type_default_and_description() -> None:
    text = render_section(SettingsSection("EX_", _Example, {"EX_NAME": "y"}))
    lines = text.splitlines()
    assert lines[0] == "### `EX_*`"  # a private struct's name says nothing to an operator
    assert "Settings of an example." in lines
    assert "| `EX_WAIT_S` | `float` | `1.5` | How long to wait, in seconds. |" in lines
    assert '| `EX_HOSTS` | `tuple[str, ...]` | `["a","b"]` |  |' in lines
    assert "| `EX_TOKEN` | `str \\| None` | unset | unset: no token |" in lines
    assert "| `EX_NAME` | `str` | `y` | A docstring below the field. |" in lines
    assert not any("EX_NESTED" in line for line in lines), "a nested struct is a section of its own"
    assert "| `EX_CERT_FILE` | `str` | empty | see `EX_CA_FILE` |" in lines, "a comment speaks for its group"

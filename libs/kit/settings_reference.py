"""The settings reference: every variable a service reads, with its type, default and description.

Rendered as Markdown from the sections a service's settings builder reads (``settings_sections``).
A field's description is its comment (the comment lines right above it, or at the end of its line) or
its docstring (a string right below it); a struct's docstring introduces its section.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from functools import cache

import msgspec

from libs.kit.settings import SettingsSection


class ServiceSettings(msgspec.Struct, frozen=True):
    """One service's part of the reference: a title, a sentence on who reads it, its sections."""

    title: str
    about: str
    sections: list[SettingsSection]


@cache
def _definitions(struct: type[msgspec.Struct]) -> list[tuple[list[str], ast.ClassDef]]:
    """The source lines and class definition of the struct and its struct bases, bases first."""
    found: list[tuple[list[str], ast.ClassDef]] = []
    for cls in reversed(struct.__mro__):
        if cls is msgspec.Struct or not issubclass(cls, msgspec.Struct):
            continue
        lines = textwrap.dedent(inspect.getsource(cls)).splitlines()
        (definition,) = ast.parse("\n".join(lines)).body
        assert isinstance(definition, ast.ClassDef)
        found.append((lines, definition))
    return found


def field_annotations(struct: type[msgspec.Struct]) -> dict[str, str]:
    """Field name -> its annotation as written (``float | None``)."""
    return {
        node.target.id: ast.unparse(node.annotation)
        for _, definition in _definitions(struct)
        for node in definition.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


def field_descriptions(struct: type[msgspec.Struct]) -> dict[str, str]:
    """Field name -> its comment or docstring in the struct's source."""
    found: dict[str, str] = {}
    for lines, definition in _definitions(struct):
        body = definition.body
        for index, node in enumerate(body):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                after = body[index + 1] if index + 1 < len(body) else None
                found[node.target.id] = _description(lines, node.lineno - 1, after)
    return found


def comment_groups(struct: type[msgspec.Struct]) -> dict[str, str]:
    """Undescribed field -> the described field whose comment covers it.

    A comment above a field speaks for the fields right below it too (no blank line, comment or
    nested section between), as in ``# TLS: the CA, a client certificate...`` above the TLS fields.
    """
    descriptions = field_descriptions(struct)
    sections = {
        f.name
        for f in msgspec.structs.fields(struct)
        if isinstance(f.type, type) and issubclass(f.type, msgspec.Struct)
    }
    leaders: dict[str, str] = {}
    for _, definition in _definitions(struct):
        leader: str | None = None
        previous_end = -1
        for node in definition.body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                leader = None
                continue
            name = node.target.id
            if descriptions.get(name) or name in sections:
                leader = name if descriptions.get(name) and name not in sections else None
            elif leader is not None and node.lineno == previous_end + 1:
                leaders[name] = leader
            else:
                leader = None
            previous_end = node.end_lineno or node.lineno
    return leaders


def _description(lines: list[str], row: int, after: ast.stmt | None) -> str:
    """The comment lines above line ``row``, its own end-of-line comment and a docstring right below."""
    above: list[str] = []
    line = row - 1
    while line >= 0 and lines[line].strip().startswith("#"):
        above.insert(0, lines[line].strip().lstrip("#").strip())
        line -= 1
    _, hash_sign, inline = lines[row].partition("  # ")
    docstring = ""
    if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
        docstring = inspect.cleandoc(after.value.value)
    return " ".join(" ".join([*above, inline if hash_sign else "", docstring]).split())


def _described(name: str, descriptions: dict[str, str], leaders: dict[str, str], prefix: str) -> str:
    if descriptions.get(name):
        return descriptions[name]
    return f"see `{prefix}{leaders[name].upper()}`" if name in leaders else ""


def _default(field: msgspec.structs.FieldInfo, variable: str, section: SettingsSection) -> str:
    if variable in section.defaults:
        return _code(section.defaults[variable])
    if field.default is not msgspec.NODEFAULT:
        return _value(field.default)
    if field.default_factory is not msgspec.NODEFAULT:
        return _value(field.default_factory())
    return "required"


def _value(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, str):
        return _code(value) if value else "empty"
    if isinstance(value, bool):
        return _code(str(value).lower())
    if isinstance(value, int | float):
        return _code(repr(value))
    return _code(msgspec.json.encode(value).decode())


def _code(text: str) -> str:
    return f"`{text}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_section(section: SettingsSection) -> str:
    descriptions = field_descriptions(section.struct)
    annotations = field_annotations(section.struct)
    intro = inspect.cleandoc(section.struct.__doc__ or "")
    if intro.startswith(f"{section.struct.__name__}("):  # msgspec's generated signature, not a docstring
        intro = ""
    leaders = comment_groups(section.struct)
    rows = [
        f"| `{variable}` | {_cell(_code(annotations[field.name]))} | {_cell(_default(field, variable, section))} "
        f"| {_cell(_described(field.name, descriptions, leaders, section.prefix))} |"
        for variable, field in section.variables().items()
    ]
    name = section.struct.__name__
    heading = f"### `{section.prefix}*`" + ("" if name.startswith("_") else f" ({name})")  # a private struct: no name
    table = ["| variable | type | default | description |", "|---|---|---|---|", *rows]
    return "\n".join([heading, "", *([" ".join(intro.split()), ""] if intro else []), *table, ""])


def render_reference(header: str, services: list[ServiceSettings]) -> str:
    parts = [header.rstrip("\n"), ""]
    for service in services:
        parts += [f"## {service.title}", "", service.about, ""]
        parts += [render_section(section) for section in service.sections if section.variables()]
    return "\n".join(parts).rstrip("\n") + "\n"

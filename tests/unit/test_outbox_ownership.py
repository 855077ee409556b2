"""Only libs/outbox writes or reads the outbox table (invariant 10): no SQL text naming it and no SQLAlchemy
statement on it anywhere else in the product code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.python_source import parse_file, parse_source

ROOT = Path(__file__).resolve().parents[2]
_SQL_ON_OUTBOX = re.compile(r"\b(INTO|UPDATE|FROM|JOIN)\s+(\"?\w+\"?\.)?\"?outbox\b", re.IGNORECASE)
_STATEMENTS = {"insert", "update", "delete", "select"}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _on_the_outbox(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _SQL_ON_OUTBOX.search(node.value) is not None
    return (
        isinstance(node, ast.Call)
        and _name(node.func) in _STATEMENTS
        and any(_name(arg) == "outbox" for arg in node.args)
    )


def _statements_on_the_outbox(tree: ast.AST) -> list[int]:
    return sorted(getattr(node, "lineno", 0) for node in ast.walk(tree) if _on_the_outbox(node))


def test_no_statement_on_the_outbox_table_outside_libs_outbox() -> None:
    offenders = []
    for folder in ("services", "libs", "contracts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.is_relative_to(ROOT / "libs" / "outbox"):
                continue
            tree = parse_file(path)
            offenders += [f"{path.relative_to(ROOT)}:{line}" for line in _statements_on_the_outbox(tree)]
    assert offenders == []


def test_the_check_sees_sql_text_and_statements() -> None:
    tree = parse_source(
        'q = "INSERT INTO profile.outbox (id) VALUES ($1)"\nr = select(outbox)\ns = "FROM \\"p\\".outbox"'
    )
    assert _statements_on_the_outbox(tree) == [1, 2, 3]

"""``ast.parse`` with the garbage collector paused, for every parse a test process makes.

CPython 3.11 before 3.11.9 (gh-106905) can fail a parse with "SystemError: AST constructor
recursion depth mismatch" when a collection runs other code in the middle of building the tree.
It hit the architecture checks below and Hypothesis' descriptions of schemathesis' filters;
``pause_gc_in_every_parse`` guards every caller of ``ast.parse`` (pytest's assertion rewriting,
Hypothesis, our checks) in the test session and the schemathesis launcher.
"""

from __future__ import annotations

import ast
import gc
from pathlib import Path
from typing import Any

_parse = ast.parse


def _parse_with_gc_paused(*args: Any, **kwargs: Any) -> Any:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse(*args, **kwargs)
    finally:
        if enabled:
            gc.enable()


def pause_gc_in_every_parse() -> None:
    ast.parse = _parse_with_gc_paused


def parse_source(source: str) -> ast.Module:
    tree: ast.Module = _parse_with_gc_paused(source)
    return tree


def parse_file(path: Path) -> ast.Module:
    return parse_source(path.read_text(encoding="utf-8"))

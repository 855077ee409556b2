"""Parse the project's own Python files for the architecture tests."""

from __future__ import annotations

import ast
import gc
from pathlib import Path


def parse_source(source: str) -> ast.Module:
    """``ast.parse`` with the garbage collector paused.

    CPython 3.11 before 3.11.9 (gh-106905) can fail a parse with "SystemError: AST constructor
    recursion depth mismatch" when a collection runs finalizers of other tests' objects in the
    middle of building the tree; this checks source text, not the interpreter.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source)
    finally:
        if enabled:
            gc.enable()


def parse_file(path: Path) -> ast.Module:
    return parse_source(path.read_text(encoding="utf-8"))

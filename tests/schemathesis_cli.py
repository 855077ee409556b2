"""``python -m tests.schemathesis_cli run ...``: schemathesis' command line, with ``ast.parse`` under a paused GC.

Hypothesis parses source to describe the filters schemathesis builds; CPython 3.11 before 3.11.9
(gh-106905) can fail such a parse with "SystemError: AST constructor recursion depth mismatch"
when a collection runs in the middle of it (see ``tests/python_source.py``).
"""

from __future__ import annotations

import ast
import gc
from typing import Any

import schemathesis.cli

_parse = ast.parse


def _parse_with_gc_paused(*args: Any, **kwargs: Any) -> ast.AST:
    enabled = gc.isenabled()
    gc.disable()
    try:
        parsed: ast.AST = _parse(*args, **kwargs)
        return parsed
    finally:
        if enabled:
            gc.enable()


if __name__ == "__main__":
    ast.parse = _parse_with_gc_paused  # type: ignore[assignment]
    schemathesis.cli.schemathesis()

"""``python -m tests.schemathesis_cli run ...``: schemathesis' command line, every ``ast.parse``
under a paused GC (Hypothesis parses source to describe schemathesis' filters: see
``tests/python_source.py``)."""

from __future__ import annotations

import schemathesis.cli

from tests.python_source import pause_gc_in_every_parse

if __name__ == "__main__":
    pause_gc_in_every_parse()
    schemathesis.cli.schemathesis()

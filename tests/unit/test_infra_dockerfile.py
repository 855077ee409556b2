"""infra/Dockerfile, read as text (no Docker engine here): locked, complete, small, non-root."""

from __future__ import annotations

import ast
import importlib
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "Dockerfile"
BUILD_TOOLS = ("gcc", "build-essential", "apt-get", "apk add", "make ")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            base, _, name = args.partition(" AS ")
            stages.append(Stage(base=base.strip(), name=name.strip()))
        elif stages:
            stages[-1].instructions.append((keyword, args))
        elif keyword == "ARG":
            key, _, default = args.partition("=")
            global_args[key] = default
    return global_args, stages


def expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value)


def wheel_packages() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages: list[str] = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return packages


def uv_sync_commands(stage: Stage) -> list[list[str]]:
    commands = []
    for run in stage.all("RUN"):
        if "uv sync" in run:
            words = shlex.split(run)
            commands.append(words[words.index("uv") :])
    return commands


def test_multi_stage_on_python_311_slim() -> None:
    args, stages = parse_dockerfile()
    assert len(stages) >= 2
    for stage in stages:
        assert expand(stage.base, args) == "python:3.11-slim"
    assert stages[0].name == "build"


def test_dependencies_come_from_the_lock_with_the_makefile_uv() -> None:
    _, stages = parse_dockerfile()
    build = stages[0]
    makefile_uv = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert makefile_uv is not None
    assert f"UV_VERSION={makefile_uv.group(1)}" in build.all("ARG")
    assert any('"uv==${UV_VERSION}"' in run for run in build.all("RUN"))
    assert any(copy.split()[:2] == ["pyproject.toml", "uv.lock"] for copy in build.all("COPY"))
    syncs = uv_sync_commands(build)
    assert syncs, "no uv sync in the build stage"
    for words in syncs:
        assert "--frozen" in words, "the image must install exactly uv.lock"
        assert "--no-dev" in words
    assert "--no-editable" in syncs[-1], "the runtime stage carries the installed wheel, not the sources"


def test_every_package_of_the_wheel_is_copied_in() -> None:
    _, stages = parse_dockerfile()
    copied = {copy.split()[0] for copy in stages[0].all("COPY")}
    assert set(wheel_packages()) <= copied


def test_the_image_installs_the_runtime_group_as_locked_with_nothing_left_out() -> None:
    # What the runtime group holds, and that the services' imports resolve in it: test_runtime_dependencies.
    _, stages = parse_dockerfile()
    for words in uv_sync_commands(stages[0]):
        assert "--no-install-package" not in words, "the runtime group holds only what the image runs"
        assert not any(word.startswith(("--group", "--all-groups", "--only-dev")) for word in words)


def test_the_runtime_stage_is_small_non_root_and_health_checked() -> None:
    _, stages = parse_dockerfile()
    runtime = stages[-1]
    for copy in runtime.all("COPY"):
        assert copy.startswith("--from=build "), f"runtime copies from the build context: {copy}"
    for run in runtime.all("RUN"):
        assert not any(tool in run for tool in BUILD_TOOLS), run
    (user,) = runtime.all("USER")
    uid = user.split(":")[0]
    assert uid.isdigit(), "numeric, so Kubernetes' runAsNonRoot can check it"
    assert int(uid) != 0
    (healthcheck,) = runtime.all("HEALTHCHECK")
    assert "CMD" in healthcheck
    assert "HEALTH_URL" in healthcheck


def test_the_default_command_runs_an_existing_cli_command() -> None:
    _, stages = parse_dockerfile()
    (cmd,) = stages[-1].all("CMD")
    python, flag, module, command = ast.literal_eval(cmd)
    assert (python, flag) == ("python", "-m")
    cli = importlib.import_module(f"{module}.__main__").cli
    assert isinstance(cli, click.Group)
    assert command in cli.commands


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_secret() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            if fnmatch(path, pattern.lstrip("!").rstrip("/")):
                keep = negated
        return keep

    _, stages = parse_dockerfile()
    sources = [word for copy in stages[0].all("COPY") for word in copy.split()[:-1]]
    for source in sources:
        assert included(source), f".dockerignore leaves {source} out of the build context"
    for secret_or_noise in (".env", ".git", ".venv", "tests", ".data"):
        assert not included(secret_or_noise), f"{secret_or_noise} would be sent to the builder"

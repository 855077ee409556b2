"""What the alert rules and the Grafana dashboard query, and what the services expose.

Shared by the offline checks (tests/unit) and the end-to-end scrape (tests/e2e/test_metrics_exposed.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OBSERVABILITY = ROOT / "infra" / "observability"
ALERTS = OBSERVABILITY / "alerts"
RULE_FILES = tuple(sorted(ALERTS.glob("*.rules.yml")))
RULE_TESTS = tuple(sorted((ALERTS / "tests").glob("*.yml")))
DASHBOARDS = tuple(sorted((OBSERVABILITY / "grafana" / "dashboards").glob("*.json")))
# Series Prometheus makes itself, not a service.
PROMETHEUS_OWN = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"inf", "nan", "Inf", "NaN"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(\s*\()?")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and label names left out)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in _KEYWORDS:
            continue  # a function or aggregation, or an operator
        names.add(name)
    return names


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in document["groups"]:
            rules.extend(rule for rule in group["rules"] if "alert" in rule)
    return rules


def dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for path in DASHBOARDS:
        panels.extend(json.loads(path.read_text(encoding="utf-8"))["panels"])
    return panels


def queried_metrics() -> dict[str, set[str]]:
    """Metric names by where they are queried: ``rule <alert>`` and ``panel <title>``."""
    queried: dict[str, set[str]] = {}
    for rule in alert_rules():
        queried.setdefault(f"rule {rule['alert']}", set()).update(promql_metric_names(rule["expr"]))
    for panel in dashboard_panels():
        for target in panel["targets"]:
            queried.setdefault(f"panel {panel['title']}", set()).update(promql_metric_names(target["expr"]))
    return {where: names - PROMETHEUS_OWN for where, names in queried.items()}


def exposed_names(exposition: str) -> set[str]:
    """Names of a /metrics text: every family (``# TYPE``, samples or not yet) and every sample.

    A labelled counter has no sample before its first count, but its family is exposed, so a query
    of it is well-formed; a histogram family stands for its ``_bucket``, ``_sum`` and ``_count``.
    """
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(name)
            if kind.strip() == "histogram":
                names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


RUNBOOK = ROOT / "docs" / "runbook.md"


def runbook_anchors() -> set[str]:
    runbook = RUNBOOK.read_text(encoding="utf-8")
    return {github_anchor(line.lstrip("#")) for line in runbook.splitlines() if re.match(r"#{1,6} ", line)}

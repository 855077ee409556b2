"""The alert rules (infra/observability/alerts) and Alertmanager's config, checked by their own tools.

promtool and amtool come from Debian's prometheus and prometheus-alertmanager packages (`make
promtool`, part of `make test`, puts them in .tools/prometheus); without them these tests skip
and say so. Every alert names a runbook section that exists, and has a promtool unit test in which
it fires.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.observability_support import (
    ALERTS,
    OBSERVABILITY,
    ROOT,
    RULE_FILES,
    RULE_TESTS,
    RUNBOOK,
    alert_rules,
    runbook_anchors,
)

TOOLS = ROOT / ".tools" / "prometheus" / "usr" / "bin"
SEVERITIES = {"critical", "warning"}


def tool(name: str) -> str:
    found = shutil.which(name) or (str(TOOLS / name) if (TOOLS / name).is_file() else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs {name}: make promtool")
        pytest.skip(f"{name} is not installed: `make promtool` fetches it (Debian's prometheus packages)")
    return found


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


def test_promtool_checks_the_rules() -> None:
    assert RULE_FILES, "no rule files in infra/observability/alerts"
    result = run(tool("promtool"), "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    assert RULE_TESTS, "no promtool unit tests in infra/observability/alerts/tests"
    result = run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS), cwd=ALERTS / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_are_not_vacuous(tmp_path: Path) -> None:
    """A rule that never fires fails its unit test (promtool compares the alerts, not just the syntax)."""
    broken = tmp_path / "alerts"
    (broken / "tests").mkdir(parents=True)
    for path in RULE_FILES:
        text = path.read_text(encoding="utf-8").replace("expr: max(outbox_parked_rows) > 0", "expr: vector(0) > 1")
        (broken / path.name).write_text(text, encoding="utf-8")
    for path in RULE_TESTS:
        shutil.copy(path, broken / "tests" / path.name)
    result = run(tool("promtool"), "test", "rules", *(p.name for p in RULE_TESTS), cwd=broken / "tests")
    assert result.returncode != 0
    assert "OutboxRowsParked" in result.stdout + result.stderr


def test_prometheus_loads_the_rules_and_sends_alerts_to_alertmanager(tmp_path: Path) -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text(encoding="utf-8"))
    (pattern,) = config["rule_files"]
    # Compose mounts infra/observability/alerts at /etc/prometheus/alerts (test_infra_compose checks it).
    assert pattern.startswith("/etc/prometheus/alerts/")
    config["rule_files"] = [str(ALERTS / Path(pattern).name)]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run(tool("promtool"), "check", "config", str(local))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout + result.stderr
    (manager,) = config["alerting"]["alertmanagers"]
    assert manager["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_every_alert_names_its_runbook_section_and_a_severity() -> None:
    anchors = runbook_anchors()
    rules = alert_rules()
    assert rules
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        runbook = rule["annotations"]["runbook"]
        assert runbook == f"docs/runbook.md#{name.lower()}", (
            f"{name}: the runbook is its own section of docs/runbook.md"
        )
        assert runbook.split("#", 1)[1] in anchors, f"{name}: docs/runbook.md has no section {runbook}"
    text = RUNBOOK.read_text(encoding="utf-8")
    for name in {rule["alert"] for rule in rules}:
        assert f"\n### {name}\n" in text, f"{name}'s section is an alert section of the runbook"


def test_every_alert_fires_in_a_unit_test() -> None:
    fired: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            fired |= {t["alertname"] for t in case.get("alert_rule_test", []) if t.get("exp_alerts")}
    assert {rule["alert"] for rule in alert_rules()} <= fired


def test_the_issue_s_failures_each_have_an_alert() -> None:
    """Issue 18 item 2: the failures that need a person, by the metric each alert watches."""
    watched = {rule["alert"]: rule["expr"] for rule in alert_rules()}

    def alerting_on(pattern: str) -> set[str]:
        return {name for name, expr in watched.items() if re.search(pattern, expr)}

    assert alerting_on(r"\bsync_oldest_undelivered_age_seconds\b")  # oldest undelivered change per system
    assert alerting_on(r"\bsync_records_near_deadline\b")
    assert alerting_on(r"\bsync_dead_letters_total\b")  # dead letters
    assert alerting_on(r"\boutbox_parked_rows\b")  # parked outbox rows
    assert alerting_on(r"\bcircuit_breaker_state\b")  # breaker open
    assert alerting_on(r"\bconsumer_lag\b")  # consumer lag
    assert alerting_on(r"outbox_relay_broker_healthy == 0")  # a relay that does not publish
    assert alerting_on(r"\boutbox_oldest_pending_age_seconds\b") & alerting_on(r"\boutbox_relay_published_total\b")
    assert alerting_on(r"\bname_change_update_failed_total\b")  # update_failed rate
    assert alerting_on(r'notification_status_total\{status="failed"\}')  # notification failures
    assert alerting_on(r"\bup\b")  # readiness


def test_alertmanager_config_is_valid_and_routes_every_alert_to_the_admins_mail() -> None:
    config = OBSERVABILITY / "alertmanager.yml"
    amtool = tool("amtool")
    checked = run(amtool, "check-config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for rule in alert_rules():
        labels = [f"alertname={rule['alert']}", *(f"{k}={v}" for k, v in rule["labels"].items())]
        routed = run(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
        assert routed.returncode == 0, routed.stdout + routed.stderr
        expected = "admins-mail-critical" if rule["labels"]["severity"] == "critical" else "admins-mail"
        assert routed.stdout.split() == [expected], (rule["alert"], routed.stdout)
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    receivers = {receiver["name"]: receiver for receiver in document["receivers"]}
    for receiver in receivers.values():
        (mail,) = receiver["email_configs"]
        assert mail["to"] == "customer-profile-admins@customer-profile.example"
        assert mail["send_resolved"] is True
    # One outage, one mail: grouped by what the alert is about, not by instance.
    assert "instance" not in document["route"]["group_by"]
    assert {"alertname", "system_code"} <= set(document["route"]["group_by"])

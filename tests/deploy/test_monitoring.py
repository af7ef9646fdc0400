"""The shipped monitoring: alert rules checked and unit-tested by promtool, each alert's README runbook, the
ServiceMonitor + PrometheusRule component, the dashboard's layout. (Against the real operator and a real
Prometheus: tests/integration/test_e2e_monitoring.py.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.kustomize import REPO, Render, user_copy
from harness.prometheus import DASHBOARD, OPERATOR_JOB, alert_names, rule_groups, write_rules
from promtools import MissingPrometheusError, require

PROMTOOL_TESTS = Path(__file__).resolve().parent / "promtool" / "alerts_test.yaml"
RULES_NAME = "vmclock-rules.yaml"  # what alerts_test.yaml's rule_files names
QUESTIONS = [
    "Is everything in sync?",
    "Which policies are not?",
    "What changed?",
    "Is ZStack slow or failing?",
    "Is the operator keeping up?",
]


@pytest.fixture(scope="module")
def promtool() -> Path:
    try:
        return require().promtool
    except MissingPrometheusError as error:
        pytest.fail(str(error), pytrace=False)


def run_promtool(promtool: Path, *args: str, cwd: Path) -> str:
    done = subprocess.run([str(promtool), *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_shipped_rules_pass_promtool_check(promtool: Path, tmp_path: Path) -> None:
    write_rules(tmp_path / RULES_NAME)
    out = run_promtool(promtool, "check", "rules", RULES_NAME, cwd=tmp_path)
    assert f"SUCCESS: {len(alert_names())} rules found" in out


def test_every_alert_passes_its_promtool_unit_tests(promtool: Path, tmp_path: Path) -> None:
    write_rules(tmp_path / RULES_NAME)
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    out = run_promtool(promtool, "test", "rules", PROMTOOL_TESTS.name, cwd=tmp_path)
    assert "SUCCESS" in out


def test_every_alert_has_a_promtool_case_where_it_fires_and_one_where_it_stays_quiet() -> None:
    cases = [
        (check["alertname"], bool(check["exp_alerts"]))
        for test in yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
        for check in test["alert_rule_test"]
    ]
    assert {(name, fires) for name in alert_names() for fires in (True, False)} == set(cases)


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def readme_sections() -> dict[str, str]:
    """README sections by their GitHub anchor, each with its text up to the next heading."""
    parts = re.split(r"^#{2,6} (.+)$", (REPO / "README.md").read_text(), flags=re.MULTILINE)
    return {github_anchor(title): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_every_alert_links_a_readme_runbook_with_the_first_three_commands() -> None:
    sections = readme_sections()
    for group in rule_groups()["groups"]:
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook_url"].partition("README.md#")[2]
            assert anchor == rule["alert"].lower(), rule["alert"]
            assert anchor in sections, f"README has no section for {rule['alert']}"
            commands = re.findall(r"^\$ \S", sections[anchor], flags=re.MULTILINE)
            assert len(commands) >= 3, f"the runbook of {rule['alert']} lists {len(commands)} commands"


def test_monitoring_component_scrapes_the_metrics_service_and_ships_the_rules(
    render: Render, tmp_path: Path
) -> None:
    overlay = user_copy(
        tmp_path, "deploy/overlays/namespaced", namespace="team-x", components=("../../monitoring",)
    )
    objects = render(overlay)
    (service,) = [o for o in objects if o["kind"] == "Service"]
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"]
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    assert monitor["metadata"]["namespace"] == rule["metadata"]["namespace"] == "team-x"
    assert service["metadata"]["name"] == OPERATOR_JOB, "the absent() alert looks for the Service's job"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["metrics"]
    assert "metrics" in ports
    assert rule["spec"] == rule_groups()


def test_the_dashboard_has_one_row_per_question_and_every_panel_a_query() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert [p["title"] for p in panels if p["type"] == "row"] == QUESTIONS
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]

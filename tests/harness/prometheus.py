"""A real Prometheus server scraping the operator, with the shipped alert rules, for the monitoring e2e test.

The rules come from deploy/monitoring/prometheusrule.yaml (the PrometheusRule's ``spec`` is a plain rule
file). A test-only copy may shorten every ``for:``: the e2e scenario cannot wait 15 minutes for an alert,
and everything else about the rule (expression, labels, annotations) stays exactly as shipped. The dashboard's
queries are read from deploy/monitoring/dashboard.json with Grafana's variables replaced by what a user
with "All" selected would send.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .processes import ManagedProcess, free_port, spawn

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "dashboard.json"
OPERATOR_JOB = "vmclock-operator-metrics"  # the metrics Service's name: a ServiceMonitor's job label
START_TIMEOUT = 60.0
# What Grafana sends for its variables with "All" namespaces: $__rate_interval is at least 4 scrape intervals.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$namespace": ".*", "${namespace}": ".*"}


def rule_groups(*, hold: str | None = None) -> dict[str, Any]:
    """The shipped rule groups as a Prometheus rule file; ``hold`` replaces every alert's ``for:``."""
    spec: dict[str, Any] = yaml.safe_load(PROMETHEUS_RULE.read_text())["spec"]
    if hold is not None:
        for group in spec["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = hold
    return spec


def write_rules(path: Path, *, hold: str | None = None) -> Path:
    path.write_text(yaml.safe_dump(rule_groups(hold=hold), sort_keys=False))
    return path


def alert_names() -> list[str]:
    return [rule["alert"] for group in rule_groups()["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of every panel, Grafana's variables replaced."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = []
    for panel in panels:
        for target in panel.get("targets", ()):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return queries


class PrometheusError(RuntimeError):
    """Prometheus did not become ready, or its API answered with an error."""


@dataclass(kw_only=True)
class PrometheusProcess(ManagedProcess):
    """``prometheus`` scraping ``target`` (host:port) as job ``vmclock-operator-metrics`` every
    ``scrape_interval`` (which is also the scrape timeout) and evaluating ``rules`` every ``rule_interval``;
    its data lives in ``data_dir`` for this run only."""

    binary: Path
    target: str
    rules: Path
    data_dir: Path
    scrape_interval: str = "5s"
    rule_interval: str = "1s"
    port: int = field(init=False, default=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.rule_interval,
            },
            "rule_files": [str(self.rules)],
            "scrape_configs": [{"job_name": OPERATOR_JOB, "static_configs": [{"targets": [self.target]}]}],
        }

    def start(self) -> PrometheusProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config()))
        self.port = free_port()
        argv = [
            str(self.binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self._proc = spawn(argv, log=self._open_log())
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.alive():
                raise PrometheusError(
                    f"prometheus exited during start-up; log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise PrometheusError(f"prometheus not ready within {START_TIMEOUT:.0f}s; log: {self.log_path}")

    def _api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar as one sample) ``expr`` evaluates to now."""
        data = self._api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self, state: str = "firing") -> list[dict[str, str]]:
        """Labels of the alerts in ``state`` (firing or pending) now."""
        return [a["labels"] for a in self._api("alerts")["alerts"] if a["state"] == state]

    def scrape_health(self) -> str:
        """The operator target's worst scrape in the last 10 minutes: a failed scrape (a timeout under load)
        makes every series stale at once, which resolves alerts and restarts their ``for:``."""
        parts = []
        for what, expr in (
            ("lowest up", f'min_over_time(up{{job="{OPERATOR_JOB}"}}[10m])'),
            ("longest scrape (s)", f'max_over_time(scrape_duration_seconds{{job="{OPERATOR_JOB}"}}[10m])'),
        ):
            parts.append(f"{what}: {[sample['value'][1] for sample in self.query(expr)]}")
        return ", ".join(parts)

"""Monitoring against real parts: a real Prometheus scrapes the real operator process while the operator
manages the simulator, and evaluates the shipped alert rules.

One scenario, in order, in one namespace: policies become Ready (nothing fires), someone tampers with VMs
(drift), ZStack refuses writes (Failed VMs), a connection cannot log in (and its policy is never observed),
then the operator goes away. At each step every alert fires or stays quiet as the step says, and in the
fullest state every query of the shipped dashboard returns series.

The rule file is the shipped one with every ``for:`` set to ``HOLD``: alerts still go pending before they
fire, but the scenario need not wait 15 minutes. Prometheus evaluates the rules every second and scrapes every
``SCRAPE_EVERY`` with as long a timeout: on this shared 2-core machine a 1 s scrape of the operator sometimes
timed out, and a failed scrape makes every series stale at once (``up`` 0, alerts resolved and restarted).
A change in the operator's status reaches an alert within one scrape, one evaluation and the hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import (
    OperatorProcess,
    account_secret,
    condition_is,
    connection,
    holds_for,
    phases,
    policy,
    wait_for,
)
from harness.e2e import E2E, READY_TIMEOUT, SHORT_RESYNC
from harness.prometheus import OPERATOR_JOB, PrometheusProcess, alert_names, dashboard_queries, write_rules
from promtools import MissingPrometheusError, require

HOLD = "2s"
SCRAPE_EVERY = "5s"
ALERT_TIMEOUT = 60.0
"""Generous bound for a status change to reach a firing alert on a loaded 2-core machine (about 5 s idle)."""
QUIET_FOR = 10.0
"""How long alerts that must stay quiet are watched: longer than a scrape, the HOLD and an evaluation."""
LATE_TIMEOUT = 3 * SHORT_RESYNC + ALERT_TIMEOUT
"""ResyncLate needs the lag above one interval, i.e. no observation for two intervals, plus the hold."""

NO_DATA_AS_ZERO = " or vector(0)"
Firing = set[tuple[str, str]]  # (alertname, policy or connection name); the absent() alert has no name


@pytest.fixture(scope="module")
def prometheus(
    operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusProcess]:
    try:
        binary = require().prometheus
    except MissingPrometheusError as error:
        pytest.fail(str(error), pytrace=False)
    work = tmp_path_factory.mktemp("prometheus")
    server = PrometheusProcess(
        log_path=work / "prometheus.log",
        binary=binary,
        target=f"127.0.0.1:{operator.metrics_port}",
        rules=write_rules(work / "vmclock-rules.yaml", hold=HOLD),
        data_dir=work / "data",
        scrape_interval=SCRAPE_EVERY,
    )
    with server:
        wait_for(
            lambda: server.query(f'up{{job="{OPERATOR_JOB}"}} == 1'),
            timeout=ALERT_TIMEOUT,
            what="a first successful scrape of the operator (until then VmClockOperatorAbsent rightly fires)",
        )
        yield server


def firing(prometheus: PrometheusProcess, namespace: str) -> Firing:
    """The firing alerts about this test's namespace, and the operator-wide ones."""
    return {
        (labels["alertname"], labels.get("name", ""))
        for labels in prometheus.alerts()
        if labels.get("namespace", namespace) == namespace
    }


def wait_firing(prometheus: PrometheusProcess, namespace: str, expected: Firing, *, timeout: float) -> None:
    """Until exactly ``expected`` fires, then that it stays so (the quiet ones stay quiet) for QUIET_FOR."""
    what = f"exactly {sorted(expected)} firing"

    def now() -> Firing:
        return firing(prometheus, namespace)

    try:
        wait_for(now, expected.__eq__, timeout=timeout, interval=0.5, what=what)
        holds_for(now, expected.__eq__, duration=QUIET_FOR, interval=0.5, what=f"{what} for {QUIET_FOR:.0f}s")
    except AssertionError as error:
        raise AssertionError(f"{error}\nscrapes of the operator: {prometheus.scrape_health()}") from None


def test_alerts_follow_the_scenario_and_every_dashboard_query_has_series(
    e2e: E2E, prometheus: PrometheusProcess, tmp_path: Path
) -> None:
    assert len(alert_names()) == 6, "a new alert needs a step here that makes it fire"
    e2e.connect(resync_seconds=SHORT_RESYNC)
    steady, tampered, watched = (e2e.vms.take(n, track="host") for n in (2, 3, 2))
    e2e.tenant.apply(
        policy("steady", "guest", steady, resync_seconds=SHORT_RESYNC),
        policy("tampered", "guest", tampered, resync_seconds=SHORT_RESYNC),
        policy("watched", "host", watched, management="Observe", resync_seconds=SHORT_RESYNC),
    )
    for name in ("steady", "tampered", "watched"):
        e2e.tenant.wait_ready(name, timeout=READY_TIMEOUT)

    # 1. Everything Ready and observed on time: nothing fires.
    wait_firing(prometheus, e2e.namespace, set(), timeout=ALERT_TIMEOUT)

    # 2. Someone changes three VMs of an Enforce policy (corrected: only the drift alert) and one VM of an
    #    Observe policy (reported Drifted: not Ready; one drift is not "recurring").
    for uuid in tampered:
        e2e.simulator.admin.set_track(uuid, "host")
    e2e.simulator.admin.set_track(watched[0], "guest")
    e2e.tenant.wait_policy(
        "watched",
        lambda p: phases(p).get(watched[0]) == "Drifted",
        timeout=SHORT_RESYNC + ALERT_TIMEOUT,
        what="the observed VM reported Drifted",
    )
    expected = {("VmClockDriftRecurring", "tampered"), ("VmClockPolicyNotReady", "watched")}
    wait_firing(prometheus, e2e.namespace, expected, timeout=SHORT_RESYNC + ALERT_TIMEOUT)
    assert e2e.simulator.admin.tracks(tampered) == dict.fromkeys(tampered, "guest"), "drift was corrected"

    # 3. ZStack refuses every SetVmClockTrack: a new policy's VMs are Failed (and it is not Ready).
    e2e.simulator.admin.set_faults(error_rates={"SetVmClockTrack": 1.0}, code="SYS.1006")
    e2e.tenant.apply(policy("refused", "guest", e2e.vms.take(2, track="host"), resync_seconds=SHORT_RESYNC))
    e2e.tenant.wait_policy(
        "refused",
        lambda p: set(phases(p).values()) == {"Failed"},
        timeout=READY_TIMEOUT,
        what="every VM Failed",
    )
    expected |= {("VmClockVmsFailed", "refused"), ("VmClockPolicyNotReady", "refused")}
    wait_firing(prometheus, e2e.namespace, expected, timeout=ALERT_TIMEOUT)

    # 4. A connection whose Secret has a wrong password: it is not Ready, and its policy is never observed.
    endpoint = e2e.simulator.endpoint
    e2e.tenant.apply(
        account_secret(
            "wrong-credentials", e2e.credentials.account, e2e.credentials.wrong_password, allow=endpoint
        ),
        connection("broken", endpoint, "wrong-credentials", resync_seconds=SHORT_RESYNC),
        policy("stranded", "guest", e2e.vms.take(1), connection_name="broken", resync_seconds=SHORT_RESYNC),
    )
    e2e.tenant.wait_policy(
        "stranded",
        lambda p: condition_is(p, "Ready", "False", "ConnectionNotReady"),
        timeout=READY_TIMEOUT,
        what="Ready=False/ConnectionNotReady",
    )
    expected |= {
        ("VmClockConnectionNotReady", "broken"),
        ("VmClockPolicyNotReady", "stranded"),
        ("VmClockResyncLate", "stranded"),
    }
    wait_firing(prometheus, e2e.namespace, expected, timeout=LATE_TIMEOUT)

    # Every state the dashboard shows exists now: every panel's query returns series, also without the
    # `or vector(0)` that shows a stat panel's 0 (it would hide a misspelt metric name).
    queries = [(title, expr.removesuffix(NO_DATA_AS_ZERO)) for title, expr in dashboard_queries()]
    empty = [(title, expr) for title, expr in queries if not prometheus.query(expr)]
    assert empty == [], f"dashboard queries without series: {empty}"
    scraped = json.dumps(prometheus.query(f'{{job="{OPERATOR_JOB}"}}'))
    assert e2e.credentials.leaks_in(scraped) == [], "a credential reached a metric"

    # 5. The operator goes away: the absent alert fires. Its series go stale, so the alerts on their current
    #    values resolve; the drift alert looks back an hour (the drift did happen) and stays.
    e2e.simulator.admin.clear_faults()
    e2e.operator.stop()
    gone = {("VmClockOperatorAbsent", ""), ("VmClockDriftRecurring", "tampered")}
    try:
        wait_firing(prometheus, e2e.namespace, gone, timeout=ALERT_TIMEOUT)
    finally:
        e2e.operator.start()

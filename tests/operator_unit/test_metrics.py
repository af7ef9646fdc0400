"""The metrics a scraper sees: per-policy series that go with the policy, resync lag, controller-runtime's
queue and reconcile families. Read through the registry's exposition text, as Prometheus reads it."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from vmclock.kopfapp.metrics import RECONCILE_RESULTS, Metrics
from vmclock.refs import Ref
from vmclock.workqueue import WorkQueue

Labels = tuple[tuple[str, str], ...]
A, B = Ref("team", "a"), Ref("team", "b")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def scrape(metrics: Metrics) -> dict[str, dict[Labels, float]]:
    """Sample name -> labels -> value, from the exposition text."""
    out: dict[str, dict[Labels, float]] = {}
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def of(ref: Ref, **extra: str) -> Labels:
    return tuple(sorted({"namespace": ref.namespace, "name": ref.name, **extra}.items()))


def status(
    ready: str = "True", synced: str = "True", *, failed: int = 0, restarts: int = 0
) -> dict[str, Any]:
    vms = [{"uuid": f"vm{i}", "phase": "Applied", "pendingRestart": i < restarts} for i in range(3)]
    return {
        "conditions": [{"type": "Ready", "status": ready}, {"type": "Synced", "status": synced}],
        "summary": {"total": 3, "inSync": 3 - failed, "failed": failed, "drifted": 0},
        "vms": vms,
    }


def test_policy_gauges_follow_its_status() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.report_policy(
        A, status("False", "True", failed=1, restarts=2), interval_seconds=60, observed_at=None
    )
    seen = scrape(metrics)
    assert seen["vmclock_policy_ready"] == {of(A): 0.0}
    assert seen["vmclock_policy_synced"] == {of(A): 1.0}
    assert seen["vmclock_policy_vms"] == {
        of(A, phase="inSync"): 2.0,
        of(A, phase="failed"): 1.0,
        of(A, phase="drifted"): 0.0,
    }
    assert seen["vmclock_policy_pending_restart_vms"] == {of(A): 2.0}
    assert seen["vmclock_policy_resync_interval_seconds"] == {of(A): 60.0}


def test_pending_restarts_count_every_selected_vm_not_only_the_listed_ones() -> None:
    wall = Clock(1_800_000_000.0)  # 2027-01-15T08:00:00Z
    metrics = Metrics(CollectorRegistry(), wall=wall)
    listed = status(restarts=2)  # a selector policy lists 3 of its VMs; its summary counts all 1200
    listed["summary"] = {**listed["summary"], "total": 1200, "inSync": 1200, "pendingRestart": 700}
    listed["pendingRestartSince"] = "2027-01-15T05:00:00Z"
    metrics.report_policy(A, listed, interval_seconds=60, observed_at=None)
    seen = scrape(metrics)
    assert seen["vmclock_policy_pending_restart_vms"] == {of(A): 700.0}
    assert seen["vmclock_policy_oldest_pending_restart_seconds"] == {of(A): 3 * 3600.0}
    assert of(A, phase="pendingRestart") not in seen["vmclock_policy_vms"], "a restart count is no phase"
    assert seen["vmclock_vms"] == {
        (("phase", "drifted"),): 0.0,
        (("phase", "failed"),): 0.0,
        (("phase", "inSync"),): 1200.0,
    }
    metrics.report_policy(A, status(), interval_seconds=60, observed_at=None)
    seen = scrape(metrics)
    assert seen["vmclock_policy_pending_restart_vms"] == {of(A): 0.0}
    assert seen["vmclock_policy_oldest_pending_restart_seconds"] == {of(A): 0.0}


def test_every_series_of_a_policy_goes_with_it() -> None:
    metrics = Metrics(CollectorRegistry())
    for ref in (A, B):
        metrics.report_policy(ref, status(), interval_seconds=60, observed_at=1000.0)
        metrics.drift_detected(ref, 1)
    metrics.forget_policy(A)
    seen = scrape(metrics)
    left = {name: labels for name, series in seen.items() for labels in series if ("name", "a") in labels}
    assert left == {}, "a forgotten policy left series behind"
    kept = {name for name, series in seen.items() for labels in series if ("name", "b") in labels}
    assert kept == {
        "vmclock_policy_ready",
        "vmclock_policy_synced",
        "vmclock_policy_vms",
        "vmclock_policy_pending_restart_vms",
        "vmclock_policy_oldest_pending_restart_seconds",
        "vmclock_policy_resync_interval_seconds",
        "vmclock_policy_last_observation_timestamp_seconds",
        "vmclock_policy_last_sync_success_timestamp_seconds",
        "vmclock_policy_resync_lag_seconds",
        "vmclock_policy_drift_detected_total",
    }, "the other policy keeps every series"


def test_resync_lag_is_how_overdue_the_next_observation_is() -> None:
    wall = Clock(1030.0)
    metrics = Metrics(CollectorRegistry(), wall=wall)
    metrics.report_policy(A, status(), interval_seconds=60, observed_at=1000.0)
    assert scrape(metrics)["vmclock_policy_resync_lag_seconds"] == {of(A): 0.0}, "not due yet"
    wall.now = 1100.0
    assert scrape(metrics)["vmclock_policy_resync_lag_seconds"] == {of(A): 40.0}
    metrics.report_policy(A, status("False", "False"), interval_seconds=None, observed_at=None)
    assert scrape(metrics)["vmclock_policy_resync_lag_seconds"] == {of(A): 40.0}, "no new observation"
    metrics.report_policy(A, status(), interval_seconds=None, observed_at=1095.0)
    assert scrape(metrics)["vmclock_policy_resync_lag_seconds"] == {of(A): 0.0}


def test_a_policy_never_observed_is_late_from_its_first_report() -> None:
    wall = Clock(1000.0)
    metrics = Metrics(CollectorRegistry(), wall=wall)
    metrics.report_policy(A, status("False", "False"), interval_seconds=60, observed_at=None)
    wall.now = 1090.0
    metrics.report_policy(A, status("False", "False"), interval_seconds=60, observed_at=None)
    seen = scrape(metrics)
    assert seen["vmclock_policy_resync_lag_seconds"] == {of(A): 30.0}
    assert "vmclock_policy_last_observation_timestamp_seconds" not in seen


def test_last_successful_sync_is_the_last_observation_with_synced_true() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.report_policy(A, status(), interval_seconds=60, observed_at=1000.0)
    metrics.report_policy(A, status("False", "False"), interval_seconds=60, observed_at=1060.0)
    seen = scrape(metrics)
    assert seen["vmclock_policy_last_sync_success_timestamp_seconds"] == {of(A): 1000.0}
    assert seen["vmclock_policy_last_observation_timestamp_seconds"] == {of(A): 1060.0}


def test_connection_ready_per_connection() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.report_connection(A, "Connected")
    metrics.report_connection(B, "AuthFailed")
    assert scrape(metrics)["vmclock_connection_ready"] == {of(A): 1.0, of(B): 0.0}
    metrics.forget_connection(B)
    assert scrape(metrics)["vmclock_connection_ready"] == {of(A): 1.0}


def test_drift_is_counted_per_policy_and_overall() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.report_policy(A, status(), interval_seconds=60, observed_at=1.0)
    metrics.drift_detected(A, 2)
    metrics.drift_detected(A, 1)
    seen = scrape(metrics)
    assert seen["vmclock_policy_drift_detected_total"] == {of(A): 3.0}
    assert seen["vmclock_drift_detected_total"] == {(): 3.0}


def test_reconcile_results_start_at_zero_and_errors_are_also_counted_as_errors() -> None:
    metrics = Metrics(CollectorRegistry())
    before = scrape(metrics)["controller_runtime_reconcile_total"]
    assert before == {(("controller", "vmclockpolicy"), ("result", r)): 0.0 for r in RECONCILE_RESULTS}
    metrics.reconciled("error", 0.5)
    metrics.reconciled("success", 1.5)
    seen = scrape(metrics)
    controller = (("controller", "vmclockpolicy"),)
    assert seen["controller_runtime_reconcile_total"][(*controller, ("result", "error"))] == 1.0
    assert seen["controller_runtime_reconcile_errors_total"] == {controller: 1.0}
    assert seen["controller_runtime_reconcile_time_seconds_count"] == {controller: 2.0}
    assert seen["controller_runtime_reconcile_time_seconds_sum"] == {controller: 2.0}


def test_an_unknown_reconcile_result_is_refused_with_the_allowed_ones() -> None:
    metrics = Metrics(CollectorRegistry())
    with pytest.raises(
        ValueError, match="'failed': allowed values are success, error, requeue, requeue_after"
    ):
        metrics.reconciled("failed", 1.0)


def test_queue_and_worker_gauges_are_read_when_scraped() -> None:
    clock = Clock(100.0)
    metrics = Metrics(CollectorRegistry(), clock=clock)
    running = [95.0, 98.0]
    metrics.watch_queue(lambda: 4, lambda: running)
    metrics.set_workers(8, lambda: len(running))
    labels = (("controller", "vmclockpolicy"), ("name", "vmclockpolicy"))
    seen = scrape(metrics)
    assert seen["workqueue_depth"] == {labels: 4.0}
    assert seen["workqueue_unfinished_work_seconds"] == {labels: 7.0}
    assert seen["workqueue_longest_running_processor_seconds"] == {labels: 5.0}
    assert seen["controller_runtime_max_concurrent_reconciles"] == {(("controller", "vmclockpolicy"),): 8.0}
    assert seen["controller_runtime_active_workers"] == {(("controller", "vmclockpolicy"),): 2.0}
    running.clear()
    assert scrape(metrics)["workqueue_longest_running_processor_seconds"] == {labels: 0.0}


async def test_the_work_queue_reports_adds_waits_work_and_retries() -> None:
    clock = Clock(10.0)
    metrics = Metrics(CollectorRegistry(), clock=clock)
    queue: WorkQueue[str] = WorkQueue(clock=clock, observer=metrics)
    metrics.watch_queue(queue.depth, queue.running_since)
    labels = (("controller", "vmclockpolicy"), ("name", "vmclockpolicy"))
    queue.add("a")
    queue.add("a")  # coalesced: one entry, counted once
    clock.now = 12.0
    assert await queue.get() == "a"
    clock.now = 15.0
    seen = scrape(metrics)
    assert seen["workqueue_adds_total"] == {labels: 1.0}
    assert seen["workqueue_queue_duration_seconds_sum"] == {labels: 2.0}
    assert seen["workqueue_longest_running_processor_seconds"] == {labels: 3.0}
    queue.add_rate_limited("a")
    queue.done("a")
    seen = scrape(metrics)
    assert seen["workqueue_work_duration_seconds_sum"] == {labels: 3.0}
    assert seen["workqueue_retries_total"] == {labels: 1.0}
    assert seen["workqueue_unfinished_work_seconds"] == {labels: 0.0}
    queue.shut_down()

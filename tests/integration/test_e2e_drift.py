"""Drift: someone changes a VM's track in ZStack behind the operator's back.

``Enforce`` policies put it back within their resync interval and say so with a ``DriftCorrected`` Event;
``Observe`` policies report ``Drifted`` (``Ready=False``) and never write.
"""

from __future__ import annotations

import time

from harness import condition_is, holds_for, phases, policy, vm_entries
from harness.e2e import DRIFT_SLACK, E2E, READY_TIMEOUT, SHORT_RESYNC


def test_enforce_corrects_drift_within_the_resync_interval(e2e: E2E) -> None:
    e2e.connect(resync_seconds=SHORT_RESYNC)
    uuids = e2e.vms.take(3, track="host")
    e2e.tenant.apply(policy("enforced", "guest", uuids, resync_seconds=SHORT_RESYNC))
    e2e.tenant.wait_ready("enforced", timeout=READY_TIMEOUT)
    drifted = uuids[1]
    injected = time.time()

    corrections = e2e.drift_and_wait_for_correction(drifted, "guest", timeout=SHORT_RESYNC + DRIFT_SLACK)

    assert [w.track for w in corrections] == ["guest"]
    e2e.tenant.wait_event("enforced", "DriftCorrected", timeout=READY_TIMEOUT)
    got = e2e.tenant.wait_ready("enforced", timeout=READY_TIMEOUT)
    assert set(phases(got).values()) <= {"Applied", "InSync"}, phases(got)
    untouched = [u for u in uuids if u != drifted]
    assert [w for w in e2e.simulator.admin.stats().writes_for(untouched) if w.at >= injected] == []


def test_observe_reports_drift_and_never_writes(e2e: E2E) -> None:
    e2e.connect(resync_seconds=SHORT_RESYNC)
    uuids = e2e.vms.take(3, track="host")
    e2e.tenant.apply(policy("observed", "host", uuids, management="Observe", resync_seconds=SHORT_RESYNC))
    got = e2e.tenant.wait_ready("observed", timeout=READY_TIMEOUT)
    assert phases(got) == dict.fromkeys(uuids, "InSync")
    drifted = uuids[0]

    e2e.simulator.admin.set_track(drifted, "guest")

    got = e2e.tenant.wait_policy(
        "observed",
        lambda p: phases(p).get(drifted) == "Drifted" and condition_is(p, "Ready", "False", "Drifted"),
        timeout=SHORT_RESYNC + DRIFT_SLACK,
        what="the VM reported Drifted with Ready=False/Drifted",
    )
    assert vm_entries(got)[drifted]["observedTrack"] == "guest"
    assert got["status"]["summary"]["drifted"] == 1
    e2e.tenant.wait_event("observed", "DriftDetected", timeout=READY_TIMEOUT)
    holds_for(
        lambda: (
            phases(e2e.tenant.policy("observed"))[drifted],
            e2e.simulator.admin.tracks([drifted]),
            e2e.simulator.admin.stats().writes_for(uuids),
        ),
        lambda seen: seen == ("Drifted", {drifted: "guest"}, []),
        duration=SHORT_RESYNC + 1,
        what="an observed VM staying Drifted and unwritten for a whole resync interval",
    )

"""Selector policies through the PolicyController: the record ConfigMap, precedence from the remembered
selections, and deletion. Same parts as test_controller.py (real simulator, client, queue, engine); the
Kubernetes API is its in-memory stand-in, here also keeping ConfigMaps with resourceVersion and uid checks
as the API server does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from vmclock.engine.pending import decode_restarts
from vmclock.engine.records import decode_record
from vmclock.engine.spec import POLICY_PLURAL
from vmclock.kopfapp.records import KEY, RESTARTS_KEY, RESTARTS_PREFIX, record_name
from vmclock.refs import Ref
from vmclock.simulator import Simulator

from . import test_controller
from .test_controller import NS, FakeKube, Parts, phases, ready, running_parts

# The same simulator, and kopf's event posting switched off, as in test_controller.py.
sim = test_controller.sim
no_event_posting = test_controller.no_event_posting

WINDOWS = {"platforms": ["Windows", "WindowsVirtio"]}
NOT_FOUND = 404


class RecordingKube(FakeKube):
    """FakeKube noting, at each ConfigMap write, how many ZStack writes had happened (`writes_at_store`)."""

    def __init__(self, sim: Simulator) -> None:
        super().__init__()
        self._sim = sim
        self.writes_at_store: list[int] = []

    def _stamp(self, namespace: str, body: Mapping[str, Any], uid: str) -> dict[str, Any]:
        self.writes_at_store.append(len(self._sim.stats.writes))
        return super()._stamp(namespace, body, uid)


@pytest.fixture
async def parts(sim: Simulator) -> AsyncIterator[Parts]:
    async with running_parts(sim, RecordingKube(sim)) as made:
        yield made


def selector_policy(parts: Parts, name: str, *, created: str = "2026-05-01T12:00:00Z", **spec: Any) -> Ref:
    parts.kube.objects[(POLICY_PLURAL, NS, name)] = {
        "metadata": {
            "namespace": NS,
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": {"track": "guest", "selector": WINDOWS, **spec},
    }
    parts.index.sync(parts.kube)
    return Ref(NS, name)


def windows(sim: Simulator) -> list[str]:
    return sorted(u for u in sim.state.vm_uuids() if sim.state.vm(u).platform.startswith("Windows"))


def record(parts: Parts, name: str) -> dict[str, Any] | None:
    kube = parts.kube
    assert isinstance(kube, RecordingKube)
    return kube.config_maps.get((NS, record_name(name)))


async def idle(parts: Parts, *refs: Ref) -> None:
    queue = parts.controller.queue
    await parts.settle(lambda: not queue.pending() and not any(queue.is_processing(r) for r in refs))


async def test_the_record_configmap_is_written_before_the_first_write_and_owned_by_the_policy(
    parts: Parts, sim: Simulator
) -> None:
    chosen = windows(sim)
    before = {u: sim.state.track_of(u) for u in chosen}
    ref = selector_policy(parts, "p", deletionPolicy="Restore")
    parts.controller.enqueue(ref)
    await parts.settle(lambda: ready(parts.status(ref)))
    assert all(sim.state.track_of(u) == "guest" for u in chosen)
    assert parts.status(ref)["summary"]["total"] == len(chosen)
    kube = parts.kube
    assert isinstance(kube, RecordingKube)
    assert kube.writes_at_store[0] == 0, "the record was stored before any VM was written"
    stored = record(parts, "p")
    assert stored is not None
    assert stored["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "vmclock"}
    assert [o["uid"] for o in stored["metadata"]["ownerReferences"]] == ["uid-p"]
    assert decode_record(stored["data"][KEY]) == {u: t for u, t in before.items() if t != "guest"}

    assert await parts.deleted(ref, 10.0)
    assert {u: sim.state.track_of(u) for u in chosen} == before
    assert record(parts, "p") is None, "the record goes once the Restore completed"


async def test_an_orphan_policys_record_goes_with_its_deleted_event(parts: Parts, sim: Simulator) -> None:
    ref = selector_policy(parts, "p")
    parts.controller.enqueue(ref)
    await parts.settle(lambda: ready(parts.status(ref)))
    assert record(parts, "p") is not None
    del parts.kube.objects[(POLICY_PLURAL, *ref)]
    parts.index.sync(parts.kube)
    parts.controller.enqueue(ref)  # what the DELETED event handler does
    await parts.settle(lambda: record(parts, "p") is None)
    assert all(sim.state.track_of(u) == "guest" for u in windows(sim)), "Orphan: VMs keep their track"


async def test_a_uuid_policy_beats_the_selector_policy_and_two_selectors_follow_age(
    parts: Parts, sim: Simulator
) -> None:
    chosen = windows(sim)
    broad = selector_policy(parts, "broad", created="2026-01-01T00:00:00Z")
    parts.controller.enqueue(broad)
    await parts.settle(lambda: ready(parts.status(broad)))

    exact = parts.policy("exact", chosen[:1], track="host")  # younger than the selector policy
    parts.controller.enqueue(exact)
    await parts.settle(lambda: ready(parts.status(exact)))
    await idle(parts, broad, exact)
    parts.index.sync(parts.kube)  # kopf's index learns from the watch that exact's claim is backed now
    for ref in (broad, exact):  # both look again, as their next resync would
        parts.controller.enqueue(ref)
        await idle(parts, broad, exact)
    assert sim.state.track_of(chosen[0]) == "host"
    status = parts.status(broad)
    assert status["summary"]["total"] == len(chosen) - 1, "the selector policy no longer counts that VM"
    assert status["summary"]["conflicted"] == 0
    assert phases(parts.status(exact)) == {chosen[0]: "Applied"}

    younger = selector_policy(parts, "younger", track="host", created="2026-06-01T00:00:00Z")
    parts.controller.enqueue(younger)
    await parts.settle(lambda: parts.status(younger).get("summary", {}).get("conflicted") == len(chosen) - 1)
    assert sim.state.track_of(chosen[1]) == "guest", "the older selector policy keeps its VMs"


async def test_pending_restarts_live_in_their_own_configmap_beside_an_unchanged_record(
    parts: Parts, sim: Simulator
) -> None:
    chosen = windows(sim)
    running = {u for u in chosen if sim.state.vm(u).state == "Running" and sim.state.track_of(u) != "guest"}
    assert running, "the seeded fleet has running Windows VMs to change"
    ref = selector_policy(parts, "p", deletionPolicy="Restore")
    parts.controller.enqueue(ref)
    await parts.settle(lambda: ready(parts.status(ref)))
    await idle(parts, ref)
    status = parts.status(ref)
    assert status["summary"]["pendingRestart"] == len(running)
    assert [c["status"] for c in status["conditions"] if c["type"] == "Effective"] == ["False"]
    restarts = parts.kube.config_maps.get((NS, record_name("p", RESTARTS_PREFIX)))
    assert restarts is not None
    assert [o["uid"] for o in restarts["metadata"]["ownerReferences"]] == ["uid-p"]
    assert set(decode_restarts(restarts["data"][RESTARTS_KEY])) == running
    tracks = record(parts, "p")
    assert tracks is not None
    assert list(tracks["data"]) == [KEY], "the previous tracks keep the form an older operator reads"

    kube = parts.kube
    assert isinstance(kube, RecordingKube)
    stored, patches = len(kube.writes_at_store), len(kube.patches)
    parts.controller.enqueue(ref)  # a resync with nothing new
    await idle(parts, ref)
    assert (len(kube.writes_at_store), len(kube.patches)) == (stored, patches), (
        "no ConfigMap, no status write"
    )

    assert await parts.deleted(ref, 10.0)
    assert parts.kube.config_maps.get((NS, record_name("p", RESTARTS_PREFIX))) is None, "it goes too"

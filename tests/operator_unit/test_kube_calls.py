"""What a reconcile asks of the Kubernetes API (issue 14: many small policies within 1.5x of one big one).

Each of 1,000 small policies paid for Kubernetes calls that carried no information: a GET of its
ZStackConnection on every reconcile (the watch delivers it), and GETs of two record ConfigMaps that cannot
exist before the policy's first status. The counts below are pinned so a regression shows; the other tests
show that what the calls used to guarantee still holds: a connection the watch has not delivered is read,
never taken for absent, and a record a crashed first reconcile left is read and its previous tracks kept.

Same parts as test_controller.py: an in-memory API (counting here), the simulator, the real controller.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import kopf
import pytest

from vmclock.engine.records import encode_record
from vmclock.engine.spec import CONNECTION_PLURAL
from vmclock.kopfapp.connectionindex import IndexedConnection
from vmclock.kopfapp.connections import ConnectionWorker
from vmclock.kopfapp.liveness import Heartbeats
from vmclock.kopfapp.records import KEY, PREFIX, record_body, record_name
from vmclock.refs import Ref
from vmclock.simulator import Simulator
from vmclock.zstack.models import Track

from . import test_controller
from .test_controller import CONNECTION, DELETED_AT, NS, FakeKube, Parts, phases, ready, running_parts

sim = test_controller.sim
no_event_posting = test_controller.no_event_posting


COUNTED = {  # KubeApi's method -> what the API server counts ("{}": the method's first argument, a plural)
    "read_object": "GET {}",
    "write_status": "PATCH {}/status",
    "patch_status": "PATCH {}/status",
    "get_config_map": "GET configmaps",
    "read_config_map": "GET configmaps",
    "read_secret": "GET secrets",
    "create_config_map": "POST configmaps",
    "replace_config_map": "PUT configmaps",
    "delete_config_map": "DELETE configmaps",
}


class CountingKube(FakeKube):
    """Every call, as "VERB resource" (what the API server's apiserver_request_total counts)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        for method, what in COUNTED.items():
            setattr(self, method, self._counting(getattr(self, method), what))

    def _counting(self, call: Callable[..., Awaitable[Any]], what: str) -> Callable[..., Awaitable[Any]]:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[what.format(*args[:1])] += 1
            return await call(*args, **kwargs)

        return counted


@pytest.fixture
async def parts(sim: Simulator) -> AsyncIterator[Parts]:
    async with running_parts(sim, CountingKube()) as made:
        yield made


def calls(parts: Parts) -> Counter[str]:
    assert isinstance(parts.kube, CountingKube)
    return parts.kube.calls


def running_vms(parts: Parts, track: str, count: int) -> list[str]:
    """Running Windows VMs: a write leaves each waiting for a restart, so a policy writing them stores both
    records before its writes."""
    state = parts.sim.state
    chosen = [
        u
        for u in state.vm_uuids()
        if state.track_of(u) == track
        and state.vm(u).state == "Running"
        and state.vm(u).platform.startswith("Windows")
    ]
    assert len(chosen) >= count
    return chosen[:count]


async def reconciled(parts: Parts, ref: Ref) -> None:
    """One reconcile asked for and run to its end (it schedules the policy's next drift check)."""
    runtime = parts.controller.runtimes.get(ref)
    if runtime is not None:
        runtime.due = None
    parts.controller.enqueue(ref)
    await parts.settle(lambda: parts.due(ref) and not parts.controller.queue.is_processing(ref))


async def warmed(parts: Parts) -> None:
    """The connection's client is built and checked (its Secret read) by another policy's reconcile, as it
    is for all but the first of 1,000 policies; the counts start after it."""
    await reconciled(parts, parts.policy("warm", running_vms(parts, "host", 1)))
    calls(parts).clear()


async def test_a_new_uuid_policys_first_reconcile_reads_only_the_policy(parts: Parts) -> None:
    """The connection comes from the watch and the records cannot exist yet: the policy's GET, the
    connection's GET that confirms the watch's view before the first write, the two records created
    before the writes, one status."""
    await warmed(parts)
    ref = parts.policy("p", running_vms(parts, "host", 3))
    await reconciled(parts, ref)
    assert set(phases(parts.status(ref)).values()) == {"Applied"}
    assert calls(parts) == {
        "GET vmclockpolicies": 1,
        "GET zstackconnections": 1,  # confirmed before the records and the writes
        "POST configmaps": 2,  # the previous tracks and the pending restarts
        "PATCH vmclockpolicies/status": 1,
    }


async def test_an_in_sync_resync_reads_only_the_policy(parts: Parts) -> None:
    """Nothing to write: the connection as the watch delivered it is not confirmed."""
    ref = parts.policy("p", running_vms(parts, "host", 3))
    await reconciled(parts, ref)
    calls(parts).clear()
    await reconciled(parts, ref)
    assert calls(parts) == {"GET vmclockpolicies": 1}


async def test_a_first_reconcile_with_nothing_to_write_reads_the_records_before_its_status(
    parts: Parts,
) -> None:
    """No create proved the records absent, so they are read before the status says what they hold (a
    first reconcile that crashed after its writes would have left them: the next test)."""
    vms = running_vms(parts, "guest", 3)  # chosen before the warm-up writes guest to its own VM
    await warmed(parts)
    ref = parts.policy("p", vms)
    await reconciled(parts, ref)
    assert set(phases(parts.status(ref)).values()) == {"InSync"}
    assert calls(parts) == {"GET vmclockpolicies": 1, "GET configmaps": 2, "PATCH vmclockpolicies/status": 1}


async def crashed_first_reconcile(parts: Parts, ref: Ref, previous: Mapping[str, Track]) -> None:
    """What a first reconcile that crashed before its first status leaves: the record of the previous
    tracks (intent before action), and no status."""
    name = record_name(ref.name, PREFIX)
    await parts.kube.create_config_map(
        NS, record_body(ref, parts.uid(ref), name, {KEY: encode_record(previous)})
    )
    assert not parts.status(ref)


@pytest.mark.parametrize("written", [1, 3], ids=["some-writes-done", "all-writes-done"])
async def test_a_record_left_by_a_crashed_first_reconcile_is_read_and_its_previous_tracks_kept(
    parts: Parts, written: int
) -> None:
    """The crashed run recorded host for all three VMs and wrote guest to `written` of them. The next
    first reconcile must not take the record for absent: with VMs left to write its create meets the
    ConfigMap (409) before any write; with none, the record is read before the status. Either way it looks
    again at once (no backoff), every status it writes shows host as the previous track, and the Restore
    puts host back, not the guest the crashed run wrote."""
    vms = running_vms(parts, "host", 3)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    await crashed_first_reconcile(parts, ref, dict.fromkeys(vms, "host"))
    for uuid in vms[:written]:
        parts.sim.state.set_track_behind(uuid, "guest")
    await reconciled(parts, ref)
    assert ready(parts.status(ref))
    statuses = [status for name, status in parts.kube.patches if name == "p"]
    assert statuses
    for status in statuses:
        assert {e["uuid"]: e.get("previousTrack") for e in status["vms"]} == dict.fromkeys(vms, "host")
    assert parts.controller.queue.failures(ref) == 0, "no backoff: it looked again at once"
    assert await parts.deleted(ref, 10.0)
    assert {u: parts.sim.state.track_of(u) for u in vms} == dict.fromkeys(vms, "host")


async def test_a_connection_the_watch_has_not_delivered_is_read_not_taken_for_absent(parts: Parts) -> None:
    ref = parts.policy("p", running_vms(parts, "host", 1))
    parts.index.connections.clear()  # the connection was just created: its watch event is on the way
    await reconciled(parts, ref)
    assert ready(parts.status(ref))
    assert calls(parts)["GET zstackconnections"] == 1


async def test_two_incarnations_in_the_index_are_told_apart_by_the_api_server(parts: Parts) -> None:
    """A re-created connection whose predecessor's DELETED event has not arrived yet: both are in kopf's
    index under the name, and only the API server knows which one is there."""
    ref = parts.policy("p", running_vms(parts, "host", 1))
    current = parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]
    predecessor = IndexedConnection("uid-old", current["spec"], deleting=True)
    parts.index.connections[CONNECTION].insert(0, predecessor)
    await reconciled(parts, ref)
    assert ready(parts.status(ref))
    assert calls(parts)["GET zstackconnections"] == 1


async def test_a_connection_being_deleted_serves_restores_only(parts: Parts) -> None:
    """As the watch delivered it: a forward reconcile does not use it, a restore still does (defect 1 of
    issue 14, test_core_loop.py, shows the restore after a restart)."""
    vms = running_vms(parts, "host", 2)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    await reconciled(parts, ref)
    other = parts.policy("other", running_vms(parts, "host", 1))
    parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]["metadata"]["deletionTimestamp"] = DELETED_AT
    parts.index.sync(parts.kube)
    writes = len(parts.sim.stats.writes)
    await reconciled(parts, other)
    assert parts.status(other)["connection"]["reason"] == "NotFound"
    assert len(parts.sim.stats.writes) == writes, "no write through a connection being deleted"
    assert await parts.deleted(ref, 10.0)
    assert {u: parts.sim.state.track_of(u) for u in vms} == dict.fromkeys(vms, "host")
    assert calls(parts)["GET zstackconnections"] == 2  # confirmed before p's writes and before its restore


async def test_a_connection_created_after_its_policy_is_used_once_it_is_ready(parts: Parts) -> None:
    """The policy found no connection; the connection's first check finds it ready and kicks the policies
    waiting on it, which then find it in the index."""
    connection = parts.kube.objects.pop((CONNECTION_PLURAL, *CONNECTION))
    ref = parts.policy("p", running_vms(parts, "host", 1))
    await reconciled(parts, ref)
    assert parts.status(ref)["connection"]["reason"] == "NotFound"
    parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)] = connection
    parts.index.sync(parts.kube)  # its ADDED event, indexed before the handlers run
    worker = ConnectionWorker(
        parts.kube, parts.manager, parts.controller, parts.metrics, heartbeats=Heartbeats()
    )
    assert (await worker.check(kopf.Body(connection))).ready  # type: ignore[arg-type]
    await parts.settle(lambda: ready(parts.status(ref)))


async def test_after_the_index_was_found_behind_the_next_reconcile_uses_the_api_servers_answer(
    parts: Parts,
) -> None:
    """The connection's spec changed and its MODIFIED event has not reached the index: the first
    reconcile's confirmation finds it out before any write (Stale); the one right after uses the API
    server's answer, confirms it (one more GET) and writes: two reconciles, not a loop of Stale ones
    while the watch catches up. Once the watch delivers the event the index answers again."""
    vms = running_vms(parts, "host", 2)
    ref = parts.policy("p", vms)
    changed = {**parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]["spec"], "maxConcurrentRequests": 3}
    parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]["spec"] = changed
    await reconciled(parts, ref)
    assert set(phases(parts.status(ref)).values()) == {"Applied"}
    assert calls(parts)["GET vmclockpolicies"] == 2, "one reconcile looked again, once"
    assert calls(parts)["GET zstackconnections"] == 2
    assert parts.controller.queue.failures(ref) == 0, "no backoff"
    parts.index.sync(parts.kube)  # the MODIFIED event arrives
    calls(parts).clear()
    parts.sim.state.set_track_behind(vms[0], "host")
    await reconciled(parts, ref)
    assert calls(parts)["GET zstackconnections"] == 1, "the index's answer, confirmed before the write"
    await reconciled(parts, ref)
    assert calls(parts)["GET zstackconnections"] == 1, "in sync: the index's answer, no GET"


async def test_a_restore_confirms_its_connection_before_it_writes(parts: Parts) -> None:
    """The connection was re-created (same endpoint, new uid) and the index has not caught up: the
    restore finds it out before its writes, and restores through the API server's answer."""
    vms = running_vms(parts, "host", 2)
    ref = parts.policy("p", vms, deletionPolicy="Restore")
    await reconciled(parts, ref)
    parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)]["metadata"]["uid"] = "uid-c2"
    calls(parts).clear()
    assert await parts.deleted(ref, 10.0)
    assert {u: parts.sim.state.track_of(u) for u in vms} == dict.fromkeys(vms, "host")
    assert calls(parts)["GET zstackconnections"] == 2  # Stale, then the API server's answer confirmed


async def test_a_connection_found_gone_is_used_again_once_the_watch_delivers_it_re_created(
    parts: Parts,
) -> None:
    """The API server's "absent" is kept only until the watch delivers the connection's next event."""
    vms = running_vms(parts, "host", 2)
    ref = parts.policy("p", vms)
    connection = parts.kube.objects.pop((CONNECTION_PLURAL, *CONNECTION))  # its DELETED event is on the way
    await reconciled(parts, ref)
    assert parts.status(ref)["connection"]["reason"] == "NotFound"
    assert parts.sim.stats.writes == []
    connection["metadata"]["uid"] = "uid-c2"
    parts.kube.objects[(CONNECTION_PLURAL, *CONNECTION)] = connection
    parts.index.sync(parts.kube)  # the re-created connection's ADDED event
    await reconciled(parts, ref)
    assert set(phases(parts.status(ref)).values()) == {"Applied"}

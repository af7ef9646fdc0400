"""SetVmClockTrack as an async job: location rewrite, adaptive polling, lost-202 recovery, job failures."""

from __future__ import annotations

import asyncio

import pytest

from vmclock.simulator import Simulator, SimulatorConfig
from vmclock.zstack import ZStackClient, ZStackError
from vmclock.zstack.errors import JOB_EXPIRED, JOB_TIMEOUT, TRANSPORT

from .recorder import RecordingProxy
from .support import CallLog, MakeClient


async def test_set_returns_the_inventory_and_the_track_is_stored(
    sim: Simulator, client: ZStackClient
) -> None:
    uuid = sim.state.vm_uuids()[0]
    inventory = await client.set_clock_track(uuid, "guest")
    assert inventory.uuid == uuid
    assert inventory.name
    assert sim.state.track_of(uuid) == "guest"
    assert [(w.uuid, w.track) for w in sim.stats.writes] == [(uuid, "guest")]


async def test_location_host_and_context_path_are_rewritten_to_the_endpoint(make_client: MakeClient) -> None:
    # The simulator advertises http://mn.internal:8080 in `location`, an address this client cannot reach.
    config = SimulatorConfig(vms=3, job_latency=0.02, context_path="/custom-ctx")
    async with Simulator(config) as sim, RecordingProxy(sim.endpoint) as proxy:
        assert sim.config.advertised_url is not None
        assert "mn.internal" in sim.config.advertised_url
        client = make_client(proxy.endpoint + "/custom-ctx")
        await client.set_clock_track(sim.state.vm_uuids()[0], "guest")
        polls = proxy.matching("GET", "/custom-ctx/v1/api-jobs/")
    assert polls  # every poll went to the configured endpoint
    assert sim.stats.calls["PollJob"] == len(polls)


async def test_polling_starts_soon_and_backs_off(make_client: MakeClient) -> None:
    async with Simulator(SimulatorConfig(vms=1, job_latency=0.6)) as sim:
        client = make_client(sim.endpoint, poll_first_delay=0.02, poll_max_delay=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.set_clock_track(sim.state.vm_uuids()[0], "guest")
        elapsed = loop.time() - started
    # Waits 0.02, 0.03, 0.045 ... capped at 0.2: the 0.6 s job is seen done within one cap of finishing,
    # with about ten polls rather than one per 20 ms (30) or one per second (a 1 s overshoot).
    assert 0.6 <= elapsed < 0.95  # a fixed 1 s poll would need 1 s
    assert 5 <= sim.stats.calls["PollJob"] <= 12


async def test_jobs_sent_together_before_their_duration_is_known_poll_about_once_each(
    make_client: MakeClient,
) -> None:
    """After a start nothing is known of a job's duration, and a restart's writes go out together: each
    polling at the early pace took 4 polls (120 for 30 VMs, issue 14's restart). One job scouts; the
    others wait for what it learns and then poll about once."""
    async with Simulator(SimulatorConfig(vms=30, job_latency=0.2)) as sim:
        client = make_client(sim.endpoint, poll_first_delay=0.02, poll_max_delay=2.0)  # the defaults
        uuids = sim.state.vm_uuids()
        await asyncio.gather(*(client.set_clock_track(uuid, "guest") for uuid in uuids))
        assert {sim.state.track_of(uuid) for uuid in uuids} == {"guest"}
        assert sim.stats.calls["PollJob"] <= len(uuids) + 10


async def test_lost_202_is_recovered_by_polling_our_own_job_uuid(
    sim: Simulator, client: ZStackClient
) -> None:
    sim.faults.lost_accept_rate = 1.0  # every submit: stored and run, then the connection is dropped
    uuids = sim.state.vm_uuids()[:5]
    await asyncio.gather(*(client.set_clock_track(u, "guest") for u in uuids))
    assert sorted(w.uuid for w in sim.stats.writes) == sorted(uuids)  # exactly one write each
    assert sim.stats.calls["SetVmClockTrack"] == len(uuids)  # never submitted twice
    assert all(sim.state.track_of(u) == "guest" for u in uuids)


async def test_dropped_submit_is_resubmitted_after_a_404_from_the_job_store(
    sim: Simulator, client: ZStackClient
) -> None:
    # A dropped request never reached the store: the recovery poll gets 404, the resubmit is safe.
    await client.login()
    sim.faults.drop_rate = 0.3
    uuids = sim.state.vm_uuids()[:20]
    await asyncio.gather(*(client.set_clock_track(u, "guest") for u in uuids))
    sim.faults.clear()
    assert sorted(w.uuid for w in sim.stats.writes) == sorted(uuids)  # exactly one write each
    assert sim.stats.calls["SetVmClockTrack"] == len(uuids)
    assert sim.stats.calls["PollJob"] > len(uuids)


async def test_only_track_is_sent_unless_the_qga_fields_are_asked_for(
    sim: Simulator, make_client: MakeClient
) -> None:
    # Sending syncAfterVMResume/intervalInSeconds (even false/0) takes ZStack's QGA path, which also writes
    # the per-VM vm.clock.sync.* resource configs; it works in every VM state (zstack-api.md §5).
    uuid = sim.state.vm_uuids()[0]
    sim.state.set_vm_state(uuid, "Stopped")
    async with RecordingProxy(sim.endpoint) as proxy:
        client = make_client(proxy.endpoint)
        await client.set_clock_track(uuid, "guest")
        assert sim.state.track_of(uuid) == "guest"
        await client.set_clock_track(uuid, "host", sync_after_vm_resume=False, interval_in_seconds=60)
    first, second = (s.json() for s in proxy.matching("PUT", "/actions"))
    assert first == {"setVmClockTrack": {"track": "guest"}, "systemTags": [], "userTags": []}
    assert second["setVmClockTrack"] == {"track": "host", "syncAfterVMResume": False, "intervalInSeconds": 60}
    assert sim.state.track_of(uuid) == "host"


async def test_unknown_vm_is_terminal_not_found(sim: Simulator, client: ZStackClient) -> None:
    with pytest.raises(ZStackError) as caught:
        await client.set_clock_track("0" * 32, "guest")
    assert caught.value.not_found
    assert caught.value.http_status == 503
    assert sim.stats.calls["SetVmClockTrack"] == 1


@pytest.mark.parametrize("code", ["SYS.1007", "SYS.1003", "SYS.1006", "ID.1002"])
async def test_terminal_job_errors_are_not_retried(sim: Simulator, client: ZStackClient, code: str) -> None:
    sim.faults.set_error_rate("SetVmClockTrack", 1.0, code)
    with pytest.raises(ZStackError) as caught:
        await client.set_clock_track(sim.state.vm_uuids()[0], "guest")
    assert caught.value.code == code
    assert sim.stats.calls["SetVmClockTrack"] == 1
    assert not sim.stats.writes


@pytest.mark.parametrize("code", ["SYS.1001", "SYS.1010", "SYS.1012"])
async def test_retryable_job_errors_are_retried_a_bounded_number_of_times(
    sim: Simulator, client: ZStackClient, call_log: CallLog, code: str
) -> None:
    sim.faults.set_error_rate("SetVmClockTrack", 1.0, code)
    with pytest.raises(ZStackError) as caught:
        await client.set_clock_track(sim.state.vm_uuids()[0], "guest")
    assert caught.value.code == code
    assert sim.stats.calls["SetVmClockTrack"] == client.options.retry_attempts
    assert call_log.codes("SetVmClockTrack") == [code] * client.options.retry_attempts


async def test_30_percent_sys_1001_all_succeed_with_one_write_each(
    sim: Simulator, make_client: MakeClient, call_log: CallLog
) -> None:
    client = make_client(sim.endpoint, retry_attempts=10)
    sim.faults.set_error_rate("SetVmClockTrack", 0.3)
    uuids = sim.state.vm_uuids()
    await asyncio.gather(*(client.set_clock_track(u, "guest") for u in uuids))
    assert sorted(w.uuid for w in sim.stats.writes) == sorted(uuids)
    assert "SYS.1001" in call_log.codes("SetVmClockTrack")  # failures happened and were absorbed
    assert sim.stats.calls["SetVmClockTrack"] == len(uuids) + call_log.codes("SetVmClockTrack").count(
        "SYS.1001"
    )


async def test_a_purged_job_is_reported_as_expired(make_client: MakeClient) -> None:
    async with Simulator(SimulatorConfig(vms=1, job_latency=0.05, job_retention=0.0)) as sim:
        client = make_client(sim.endpoint)
        with pytest.raises(ZStackError) as caught:
            await client.set_clock_track(sim.state.vm_uuids()[0], "guest")
        assert caught.value.code == JOB_EXPIRED
        assert sim.stats.calls["SetVmClockTrack"] == 1  # the job did run; resubmitting is not our call


async def test_transport_failures_are_retried_then_raised(make_client: MakeClient, call_log: CallLog) -> None:
    client = make_client("http://127.0.0.1:9", retry_attempts=3)  # discard port: nothing listens
    with pytest.raises(ZStackError) as caught:
        await client.get_version()
    assert caught.value.code == TRANSPORT
    assert call_log.codes("GetVersion") == [TRANSPORT] * 3


async def submitted(sim: Simulator) -> None:
    """Until the simulator has taken the first SetVmClockTrack (it offers counters, not events)."""
    while sim.stats.calls["SetVmClockTrack"] == 0:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def test_an_outage_while_polling_never_submits_the_job_twice(make_client: MakeClient) -> None:
    """Polls failing for longer than a few fast retries must not turn into a resubmit of a live job."""
    async with Simulator(SimulatorConfig(vms=1, job_latency=1.0)) as sim:
        client = make_client(sim.endpoint, retry_base_delay=0.05, retry_max_delay=0.2)
        await client.login()

        async def outage() -> None:
            await submitted(sim)
            sim.faults.drop_rate = 1.0
            await asyncio.sleep(0.8)
            sim.faults.drop_rate = 0.0

        blip = asyncio.create_task(outage())
        await client.set_clock_track(sim.state.vm_uuids()[0], "guest")
        await blip
        assert sim.stats.calls["SetVmClockTrack"] == 1
        assert len(sim.stats.writes) == 1


async def test_a_job_unreachable_past_its_deadline_is_terminal_not_resubmitted(
    make_client: MakeClient,
) -> None:
    """The job is stored, so once its apiTimeout has passed we report it instead of queueing a copy."""
    async with Simulator(SimulatorConfig(vms=1, job_latency=5.0, api_timeout=0.5)) as sim:
        client = make_client(sim.endpoint, request_timeout=0.2, poll_max_delay=0.1, retry_max_delay=0.1)
        await client.login()

        async def node_goes_silent() -> None:
            await submitted(sim)
            sim.faults.drop_rate = 1.0

        silence = asyncio.create_task(node_goes_silent())
        with pytest.raises(ZStackError) as caught:
            await client.set_clock_track(sim.state.vm_uuids()[0], "guest")
        await silence
        sim.faults.drop_rate = 0.0
        assert caught.value.code == JOB_TIMEOUT
        assert not caught.value.retryable
        assert sim.stats.calls["SetVmClockTrack"] == 1

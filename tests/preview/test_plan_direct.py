"""`vmclock plan` against the real simulator (a separate process), reached directly with `--endpoint`.

Every test runs the CLI as a user does and checks what it prints against the simulator's own view of the
fleet; after each test the simulator's call log must show reads only (no SetVmClockTrack, no other write).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import SimulatorProcess, SimVm
from harness.credentials import RunCredentials
from harness.objects import ALLOWED_ENDPOINTS, account_secret, connection, policy
from harness.plan import PlanRun, run_plan, selector_policy, write_manifests

EXIT_NO_CHANGES, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
WINDOWS = ("Windows", "WindowsVirtio")
# Every API a plan may call: logins, the version, and queries. Anything else would be a write.
READ_APIS = {
    "LogInByAccount",
    "LogOut",
    "GetVersion",
    "IsReadyToGo",
    "QueryVmInstance",
    "QueryResourceConfig",
    "QueryGlobalConfig",
    "QuerySystemTag",
}
UNKNOWN_VM = "0123456789abcdef0123456789abcdef"
NAMESPACE = "plan-test"
CI_STEP = Path(__file__).resolve().parents[2] / "examples" / "ci" / "vmclock-plan.sh"


@pytest.fixture(scope="module")
def credentials() -> RunCredentials:
    return RunCredentials()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, credentials: RunCredentials) -> Iterator[SimulatorProcess]:
    process = SimulatorProcess(
        log_path=tmp_path_factory.mktemp("simulator") / "simulator.log",
        vms=60,
        seed=4,
        accounts=credentials.simulator_accounts,
        access_keys=credentials.simulator_access_keys,
    )
    with process:
        yield process


@pytest.fixture(autouse=True)
def reads_only(sim: SimulatorProcess) -> Iterator[None]:
    """Whatever a test plans, the simulator saw no write."""
    sim.admin.reset_stats()
    yield
    stats = sim.admin.stats()
    assert stats.writes == []
    assert set(stats.calls) <= READ_APIS, f"calls other than reads: {set(stats.calls) - READ_APIS}"


@pytest.fixture
def fleet(sim: SimulatorProcess) -> list[SimVm]:
    return sim.admin.vms()


Plan = Callable[..., PlanRun]


@pytest.fixture
def plan(sim: SimulatorProcess, credentials: RunCredentials, tmp_path: Path) -> Plan:
    """plan(manifests, *flags, env=None): `vmclock plan -o json` of `manifests` through `--endpoint`."""

    def run(manifests: list[dict[str, Any]], *flags: str, env: dict[str, str] | None = None) -> PlanRun:
        path = write_manifests(tmp_path / "policies.yaml", manifests)
        account = {"ZSTACK_ACCOUNT_NAME": credentials.account, "ZSTACK_PASSWORD": credentials.password}
        args = ["-f", str(path), "-n", NAMESPACE, "--endpoint", sim.endpoint, "--allow-insecure-endpoints"]
        return run_plan([*args, "-o", "json", *flags], env=account if env is None else env)

    return run


def pick(fleet: list[SimVm], *, platforms: tuple[str, ...], state: str, track: str) -> SimVm:
    found = [vm for vm in fleet if vm.platform in platforms and vm.state == state and vm.track == track]
    assert found, f"the seeded fleet has no {platforms} VM {state} on {track}"
    return found[0]


def test_uuid_policy_shows_changes_in_sync_missing_inert_and_pending_restart(
    plan: Plan, fleet: list[SimVm]
) -> None:
    running = pick(fleet, platforms=WINDOWS, state="Running", track="host")
    stopped = pick(fleet, platforms=WINDOWS, state="Stopped", track="host")
    linux = pick(fleet, platforms=("Linux",), state="Running", track="host")
    in_sync = pick(fleet, platforms=WINDOWS, state="Running", track="guest")
    uuids = [running.uuid, stopped.uuid, linux.uuid, in_sync.uuid, UNKNOWN_VM]

    result = plan([policy("windows", "guest", uuids)])

    assert result.code == EXIT_CHANGES, result.output
    vms = {vm["uuid"]: vm for vm in result.policy("windows")["vms"]}
    assert {u: vm["action"] for u, vm in vms.items()} == {
        running.uuid: "change",
        stopped.uuid: "change",
        linux.uuid: "change",
        in_sync.uuid: "inSync",
        UNKNOWN_VM: "notFound",
    }
    assert (vms[running.uuid]["currentTrack"], vms[running.uuid]["targetTrack"]) == ("host", "guest")
    assert [u for u, vm in vms.items() if vm.get("pendingRestart")] == [running.uuid, linux.uuid]
    assert [u for u, vm in vms.items() if vm.get("inert")] == [linux.uuid]
    summary = result.policy("windows")["summary"]
    assert (summary["change"], summary["inSync"], summary["notFound"]) == (3, 1, 1)
    assert (summary["inert"], summary["pendingRestart"]) == (1, 2)
    assert result.document()["changes"] == 3


def test_selector_matches_as_zstack_says_and_leaves_vms_named_by_uuid_to_their_policy(
    plan: Plan, fleet: list[SimVm]
) -> None:
    windows = [vm for vm in fleet if vm.platform in WINDOWS]
    named = next(vm for vm in windows if vm.track == "host")

    result = plan(
        [
            selector_policy("all-windows", "guest", {"platforms": list(WINDOWS)}),
            policy("exception", "host", [named.uuid]),
        ]
    )

    assert result.code == EXIT_CHANGES, result.output
    selector = result.policy("all-windows")
    assert selector["matched"] == len(windows)
    expected = {vm.uuid: "inSync" if vm.track == "guest" else "change" for vm in windows}
    expected[named.uuid] = "ownedElsewhere"
    assert result.actions("all-windows") == expected
    owned = next(vm for vm in selector["vms"] if vm["uuid"] == named.uuid)
    assert (owned["owner"], owned["ownerTrack"]) == (f"{NAMESPACE}/exception", "host")
    assert result.actions("exception") == {named.uuid: "inSync"}


def test_a_selector_that_matches_nothing_says_so(plan: Plan, sim: SimulatorProcess, tmp_path: Path) -> None:
    manifests = [selector_policy("nothing", "guest", {"namePattern": "no-such-vm-*"})]

    as_json = plan(manifests)
    as_table = plan(manifests, "-o", "table")

    assert as_json.code == EXIT_NO_CHANGES, as_json.output
    assert as_json.policy("nothing")["matched"] == 0
    assert as_json.policy("nothing")["vms"] == []
    assert as_table.code == EXIT_NO_CHANGES, as_table.output
    assert "the selector matches no VM in ZStack now" in as_table.stdout


def test_the_older_policy_owns_a_vm_both_want_with_different_tracks(plan: Plan, fleet: list[SimVm]) -> None:
    shared = pick(fleet, platforms=WINDOWS, state="Running", track="host")

    # Both are new, so equally old: the tie-break (namespace, then name) makes "a-first" the older one.
    result = plan([policy("b-second", "guest", [shared.uuid]), policy("a-first", "host", [shared.uuid])])

    assert result.code == EXIT_NO_CHANGES, result.output
    assert result.actions("a-first") == {shared.uuid: "inSync"}
    assert result.actions("b-second") == {shared.uuid: "ownedElsewhere"}
    owned = result.policy("b-second")["vms"][0]
    assert (owned["owner"], owned["ownerTrack"]) == (f"{NAMESPACE}/a-first", "host")


def test_observe_and_paused_policies_write_nothing(plan: Plan, fleet: list[SimVm]) -> None:
    differs = pick(fleet, platforms=WINDOWS, state="Running", track="host")
    paused = policy("paused", "guest", [differs.uuid], annotations={"vmclock.zstack.io/paused": "TRUE"})

    result = plan([policy("observe", "guest", [differs.uuid], management="Observe"), paused])

    assert result.code == EXIT_NO_CHANGES, result.output
    assert result.actions("observe") == {differs.uuid: "notWritten"}
    assert result.actions("paused") == {differs.uuid: "notWritten"}
    assert result.document()["changes"] == 0


def test_nothing_to_change_exits_zero_and_says_so(plan: Plan, fleet: list[SimVm]) -> None:
    guests = [vm.uuid for vm in fleet if vm.track == "guest"][:5]

    result = plan([policy("settled", "guest", guests)], "-o", "table")

    assert result.code == EXIT_NO_CHANGES, result.output
    assert "No changes" in result.stdout


def test_yaml_output_is_the_json_document(plan: Plan, fleet: list[SimVm]) -> None:
    manifests = [policy("some", "guest", [vm.uuid for vm in fleet[:6]])]

    as_json, as_yaml = plan(manifests), plan(manifests, "-o", "yaml")

    assert as_yaml.code == as_json.code == EXIT_CHANGES
    assert yaml.safe_load(as_yaml.stdout) == as_json.document()


def test_manifests_from_stdin_skip_other_kinds_and_open_lists(
    sim: SimulatorProcess, credentials: RunCredentials, fleet: list[SimVm]
) -> None:
    """What `kustomize build | vmclock plan -f -` sends: the Secret and connection too, and List documents."""
    host = pick(fleet, platforms=WINDOWS, state="Running", track="host")
    stream = [
        account_secret("zstack-credentials", "someone", "not-used", allow=sim.endpoint),
        connection("default", sim.endpoint, "zstack-credentials"),
        {"apiVersion": "v1", "kind": "List", "items": [policy("listed", "guest", [host.uuid])]},
    ]
    env = {"ZSTACK_ACCOUNT_NAME": credentials.account, "ZSTACK_PASSWORD": credentials.password}
    args = [
        "-f",
        "-",
        "-n",
        NAMESPACE,
        "--endpoint",
        sim.endpoint,
        "--allow-insecure-endpoints",
        "-o",
        "json",
    ]

    result = run_plan(args, env=env, stdin=yaml.safe_dump_all(stream))

    assert result.code == EXIT_CHANGES, result.output
    assert [p["name"] for p in result.document()["policies"]] == ["listed"]
    assert result.actions("listed") == {host.uuid: "change"}


def test_a_directory_holds_several_manifests(
    sim: SimulatorProcess, credentials: RunCredentials, fleet: list[SimVm], tmp_path: Path
) -> None:
    host = pick(fleet, platforms=WINDOWS, state="Running", track="host")
    guest = pick(fleet, platforms=WINDOWS, state="Running", track="guest")
    write_manifests(tmp_path / "a.yaml", [policy("first", "guest", [host.uuid])])
    write_manifests(tmp_path / "b.yml", [policy("second", "guest", [guest.uuid])])
    (tmp_path / "README.md").write_text("not a manifest")
    env = {"ZSTACK_ACCOUNT_NAME": credentials.account, "ZSTACK_PASSWORD": credentials.password}
    args = ["-f", str(tmp_path), "-n", NAMESPACE, "--endpoint", sim.endpoint, "--allow-insecure-endpoints"]

    result = run_plan([*args, "-o", "json"], env=env)

    assert result.code == EXIT_CHANGES, result.output
    assert [p["name"] for p in result.document()["policies"]] == ["first", "second"]
    assert (result.actions("first"), result.actions("second")) == (
        {host.uuid: "change"},
        {guest.uuid: "inSync"},
    )


def test_access_key_credentials_from_the_environment(
    plan: Plan, fleet: list[SimVm], credentials: RunCredentials
) -> None:
    keys = {"ZSTACK_ACCESS_KEY_ID": credentials.key_id, "ZSTACK_ACCESS_KEY_SECRET": credentials.key_secret}
    host = pick(fleet, platforms=WINDOWS, state="Running", track="host")

    result = plan([policy("signed", "guest", [host.uuid])], env=keys)

    assert result.code == EXIT_CHANGES, result.output
    assert result.actions("signed") == {host.uuid: "change"}
    assert credentials.leaks_in(result.output) == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("invalid spec", ["spec.track", "allowed values: guest, host"]),
        ("no credentials", ["ZSTACK_ACCOUNT_NAME", "accountName+password"]),
        ("rejected login", ["ID.1000"]),
    ],
)
def test_errors_exit_one_saying_what_to_fix_and_no_secret(
    plan: Plan, fleet: list[SimVm], credentials: RunCredentials, case: str, expected: list[str]
) -> None:
    account = {"ZSTACK_ACCOUNT_NAME": credentials.account}
    env = {
        "invalid spec": {**account, "ZSTACK_PASSWORD": credentials.password},
        "no credentials": {},
        "rejected login": {**account, "ZSTACK_PASSWORD": credentials.wrong_password},
    }[case]
    track = "utc" if case == "invalid spec" else "guest"

    result = plan([policy("p", track, [fleet[0].uuid])], env=env)

    assert result.code == EXIT_ERROR
    assert [text for text in expected if text not in result.stderr] == []
    assert credentials.leaks_in(result.output) == []


def test_a_successful_plan_shows_no_secret(
    plan: Plan, fleet: list[SimVm], credentials: RunCredentials
) -> None:
    manifests = [policy("p", "guest", [vm.uuid for vm in fleet[:10]])]

    outputs = [plan(manifests, "-o", output).output for output in ("table", "json", "yaml")]

    assert [credentials.leaks_in(text) for text in outputs] == [[], [], []]


def test_plain_http_needs_the_same_opt_in_as_the_operator(
    sim: SimulatorProcess, credentials: RunCredentials, fleet: list[SimVm], tmp_path: Path
) -> None:
    path = write_manifests(tmp_path / "p.yaml", [policy("p", "guest", [fleet[0].uuid])])
    env = {"ZSTACK_ACCOUNT_NAME": credentials.account, "ZSTACK_PASSWORD": credentials.password}

    result = run_plan(["-f", str(path), "-n", NAMESPACE, "--endpoint", sim.endpoint], env=env)

    assert result.code == EXIT_ERROR
    assert "InsecureEndpoint" in result.stderr
    assert "--allow-insecure-endpoints" in result.stderr


def test_a_secret_manifest_as_credentials_file_keeps_its_allowed_endpoints(
    plan: Plan, sim: SimulatorProcess, credentials: RunCredentials, fleet: list[SimVm], tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed.yaml"
    elsewhere = tmp_path / "elsewhere.yaml"
    secret = account_secret(
        "zstack-credentials", credentials.account, credentials.password, allow=sim.endpoint
    )
    allowed.write_text(yaml.safe_dump(secret))
    secret["metadata"]["annotations"][ALLOWED_ENDPOINTS] = "https://zstack.example:8080"
    elsewhere.write_text(yaml.safe_dump(secret))
    host = pick(fleet, platforms=WINDOWS, state="Running", track="host")
    manifests = [policy("p", "guest", [host.uuid])]

    permitted = plan(manifests, "--credentials-file", str(allowed), env={})
    refused = plan(manifests, "--credentials-file", str(elsewhere), env={})

    assert permitted.code == EXIT_CHANGES, permitted.output
    assert permitted.actions("p") == {host.uuid: "change"}
    assert refused.code == EXIT_ERROR
    assert "EndpointNotAllowed" in refused.stderr
    assert "vmclock.zstack.io/allowed-endpoints" in refused.stderr, "says how the Secret's owner allows it"
    assert "zstack.example" not in refused.stderr, "without showing the Secret's other entries"
    assert credentials.leaks_in(permitted.output + refused.output) == []


def test_vms_whose_track_zstack_cannot_tell_make_the_plan_an_error(
    plan: Plan, sim: SimulatorProcess, fleet: list[SimVm]
) -> None:
    sim.admin.set_faults(error_rates={"QueryResourceConfig": 1.0}, code="SYS.1001")
    try:
        result = plan([policy("p", "guest", [vm.uuid for vm in fleet[:3]])])
    finally:
        sim.admin.clear_faults()

    assert result.code == EXIT_ERROR
    assert set(result.actions("p").values()) == {"unreadable"}
    assert "could not tell the track of 3 VMs" in result.stderr
    assert "SYS.1001" in result.stderr


def test_the_example_ci_step_reports_changes_and_fails_only_when_asked(
    sim: SimulatorProcess, credentials: RunCredentials, fleet: list[SimVm], tmp_path: Path
) -> None:
    host = pick(fleet, platforms=WINDOWS, state="Running", track="host")
    settled, changing = tmp_path / "settled", tmp_path / "changing"
    settled.mkdir(), changing.mkdir()
    write_manifests(settled / "p.yaml", [policy("p", "host", [host.uuid])])
    write_manifests(changing / "p.yaml", [policy("p", "guest", [host.uuid])])
    env = {
        **os.environ,
        "ZSTACK_ACCOUNT_NAME": credentials.account,
        "ZSTACK_PASSWORD": credentials.password,
        "VMCLOCK_PLAN_FLAGS": f"-n {NAMESPACE} --endpoint {sim.endpoint} --allow-insecure-endpoints",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PLAN_DIR": str(tmp_path / "out"),
    }

    def step(manifests: Path, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(CI_STEP)],
            env={**env, "MANIFESTS": str(manifests), **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    quiet, review, gate = step(settled), step(changing), step(changing, FAIL_ON_CHANGES="1")

    assert (quiet.returncode, review.returncode, gate.returncode) == (0, 0, 2), review.stderr
    assert "writes nothing" in quiet.stdout
    assert "writes VM clock tracks" in review.stdout
    assert host.uuid in review.stdout
    assert (tmp_path / "out" / "plan.txt").read_text() in gate.stdout
    assert credentials.leaks_in(quiet.stdout + review.stdout + gate.stdout + gate.stderr) == []


def test_without_endpoint_or_kubeconfig_the_error_says_what_to_give(
    fleet: list[SimVm], tmp_path: Path
) -> None:
    path = write_manifests(tmp_path / "p.yaml", [policy("p", "guest", [fleet[0].uuid])])

    result = run_plan(["-f", str(path), "-n", NAMESPACE], env={"KUBECONFIG": str(tmp_path / "absent")})

    assert result.code == EXIT_ERROR
    assert "no Kubernetes configuration found" in result.stderr
    assert "--endpoint" in result.stderr
    assert "Traceback" not in result.stderr

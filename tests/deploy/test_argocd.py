"""Argo CD customizations: health checks and the "Reconcile now" action, run as Argo CD runs them.

The cases live in Argo CD's own layouts (``health_test.yaml``, ``action_test.yaml`` next to the Lua), so
the directories can be proposed upstream as they are. The argocd-cm snippet must embed the Lua verbatim.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from deploy.argo_lua import (
    BASE_GLOBALS,
    LIBRARIES,
    argo_os_date,
    discovered_actions,
    gopher_number,
    health,
    health_cases,
    load_yaml,
    perform_action,
    run,
)
from deploy.argocd_snippet import ARGOCD, SNIPPET, render_snippet
from vmclock.engine.spec import PAUSED_ANNOTATION, is_paused

HEALTH = ARGOCD / "health" / "vmclock.zstack.io"
ACTIONS = ARGOCD / "actions" / "vmclock.zstack.io" / "VmClockPolicy"
KINDS = ("VmClockPolicy", "ZStackConnection")
# docs/api.md "Argo CD health": the connection reasons after which only a person can help. A policy whose
# connection has one of them is Degraded; the others (and NotFound: the connection may come in the same sync)
# are Progressing.
TERMINAL_CONNECTION_REASONS = {
    "AuthFailed",
    "InvalidSecret",
    "SecretNotFound",
    "EndpointNotAllowed",
    "InsecureEndpoint",
    "Unsupported",
    "NamespaceNotEnabled",
}
RETRIED_CONNECTION_REASONS = {"Connected", "NotFound", "Unreachable", "NotReady"}
# Ready reasons the fixtures must show as Degraded (ConnectionNotReady and PartiallyApplied only sometimes).
TERMINAL_REASONS = {
    "VmClockPolicy": {
        "InvalidSpec",
        "VmNotFound",
        "Conflict",
        "ConnectionNotReady",
        "Drifted",
        "PartiallyApplied",
    },
    "ZStackConnection": TERMINAL_CONNECTION_REASONS,
}
REQUESTED_AT = "vmclock.zstack.io/reconcile-requested-at"
NORMALIZED_TIME = "0001-01-01T00:00:00Z"  # what the expected outputs hold, as in Argo CD's own action tests
ISO_UTC_SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def ready_reason(obj: dict[str, Any]) -> str | None:
    conditions = obj.get("status", {}).get("conditions", [])
    return next((condition["reason"] for condition in conditions if condition["type"] == "Ready"), None)


HEALTH_CASES = [
    pytest.param(kind, obj, expected, id=f"{kind}/{path}")
    for kind in KINDS
    for path, obj, expected in health_cases(HEALTH / kind)
]
POLICY = HEALTH / "VmClockPolicy"
CONNECTION = HEALTH / "ZStackConnection"
# Every letter-case spelling of "true", and values that only look like it.
TRUE_SPELLINGS = ["".join(letters) for letters in itertools.product(*((c, c.upper()) for c in "true"))]
NOT_TRUE = [
    "",
    " true",
    "true ",
    "\ttrue",
    "true\n",
    "yes",
    "1",
    "on",
    "tru",
    "truee",
    "ttrue",
    "'true'",
    "TRUE.",
]


def load_testdata(directory: Path, name: str) -> dict[str, Any]:
    return copy.deepcopy(load_yaml(directory / "testdata" / name))


def with_ready_reason(obj: dict[str, Any], reason: str) -> dict[str, Any]:
    for condition in obj["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition["reason"] = reason
    return obj


ACTION_SPEC = load_yaml(ACTIONS / "action_test.yaml")


@pytest.mark.parametrize(("kind", "obj", "expected"), HEALTH_CASES)
def test_health_matches_the_health_test_yaml(
    kind: str, obj: dict[str, Any], expected: dict[str, str]
) -> None:
    assert health(HEALTH / kind, obj) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_health_fixtures_cover_every_outcome_and_terminal_reason(kind: str) -> None:
    cases = health_cases(HEALTH / kind)
    outcomes = {expected["status"] for _, _, expected in cases}
    degraded_reasons = {ready_reason(obj) for _, obj, expected in cases if expected["status"] == "Degraded"}
    assert outcomes >= {"Healthy", "Progressing", "Degraded"} | (
        {"Suspended"} if kind == "VmClockPolicy" else set()
    )
    assert degraded_reasons == TERMINAL_REASONS[kind]


@pytest.mark.parametrize("name", ["no-status.yaml", "healthy.yaml", "degraded-conflict.yaml"])
def test_paused_annotation_is_suspended_exactly_when_the_operator_pauses(name: str) -> None:
    assert len(set(TRUE_SPELLINGS)) == 16
    for value in TRUE_SPELLINGS + NOT_TRUE:
        obj = load_testdata(POLICY, name)
        obj["metadata"]["annotations"] = {PAUSED_ANNOTATION: value}
        suspended = health(POLICY, obj)["status"] == "Suspended"
        assert suspended == is_paused(obj["metadata"]["annotations"]), repr(value)
    assert sum(is_paused({PAUSED_ANNOTATION: value}) for value in TRUE_SPELLINGS + NOT_TRUE) == 16


@pytest.mark.parametrize("reason", sorted(TERMINAL_CONNECTION_REASONS | RETRIED_CONNECTION_REASONS))
def test_connection_not_ready_is_degraded_only_when_the_connection_needs_a_person(reason: str) -> None:
    obj = load_testdata(POLICY, "degraded-connection-not-ready.yaml")
    obj["status"]["connection"] = {"name": "default", "reason": reason}
    expected = "Degraded" if reason in TERMINAL_CONNECTION_REASONS else "Progressing"
    assert health(POLICY, obj)["status"] == expected


def test_connection_not_ready_without_status_connection_is_progressing() -> None:
    obj = load_testdata(POLICY, "degraded-connection-not-ready.yaml")
    del obj["status"]["connection"]  # written by operators before status.connection existed
    assert health(POLICY, obj)["status"] == "Progressing"


@pytest.mark.parametrize("reason", sorted(TERMINAL_CONNECTION_REASONS | {"Unreachable", "NotReady"}))
def test_a_policy_is_degraded_by_its_connection_exactly_when_the_connection_is(reason: str) -> None:
    connection = with_ready_reason(load_testdata(CONNECTION, "degraded-auth-failed.yaml"), reason)
    policy = load_testdata(POLICY, "degraded-connection-not-ready.yaml")
    policy["status"]["connection"] = {"name": "default", "reason": reason}
    assert health(POLICY, policy)["status"] == health(CONNECTION, connection)["status"]


@pytest.mark.parametrize(
    ("failed", "pending", "expected"),
    [(1, 0, "Degraded"), (3, 2, "Progressing"), (0, 2, "Progressing"), (0, 0, "Progressing")],
)
def test_partially_applied_is_degraded_once_only_failures_are_left(
    failed: int, pending: int, expected: str
) -> None:
    obj = load_testdata(POLICY, "partially-applied.yaml")
    obj["status"]["summary"].update(failed=failed, pending=pending)
    assert health(POLICY, obj)["status"] == expected


def test_partially_applied_without_a_summary_is_progressing() -> None:
    obj = load_testdata(POLICY, "degraded-partially-applied-failed.yaml")
    del obj["status"]["summary"]
    assert health(POLICY, obj)["status"] == "Progressing"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [pytest.param(obj, expected, id=path) for path, obj, expected in health_cases(POLICY)],
)
def test_policy_health_never_reads_the_spec(obj: dict[str, Any], expected: dict[str, str]) -> None:
    del obj["spec"]  # vmUuids or selector: neither may matter to the health check
    assert health(POLICY, obj) == expected


def documented_reasons(kind: str) -> dict[str, set[str]]:
    """Reason names (backticked CamelCase) in the "when" column of docs/api.md's health table, by health."""
    section = (ARGOCD.parents[1] / "docs" / "api.md").read_text().split("## Argo CD health")[1]
    table = section.split(f"\n{kind}:\n")[1].strip().split("\n\n")[0]
    reasons: dict[str, set[str]] = {}
    for row in table.splitlines()[2:]:
        _, when, outcome, _ = (cell.strip() for cell in row.strip("|").split("|"))
        names = {name for name in re.findall(r"`([^`]+)`", when) if re.fullmatch(r"[A-Z][A-Za-z]+", name)}
        reasons.setdefault(outcome, set()).update(names)
    return reasons


def test_docs_health_table_names_the_reasons_the_lua_uses() -> None:
    policy, connection = documented_reasons("VmClockPolicy"), documented_reasons("ZStackConnection")
    assert policy["Degraded"] == TERMINAL_REASONS["VmClockPolicy"] | TERMINAL_CONNECTION_REASONS
    assert policy["Progressing"] >= RETRIED_CONNECTION_REASONS
    assert connection["Degraded"] == TERMINAL_CONNECTION_REASONS
    assert connection["Progressing"] >= RETRIED_CONNECTION_REASONS - {"Connected", "NotFound"}


@pytest.mark.parametrize("case", ACTION_SPEC["discoveryTests"], ids=lambda case: case["inputPath"])
def test_action_discovery_matches_the_action_test_yaml(case: dict[str, Any]) -> None:
    assert discovered_actions(ACTIONS, load_yaml(ACTIONS / case["inputPath"])) == case["result"]


@pytest.mark.parametrize("case", ACTION_SPEC["actionTests"], ids=lambda case: case["inputPath"])
def test_reconcile_action_stamps_the_current_utc_time(case: dict[str, Any]) -> None:
    before = int(time.time())
    result = perform_action(ACTIONS, case["action"], load_yaml(ACTIONS / case["inputPath"]))
    after = time.time()
    stamp = result["metadata"]["annotations"][REQUESTED_AT]
    assert ISO_UTC_SECOND.match(stamp), stamp
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
    assert before <= moment <= after
    result["metadata"]["annotations"][REQUESTED_AT] = NORMALIZED_TIME
    assert result == load_yaml(ACTIONS / case["expectedOutputPath"])


@pytest.mark.parametrize(
    "forbidden",
    [
        'return string.format("%d", 1)',
        'return ("x"):upper()',
        "return math.floor(1.5)",
        'return io.open("/etc/hostname")',
        "return os.time()",
        'return require("os").getenv("HOME")',
        'return require("os").execute("true")',
        'return require("io")',
        'return require("string")',
        'return package.loadlib("libc.so.6", "puts")',
        "return debug.traceback()",
        "return coroutine.create(print)",
        "return table.foreach({}, print)",
        "return gcinfo()",
        'return python.eval("1")',
    ],
)
def test_sandbox_lacks_what_argo_cd_does_not_open(forbidden: str, tmp_path: Path) -> None:
    script = tmp_path / "probe.lua"
    script.write_text(forbidden)
    with pytest.raises(lua51.LuaError):
        run(script, {})


def test_sandbox_offers_what_argo_cd_opens(tmp_path: Path) -> None:
    script = tmp_path / "probe.lua"
    script.write_text(
        'local os = require("os")\n'
        "local names = {}\n"
        "for name in pairs(os) do names[#names + 1] = name end\n"
        "table.sort(names)\n"
        'return {os.date("!%Y"), table.concat({obj.a, "b"}, "-"), tostring(#obj.list), type(os.time()),\n'
        '  table.concat(names, ","), loadstring("return 1 + 1")(), load(function() return nil end) ~= nil,\n'
        '  type(getfenv(1).obj), _VERSION, type(actionParams), getmetatable("") == nil}\n'
    )
    year = str(datetime.datetime.now(datetime.UTC).year)
    result = run(script, {"a": "a", "list": [1, 2, 3]})
    assert result == [year, "a-b", "3", "number", "date,time", 2, True, "table", "Lua 5.1", "table", True]


def test_sandbox_globals_are_gopher_luas_base_library(tmp_path: Path) -> None:
    script = tmp_path / "probe.lua"
    script.write_text(
        "local names = {}\nfor name in pairs(_G) do names[#names + 1] = name end\nreturn names\n"
    )
    # Nothing of lupa's Lua 5.1 (gcinfo, io, os, string, python...) is left over.
    extras = ["_GOPHER_LUA_VERSION", "actionParams", "obj"]
    assert sorted(run(script, {})) == sorted(BASE_GLOBALS + LIBRARIES + extras)


# Lua 5.1 source, and what gopher-lua's tostring prints for it (checked against gopher-lua v1.1.2).
GOPHER_NUMBERS = {
    "1": "1",
    "2.0": "2",
    "0.5": "0.5",
    "1/3": "0.3333333333333333",
    "0.1 + 0.2": "0.30000000000000004",
    "1e15": "1000000000000000",
    "2^53": "9007199254740992",
    "-(2^63)": "-9223372036854775808",
    "2^63": "9.223372036854776e+18",
    "1e20": "1e+20",
    "123456.5": "123456.5",
    "1234567.5": "1.2345675e+06",
    "0.0001": "0.0001",
    "0.00001": "1e-05",
    "-2.5": "-2.5",
    "0/0": "NaN",
    "1/0": "+Inf",
    "-1/0": "-Inf",
}


def test_sandbox_prints_numbers_as_gopher_lua(tmp_path: Path) -> None:
    script = tmp_path / "probe.lua"
    script.write_text(
        "return {" + ", ".join(f"tostring({source})" for source in GOPHER_NUMBERS) + ","
        ' table.concat({1e15, 1/3, "x"}, ","), tostring(obj.generation), tostring(obj.zero)}\n'
    )
    expected = [*GOPHER_NUMBERS.values(), "1000000000000000,0.3333333333333333,x", "7", "0"]
    # -0.0 comes from obj: Lua 5.1 would merge a -0.0 literal with the 0 constant of 1/0 in the same chunk.
    assert run(script, {"generation": 7, "zero": -0.0}) == expected


def test_gopher_number_matches_python_float_parsing() -> None:
    for value in (0.1, 2.5e-7, 6.02214076e23, -123456.789, 1e-300, 5e-324):
        assert float(gopher_number(value)) == value


def test_sandbox_concat_rejects_holes_as_lua_does(tmp_path: Path) -> None:
    script = tmp_path / "probe.lua"
    script.write_text('return table.concat({"a", nil, "c"}, ",", 1, 3)\n')
    with pytest.raises(lua51.LuaError):
        run(script, {})


def test_argo_os_date_reproduces_argo_cd_strftime() -> None:
    assert argo_os_date("!%F %T %%")[10:] == " %T %"  # no %T flag in Argo CD: kept literally
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", argo_os_date("!%Y-%m-%dT%XZ"))


def test_argo_os_date_renders_a_given_time_in_local_time_despite_bang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        assert argo_os_date("!%Y-%m-%d %X", 86_399) == "1970-01-02 07:59:59"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_argocd_cm_snippet_is_generated_from_the_lua_files() -> None:
    assert SNIPPET.read_text() == render_snippet(), "run: .venv/bin/python tests/deploy/argocd_snippet.py"


def test_argocd_cm_snippet_embeds_each_lua_file_verbatim() -> None:
    data = yaml.safe_load(SNIPPET.read_text())["data"]
    group = "vmclock.zstack.io"
    actions = yaml.safe_load(data[f"resource.customizations.actions.{group}_VmClockPolicy"])
    assert {kind: data[f"resource.customizations.health.{group}_{kind}"] for kind in KINDS} == {
        kind: (HEALTH / kind / "health.lua").read_text() for kind in KINDS
    }
    assert actions == {
        "discovery.lua": (ACTIONS / "discovery.lua").read_text(),
        "definitions": [
            {"name": "reconcile", "action.lua": (ACTIONS / "reconcile" / "action.lua").read_text()}
        ],
    }
    assert len(data) == len(KINDS) + 1


def test_example_application_installs_deploy_with_the_sync_options_it_documents() -> None:
    application = load_yaml(ARGOCD / "application.yaml")
    source, destination = application["spec"]["source"], application["spec"]["destination"]
    base = load_yaml(ARGOCD.parent / "base" / "kustomization.yaml")
    crds = [load_yaml(path)["spec"] for path in sorted((ARGOCD.parents[1] / "crds").glob("*.yaml"))]
    assert (ARGOCD.parents[1] / source["path"] / "kustomization.yaml").is_file()
    assert destination["namespace"] == base["namespace"]
    assert {
        "ServerSideApply=true",
        "SkipDryRunOnMissingResource=true",
        "RespectIgnoreDifferences=true",
    } <= set(application["spec"]["syncPolicy"]["syncOptions"])
    ignored = {(item["group"], item["kind"]) for item in application["spec"]["ignoreDifferences"]}
    assert ignored == {(crd["group"], crd["names"]["kind"]) for crd in crds}

"""Argo CD customizations: health checks and the "Reconcile now" action, run as Argo CD runs them.

The cases live in Argo CD's own layouts (``health_test.yaml``, ``action_test.yaml`` next to the Lua), so
the directories can be proposed upstream as they are. The argocd-cm snippet must embed the Lua verbatim.
"""

from __future__ import annotations

import datetime
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from deploy.argo_lua import (
    argo_os_date,
    discovered_actions,
    health,
    health_cases,
    load_yaml,
    perform_action,
    run,
)
from deploy.argocd_snippet import ARGOCD, SNIPPET, render_snippet

HEALTH = ARGOCD / "health" / "vmclock.zstack.io"
ACTIONS = ARGOCD / "actions" / "vmclock.zstack.io" / "VmClockPolicy"
KINDS = ("VmClockPolicy", "ZStackConnection")
# docs/api.md: the reasons after which only a human can help; Argo CD must show them as Degraded.
TERMINAL_REASONS = {
    "VmClockPolicy": {"InvalidSpec", "VmNotFound", "Conflict", "ConnectionNotReady", "Drifted"},
    "ZStackConnection": {"AuthFailed", "InvalidSecret", "SecretNotFound", "Unsupported"},
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
        'return os.getenv("HOME")',
        'return os.execute("true")',
        'return require("io")',
        "return debug.traceback()",
        "return coroutine.create(print)",
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
        'return {os.date("!%Y", 0), table.concat({obj.a, "b"}, "-"), tostring(#obj.list), type(os.time())}\n'
    )
    assert run(script, {"a": "a", "list": [1, 2, 3]}) == ["1970", "a-b", "3", "number"]


def test_argo_os_date_reproduces_argo_cd_strftime() -> None:
    assert argo_os_date("!%Y-%m-%dT%XZ", 86_399) == "1970-01-01T23:59:59Z"
    assert argo_os_date("!%F %T %%", 0) == "1970-01-01 %T %"  # no %T flag in Argo CD: kept literally


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

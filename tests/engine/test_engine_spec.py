from __future__ import annotations

from typing import Any

import pytest

from vmclock.engine.spec import InvalidSpec, PolicySpec, is_paused, parse_policy_spec
from vmclock.zstack.selection import Selector

from .helpers import uuid

GOOD = {"track": "guest", "vmUuids": [uuid(1), uuid(2)]}
BY_SELECTOR = {"track": "guest", "selector": {"platforms": ["Windows"]}}


def test_defaults_follow_the_api_contract() -> None:
    assert parse_policy_spec(GOOD) == PolicySpec(
        track="guest",
        vm_uuids=(uuid(1), uuid(2)),
        connection_name="default",
        management_policy="Enforce",
        deletion_policy="Orphan",
        resync_interval_seconds=None,
    )


def test_every_field_is_read() -> None:
    spec = parse_policy_spec(
        {
            **GOOD,
            "connectionRef": {"name": "zs-prod"},
            "managementPolicy": "Enforce",
            "deletionPolicy": "Restore",
            "resyncIntervalSeconds": 10,
        }
    )
    assert (spec.connection_name, spec.restore, spec.enforce, spec.resync_interval_seconds) == (
        "zs-prod",
        True,
        True,
        10,
    )


@pytest.mark.parametrize(
    ("change", "field", "hint"),
    [
        ({"track": "wall"}, "spec.track", "allowed values: guest, host"),
        ({"track": None}, "spec.track", "allowed values"),
        ({"vmUuids": []}, "spec.vmUuids", "non-empty"),
        ({"vmUuids": "abc"}, "spec.vmUuids", "non-empty list"),
        ({"vmUuids": ["ABCDEF" + uuid(1)[6:]]}, "spec.vmUuids[0]", "32 lowercase hex"),
        ({"vmUuids": [uuid(1), uuid(1)]}, "spec.vmUuids[1]", "listed twice"),
        ({"vmUuids": [uuid(n) for n in range(1001)]}, "spec.vmUuids", "at most 1000"),
        ({"managementPolicy": "Audit"}, "spec.managementPolicy", "Enforce, Observe"),
        ({"deletionPolicy": "Delete"}, "spec.deletionPolicy", "Orphan, Restore"),
        ({"resyncIntervalSeconds": 9}, "spec.resyncIntervalSeconds", "from 10 to 86400"),
        ({"resyncIntervalSeconds": 86401}, "spec.resyncIntervalSeconds", "from 10 to 86400"),
        ({"resyncIntervalSeconds": True}, "spec.resyncIntervalSeconds", "integer"),
        ({"connectionRef": {"name": "Bad_Name"}}, "spec.connectionRef.name", "DNS-1123"),
        ({"connectionRef": "default"}, "spec.connectionRef", "object"),
        ({"managementPolicy": "Observe", "deletionPolicy": "Restore"}, "spec.deletionPolicy", "requires"),
    ],
)
def test_invalid_specs_name_the_field_and_what_is_allowed(
    change: dict[str, Any], field: str, hint: str
) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_policy_spec({**GOOD, **change})
    assert caught.value.field == field
    assert hint in str(caught.value)
    assert str(caught.value).startswith(field)


def test_a_selector_is_read_into_a_typed_value_and_vm_uuids_stay_empty() -> None:
    selector = {
        "platforms": ["Windows", "WindowsVirtio"],
        "zoneUuids": [uuid(10)],
        "clusterUuids": [uuid(11), uuid(12)],
        "namePattern": "win-*_?",
        "userTags": ["clock", "tier::gold"],
        "excludeVmUuids": [uuid(13)],
    }
    spec = parse_policy_spec({"track": "host", "selector": selector, "deletionPolicy": "Restore"})
    assert spec == PolicySpec(
        track="host",
        deletion_policy="Restore",
        selector=Selector(
            platforms=("Windows", "WindowsVirtio"),
            zone_uuids=(uuid(10),),
            cluster_uuids=(uuid(11), uuid(12)),
            name_pattern="win-*_?",
            user_tags=("clock", "tier::gold"),
            exclude_vm_uuids=frozenset({uuid(13)}),
        ),
    )
    assert spec.vm_uuids == ()
    assert parse_policy_spec(GOOD).selector is None


@pytest.mark.parametrize(
    "targets", [{}, {"vm_uuids": (uuid(1),), "selector": Selector(platforms=("Linux",))}]
)
def test_a_policy_spec_has_exactly_one_of_uuids_and_selector(targets: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        PolicySpec(track="guest", **targets)


@pytest.mark.parametrize(
    "selector",
    [{"namePattern": "*"}, {"userTags": ["a"]}, {"zoneUuids": [uuid(1)]}, {"clusterUuids": [uuid(1)]}],
)
def test_any_one_selecting_field_is_enough(selector: dict[str, Any]) -> None:
    assert parse_policy_spec({"track": "guest", "selector": selector}).selector is not None


def _selector(**fields: Any) -> dict[str, Any]:
    return {**BY_SELECTOR, "selector": fields}


@pytest.mark.parametrize(
    ("spec", "field", "hint"),
    [
        ({**GOOD, **BY_SELECTOR}, "spec.selector", "exactly one"),
        ({"track": "guest"}, "spec.vmUuids", "exactly one of spec.vmUuids"),
        ({"track": "guest", "vmUuids": None, "selector": None}, "spec.vmUuids", "exactly one"),
        ({**BY_SELECTOR, "selector": ["Windows"]}, "spec.selector", "must be an object"),
        (_selector(), "spec.selector", "at least one of platforms"),
        (_selector(excludeVmUuids=[uuid(1)]), "spec.selector", "excludeVmUuids alone selects nothing"),
        (_selector(platform=["Windows"]), "spec.selector.platform", "allowed fields: platforms"),
        (_selector(platforms=["windows"]), "spec.selector.platforms[0]", "Windows, WindowsVirtio, Linux"),
        (_selector(platforms=[]), "spec.selector.platforms", "non-empty"),
        (_selector(platforms=["Linux", "Linux"]), "spec.selector.platforms[1]", "listed twice"),
        (_selector(zoneUuids=["ZONE"]), "spec.selector.zoneUuids[0]", "32 lowercase hex"),
        (_selector(clusterUuids=[uuid(n) for n in range(129)]), "spec.selector.clusterUuids", "at most 128"),
        (_selector(zoneUuids=[uuid(n) for n in range(33)]), "spec.selector.zoneUuids", "at most 32"),
        (_selector(namePattern="a=b"), "spec.selector.namePattern", "must not contain ="),
        (_selector(namePattern="x>y"), "spec.selector.namePattern", "operators"),
        (_selector(namePattern="win,*"), "spec.selector.namePattern", "commas"),
        (_selector(namePattern="a!=b"), "spec.selector.namePattern", "operators"),
        (_selector(namePattern="tab\there"), "spec.selector.namePattern", "control characters"),
        (_selector(namePattern=""), "spec.selector.namePattern", "1 to 128 characters"),
        (_selector(namePattern="w" * 129), "spec.selector.namePattern", "1 to 128 characters"),
        (_selector(namePattern=7), "spec.selector.namePattern", "string"),
        (_selector(userTags=["a<b"]), "spec.selector.userTags[0]", "operators"),
        (_selector(userTags=["o'neil"]), "spec.selector.userTags[0]", "quotes"),
        (_selector(userTags=["a\\b"]), "spec.selector.userTags[0]", "backslashes"),
        (_selector(namePattern="o'*"), "spec.selector.namePattern", "quotes"),
        (_selector(userTags=["t" * 65]), "spec.selector.userTags[0]", "1 to 64 characters"),
        (_selector(userTags=[f"t{n}" for n in range(9)]), "spec.selector.userTags", "at most 8"),
        (
            _selector(platforms=["Linux"], excludeVmUuids=[uuid(1), uuid(1)]),
            "spec.selector.excludeVmUuids[1]",
            "listed twice",
        ),
    ],
)
def test_invalid_selectors_name_the_field_and_what_is_allowed(
    spec: dict[str, Any], field: str, hint: str
) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_policy_spec(spec)
    assert caught.value.field == field
    assert hint in str(caught.value)


@pytest.mark.parametrize(
    ("value", "paused"),
    [("true", True), ("True", True), ("tRUe", True), (" TRUE ", False), ("false", False), ("yes", False)],
)
def test_only_true_pauses(value: str, paused: bool) -> None:
    assert is_paused({"vmclock.zstack.io/paused": value}) is paused
    assert is_paused({}) is False

from __future__ import annotations

from typing import Any

import pytest

from vmclock.engine.spec import InvalidSpec, PolicySpec, is_paused, parse_policy_spec

from .helpers import uuid

GOOD = {"track": "guest", "vmUuids": [uuid(1), uuid(2)]}


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


@pytest.mark.parametrize(
    ("value", "paused"),
    [("true", True), ("True", True), ("tRUe", True), (" TRUE ", False), ("false", False), ("yes", False)],
)
def test_only_true_pauses(value: str, paused: bool) -> None:
    assert is_paused({"vmclock.zstack.io/paused": value}) is paused
    assert is_paused({}) is False

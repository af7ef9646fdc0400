"""The predicate that picks the policy watch events that enqueue a reconcile (kopfapp/triggers.py).

Events are fed as kopf delivers them: type None for its listing, then ADDED / MODIFIED / DELETED, each with
the object as the API server sent it; `note` is what the handler calls, `check` what kopf's `when=` runs.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vmclock.engine.spec import PAUSED_ANNOTATION, RECONCILE_REQUESTED_ANNOTATION
from vmclock.kopfapp.triggers import Trigger, Triggers, settled_at_start

Body = dict[str, Any]


def policy(uid: str = "u1", generation: int = 1, **annotations: str) -> Body:
    return {
        "apiVersion": "vmclock.zstack.io/v1alpha1",
        "kind": "VmClockPolicy",
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": uid,
            "generation": generation,
            "resourceVersion": "1",
            "annotations": dict(annotations),
        },
        "spec": {"track": "guest", "vmUuids": ["0" * 32]},
    }


def with_status(body: Body, observed: int) -> Body:
    """The object after one of our status writes: a new resourceVersion and status, nothing else."""
    written = copy.deepcopy(body)
    written["metadata"]["resourceVersion"] = str(int(written["metadata"]["resourceVersion"]) + 1)
    written["status"] = {"observedGeneration": observed, "conditions": [{"type": "Ready", "status": "True"}]}
    return written


def annotated(body: Body, key: str, value: str | None) -> Body:
    changed = copy.deepcopy(body)
    annotations = changed["metadata"]["annotations"]
    if value is None:
        annotations.pop(key, None)
    else:
        annotations[key] = value
    return changed


@pytest.mark.parametrize(("event_type", "trigger"), [(None, Trigger.LISTED), ("ADDED", Trigger.NEW)])
def test_first_sight_of_a_uid_asks_and_says_whether_it_came_from_the_listing(
    event_type: str | None, trigger: Trigger
) -> None:
    triggers = Triggers()
    assert triggers.check(event_type, policy()) is trigger
    assert triggers.note(event_type, policy()) is trigger


def test_our_own_status_writes_never_ask() -> None:
    triggers = Triggers()
    body = policy()
    triggers.note("ADDED", body)
    for observed in (0, 1, 1):
        body = with_status(body, observed)
        assert triggers.check("MODIFIED", body) is None
        assert triggers.note("MODIFIED", body) is None


def test_a_new_generation_asks_once() -> None:
    triggers = Triggers()
    triggers.note("ADDED", policy(generation=1))
    changed = policy(generation=2)
    assert triggers.note("MODIFIED", changed) is Trigger.GENERATION
    assert triggers.note("MODIFIED", with_status(changed, 2)) is None, "its reconcile's status write"


def test_a_listing_of_a_known_uid_asks_only_for_what_changed() -> None:
    """A re-list after a watch gap delivers every object again with type None: not a first sight."""
    triggers = Triggers()
    triggers.note("ADDED", policy(generation=3))
    assert triggers.check(None, with_status(policy(generation=3), 3)) is None
    assert triggers.check(None, policy(generation=4)) is Trigger.GENERATION


@pytest.mark.parametrize("key", [PAUSED_ANNOTATION, RECONCILE_REQUESTED_ANNOTATION])
def test_each_trigger_annotation_asks_when_set_changed_or_removed(key: str) -> None:
    triggers = Triggers()
    body = policy()
    triggers.note("ADDED", body)
    for value in ("true", "2026-12-08T03:00:00Z", None):
        body = annotated(body, key, value)
        assert triggers.note("MODIFIED", body) is Trigger.ANNOTATION, f"{key}={value}"
        assert triggers.note("MODIFIED", with_status(body, 1)) is None


def test_other_metadata_does_not_ask() -> None:
    triggers = Triggers()
    body = policy()
    triggers.note("ADDED", body)
    body = annotated(body, "argocd.argoproj.io/tracking-id", "app:vmclock.zstack.io/VmClockPolicy:ns/p")
    body = annotated(body, "operator.vmclock.zstack.io/last-handled-configuration", "{}")
    body["metadata"]["labels"] = {"team": "a"}
    body["metadata"]["finalizers"] = ["vmclock.zstack.io/finalizer"]
    assert triggers.check("MODIFIED", body) is None


def test_check_remembers_nothing() -> None:
    """kopf's `when=` filter runs `check` on every event; only the handler's `note` may move the base, so
    an event whose handler did not run asks again next time instead of being lost."""
    triggers = Triggers()
    for _ in range(2):
        assert triggers.check("ADDED", policy()) is Trigger.NEW
    triggers.note("ADDED", policy())
    for _ in range(2):
        assert triggers.check("MODIFIED", policy(generation=2)) is Trigger.GENERATION


def test_a_re_created_namesake_is_a_first_sight() -> None:
    """Same namespace and name, new uid (kubectl replace --force, Argo CD's self-heal): it is new, even
    with the same generation and annotations as the old incarnation."""
    triggers = Triggers()
    triggers.note("ADDED", policy(uid="old"))
    assert triggers.check("ADDED", policy(uid="new")) is Trigger.NEW
    assert triggers.check("MODIFIED", policy(uid="old")) is None


def test_deletion_is_not_a_trigger_and_forgetting_makes_a_uid_new_again() -> None:
    triggers = Triggers()
    triggers.note("ADDED", policy())
    assert triggers.check("DELETED", policy(generation=5)) is None
    assert triggers.note("DELETED", policy(generation=5)) is None
    assert triggers.check("MODIFIED", policy(generation=1)) is None, "DELETED recorded nothing"
    triggers.forget("u1")
    assert triggers.check(None, policy()) is Trigger.LISTED


def test_only_a_listed_settled_policy_joins_the_start_up_round() -> None:
    settled = with_status(policy(generation=2), 2)
    assert settled_at_start(Trigger.LISTED, settled)
    assert not settled_at_start(Trigger.LISTED, with_status(policy(generation=3), 2)), (
        "its spec changed while the operator was away"
    )
    assert not settled_at_start(Trigger.LISTED, policy()), "never reconciled"
    for other in (Trigger.NEW, Trigger.GENERATION, Trigger.ANNOTATION, None):
        assert not settled_at_start(other, settled), other

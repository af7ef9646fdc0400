from __future__ import annotations

from dataclasses import replace

from vmclock.engine.plan import conflicting_owners, overlapping, owned_by_others, selected_elsewhere

from .helpers import claim, uuid


def test_older_policy_with_another_track_owns_the_shared_vm() -> None:
    old = claim("old", "host", 1, 2, created="2026-01-01T00:00:00Z")
    young = claim("young", "guest", 2, 3, created="2026-02-01T00:00:00Z")
    assert conflicting_owners(young, [old, young]) == {uuid(2): old}
    assert conflicting_owners(old, [old, young]) == {}


def test_agreeing_policies_do_not_conflict() -> None:
    old = claim("old", "guest", 1)
    young = claim("young", "guest", 1, created="2026-03-01T00:00:00Z")
    assert conflicting_owners(young, [old]) == {}


def test_same_age_is_ordered_by_namespace_then_name() -> None:
    a = claim("a", "host", 1, ns="ns1")
    b = claim("b", "guest", 1, ns="ns1")
    c = claim("a", "guest", 1, ns="ns2")
    assert conflicting_owners(b, [a, b, c]) == {uuid(1): a}
    assert conflicting_owners(c, [a, b, c]) == {uuid(1): a}
    assert conflicting_owners(a, [a, b, c]) == {}


def test_the_oldest_owner_decides_even_if_a_middle_one_agrees() -> None:
    oldest = claim("oldest", "host", 1, created="2026-01-01T00:00:00Z")
    middle = claim("middle", "guest", 1, created="2026-01-02T00:00:00Z")
    me = claim("me", "guest", 1, created="2026-01-03T00:00:00Z")
    assert conflicting_owners(me, [middle, oldest]) == {uuid(1): oldest}


def test_hand_over_ignores_policies_being_deleted() -> None:
    live = claim("live", "guest", 1)
    going = claim("going", "guest", 2)
    going = type(going)(**{**going.__dict__, "deleting": True})
    assert selected_elsewhere([uuid(1), uuid(2), uuid(3)], ("ns", "me"), [live, going]) == {uuid(1)}


def test_overlapping_excludes_self() -> None:
    me = claim("me", "guest", 1)
    other = claim("other", "host", 1)
    unrelated = claim("unrelated", "host", 9)
    assert overlapping(me.vm_uuids, ("ns", "me"), [me, other, unrelated]) == [other]


def test_an_older_policy_owns_a_shared_vm_for_reboots_even_when_the_tracks_agree() -> None:
    old = claim("old", "guest", 1, 2, created="2026-01-01T00:00:00Z")
    young = claim("young", "guest", 2, 3, created="2026-02-01T00:00:00Z")
    assert owned_by_others(young, [old, young]) == {uuid(2)}
    assert owned_by_others(old, [old, young]) == frozenset()


def test_a_uuid_policy_owns_its_vms_over_a_selector_policy_of_any_age() -> None:
    named = claim("named", "guest", 1, created="2026-06-01T00:00:00Z")
    chosen = replace(claim("chosen", "guest", 1, 2), by_selector=True)
    assert owned_by_others(chosen, [named]) == {uuid(1)}
    assert owned_by_others(named, [chosen]) == frozenset()

from __future__ import annotations

from vmclock.engine.report import Condition, merge_conditions

from .helpers import EARLIER_TEXT, NOW_TEXT

STORED = [
    {
        "type": "Ready",
        "status": "True",
        "reason": "Available",
        "message": "ok",
        "lastTransitionTime": EARLIER_TEXT,
        "observedGeneration": 1,
    },
    {"type": "Custom", "status": "True", "reason": "Whatever"},
]


def test_transition_time_moves_only_when_status_flips() -> None:
    same = merge_conditions(
        STORED, [Condition("Ready", "True", "Available", "still ok")], generation=2, now=NOW_TEXT
    )
    assert same[0]["lastTransitionTime"] == EARLIER_TEXT
    assert (same[0]["message"], same[0]["observedGeneration"]) == ("still ok", 2)
    flipped = merge_conditions(
        STORED, [Condition("Ready", "False", "Drifted", "x")], generation=2, now=NOW_TEXT
    )
    assert flipped[0]["lastTransitionTime"] == NOW_TEXT


def test_new_conditions_start_now_and_foreign_ones_are_kept() -> None:
    merged = merge_conditions(
        STORED, [Condition("Synced", "Unknown", "Reconciling")], generation=3, now=NOW_TEXT
    )
    assert [c["type"] for c in merged] == ["Synced", "Ready", "Custom"]
    assert merged[0] == {
        "type": "Synced",
        "status": "Unknown",
        "reason": "Reconciling",
        "message": "",
        "lastTransitionTime": NOW_TEXT,
        "observedGeneration": 3,
    }


def test_messages_are_single_line_and_bounded() -> None:
    merged = merge_conditions(
        None, [Condition("Ready", "False", "X", "a\nb " + "y" * 5000)], generation=1, now=NOW_TEXT
    )
    assert merged[0]["message"].startswith("a b ")
    assert len(merged[0]["message"]) == 1024

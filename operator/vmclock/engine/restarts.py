"""Rolling restarts, the pure part: which VMs to reboot now, which to wait for, and when to look again.

A rollout spans many reconciles (each is bounded, design.md §5.10), so everything it must remember lives in
a durable `RolloutRecord`: the window it works in, every reboot sent in that window (recorded *before* it is
sent: intent before action, design.md §5.4) and a halt. A VM recorded in the current window is never
rebooted again in it, whatever happened after the record was written (a kill -9, a lost answer): it is only
waited for; one still out when a new window starts stays recorded (and counted) until it is back or late.
A halt stays until a new generation or a new `reconcile-requested-at` value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from vmclock.engine.plan import Phase
from vmclock.engine.restartspec import RestartSpec
from vmclock.engine.spec import format_timestamp
from vmclock.zstack.models import TRACK_EFFECTIVE_PLATFORMS

RUNNING = "Running"
COME_BACK_SECONDS = 600.0  # how long a rebooted VM may take to be Running again before the rollout halts
WAIT_POLL_SECONDS = 5.0  # how soon to look again while reboots are out


class Outcome(StrEnum):
    SENT = "sent"  # recorded and (maybe) sent; not seen back yet
    BACK = "back"  # Running again after the reboot
    FAILED = "failed"  # ZStack failed the reboot job, or the VM did not come back in time


@dataclass(frozen=True)
class Candidate:
    """A VM of the policy as its last reconcile saw it."""

    uuid: str
    pending_restart: bool
    state: str | None
    platform: str | None
    owned_elsewhere: bool = False

    @property
    def back(self) -> bool:
        return self.state == RUNNING and not self.pending_restart


def restart_candidates(vms: Iterable[Mapping[str, Any]]) -> dict[str, Candidate]:
    """Every selected VM as the reconcile just saw it (`ReconcileResult.vms`: all of them, while status lists
    at most 500), so a selector policy rolls every VM that waits, not only the listed ones. Whether a VM
    waits comes from the pending-restart record the reconcile keeps (engine/pending.py)."""
    candidates: dict[str, Candidate] = {}
    for entry in vms:
        uuid = entry.get("uuid")
        if not isinstance(uuid, str):
            continue
        inventory = entry.get("inventory") or {}
        candidates[uuid] = Candidate(
            uuid,
            entry.get("pendingRestart") is True,
            _text(inventory.get("state")),
            _text(inventory.get("platform")),
            owned_elsewhere=entry.get("phase") == Phase.CONFLICT.value,
        )
    return candidates


def owned_elsewhere(candidates: Mapping[str, Candidate], owned: Iterable[str]) -> dict[str, Candidate]:
    """`candidates` with the VMs another policy owns now marked so: ownership can move while a rollout
    runs (an older policy takes a VM over), and only the owner may reboot a VM."""
    taken = set(owned) & candidates.keys()
    return {u: replace(c, owned_elsewhere=True) if u in taken else c for u, c in candidates.items()}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Sent:
    at: float  # epoch seconds the intent was recorded
    outcome: Outcome = Outcome.SENT


@dataclass(frozen=True)
class Halt:
    """Why the rollout stopped, and what it stopped under: a new generation or annotation value clears it."""

    message: str
    generation: int
    requested_at: str | None


@dataclass(frozen=True)
class RolloutRecord:
    window: str | None = None  # the open window's start, RFC 3339 UTC
    sent: Mapping[str, Sent] = field(default_factory=dict)
    halt: Halt | None = None

    def with_sent(self, uuids: Iterable[str], outcome: Outcome, at: float | None = None) -> RolloutRecord:
        changed = {u: Sent(at if at is not None else self.sent[u].at, outcome) for u in uuids}
        return replace(self, sent={**self.sent, **changed})

    def without(self, uuids: Iterable[str]) -> RolloutRecord:
        gone = set(uuids)
        return replace(self, sent={u: s for u, s in self.sent.items() if u not in gone})

    def encode(self) -> str:
        halt = self.halt
        return json.dumps(
            {
                "window": self.window,
                "sent": {u: [s.at, s.outcome.value] for u, s in sorted(self.sent.items())},
                "halt": None
                if halt is None
                else {
                    "message": halt.message,
                    "generation": halt.generation,
                    "requestedAt": halt.requested_at,
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str) -> RolloutRecord:
        """Lenient like the previous-track record: what cannot be read is an empty record, never fatal.
        Losing it can only make the rollout wait less, never reboot a VM recorded as sent."""
        try:
            raw = json.loads(text) if text else {}
            sent = {
                str(u): Sent(float(at), Outcome(outcome)) for u, (at, outcome) in raw.get("sent", {}).items()
            }
            halt = raw.get("halt")
            return cls(
                window=raw.get("window"),
                sent=sent,
                halt=None
                if not halt
                else Halt(str(halt["message"]), int(halt["generation"]), halt.get("requestedAt")),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls()


class Step(StrEnum):
    OFF = "Off"  # policy Never
    BLOCKED = "Blocked"  # paused, Observe, connection not Ready: reboot nothing
    HALTED = "Halted"
    CLOSED = "WindowClosed"
    ROLLING = "Rolling"
    COMPLETE = "Complete"


@dataclass(frozen=True)
class Decision:
    step: Step
    record: RolloutRecord
    reboot: tuple[str, ...] = ()  # to send now (their intent must be stored first)
    waiting: tuple[str, ...] = ()  # sent, not back yet
    left: int = 0  # eligible, not sent yet, beyond this batch
    rebooted: int = 0  # back in this window
    skipped: int = 0  # pending but never rebooted here: not Running, inert platform, owned elsewhere
    next_opening: datetime | None = None
    message: str = ""


def eligible(candidate: Candidate) -> bool:
    """Only a VM this policy changed that waits for a restart, is Running, is its own and runs Windows."""
    return (
        candidate.pending_restart
        and not candidate.owned_elsewhere
        and candidate.state == RUNNING
        and candidate.platform in TRACK_EFFECTIVE_PLATFORMS
    )


def decide(
    restart: RestartSpec,
    record: RolloutRecord,
    candidates: Mapping[str, Candidate],
    now: datetime,
    *,
    generation: int,
    requested_at: str | None,
    blocked: str | None = None,
) -> Decision:
    """What to do now. `blocked`: why nothing may be rebooted (paused, Observe, connection), or None."""
    if not restart.rolling or restart.window is None:
        return Decision(Step.OFF, record)
    halt = record.halt
    if halt is not None and (halt.generation != generation or halt.requested_at != requested_at):
        record = replace(record, halt=None)
    elif halt is not None:
        return Decision(Step.HALTED, record, message=halt.message)
    window = restart.window
    opened = window.open_since(now)
    if opened is not None and record.window != format_timestamp(opened):
        record = _new_window(record, format_timestamp(opened))
    # Reboots still out are judged whether or not the window is open: one sent just before it closed may
    # never come back, and that must halt the rollout rather than wait for the next opening.
    record, waiting, late = _waits(record, candidates, now.timestamp())
    if late:
        message = (
            f"VM {late} was sent a reboot at {_stamp(record.sent[late].at)} and is not Running again without "
            f"a pending restart after {COME_BACK_SECONDS / 60:.0f} minutes; the rollout stopped"
        )
        return halted(record, message, generation, requested_at)
    pending = [c for c in candidates.values() if c.pending_restart]
    skipped = sum(1 for c in pending if not eligible(c))
    if opened is None:
        return Decision(
            Step.CLOSED,
            record,
            waiting=waiting,
            left=len(pending) - skipped,
            skipped=skipped,
            next_opening=window.next_opening(now),
        )
    done = sum(1 for s in record.sent.values() if s.outcome is Outcome.BACK)
    todo = sorted(c.uuid for c in pending if eligible(c) and c.uuid not in record.sent)
    if blocked is not None:
        return Decision(Step.BLOCKED, record, waiting=waiting, left=len(todo), rebooted=done, message=blocked)
    if not todo and not waiting:
        return Decision(Step.COMPLETE, record, rebooted=done, skipped=skipped)
    batch = tuple(todo[: max(0, restart.max_concurrent - len(waiting))])
    return Decision(
        Step.ROLLING,
        record,
        reboot=batch,
        waiting=waiting,
        left=len(todo) - len(batch),
        rebooted=done,
        skipped=skipped,
    )


def _new_window(record: RolloutRecord, start: str) -> RolloutRecord:
    """A new window (or a moved one): what came back or failed in the last one may go again, but a reboot
    still out stays recorded, so it is waited for, counts against maxConcurrent and is never sent twice."""
    out = {u: s for u, s in record.sent.items() if s.outcome is Outcome.SENT}
    return RolloutRecord(window=start, sent=out)


def halted(record: RolloutRecord, message: str, generation: int, requested_at: str | None) -> Decision:
    record = replace(record, halt=Halt(message, generation, requested_at))
    return Decision(Step.HALTED, record, message=message)


def _waits(
    record: RolloutRecord, candidates: Mapping[str, Candidate], now: float
) -> tuple[RolloutRecord, tuple[str, ...], str | None]:
    """Reboots out: those seen back are marked so; the first one out longer than allowed is `late`."""
    back, waiting, late = [], [], None
    for uuid, sent in sorted(record.sent.items()):
        if sent.outcome is not Outcome.SENT:
            continue
        seen = candidates.get(uuid)
        if seen is not None and seen.back:
            back.append(uuid)
        elif now - sent.at > COME_BACK_SECONDS and late is None:
            late = uuid
        else:
            waiting.append(uuid)
    record = record.with_sent(back, Outcome.BACK)
    if late is not None:
        record = record.with_sent([late], Outcome.FAILED)
    return record, tuple(waiting), late


def _stamp(epoch: float) -> str:
    return format_timestamp(datetime.fromtimestamp(epoch, UTC))

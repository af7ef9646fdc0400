"""Everything the controller remembers about a policy, in one object per incarnation (design.md §5.9).

A policy's name can outlive its object: Argo CD's self-heal, `kubectl replace --force` or a quick delete and
re-create give a new object (a new uid) under the same name while a worker may still hold work of the old
one. So memory is keyed by the name for lookup but bound to the uid: binding another uid replaces the whole
`PolicyRuntime`, and nothing of the old incarnation (its generation, its restore signal, its selection, its
record, its schedule) can leak into the new one. Forgetting a policy is one `pop`.

Resync rounds live here too: when one policy of a connection is due for a drift check, the others due
within half of their interval come along, so their VMs are read in one batch (design.md §5.5); after that
round they share the same next due time and stay grouped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from vmclock.engine.pending import PendingRestart
from vmclock.engine.plan import found_vms
from vmclock.refs import Ref
from vmclock.zstack.models import Track

PULL_IN = 0.5  # a policy due within this share of its interval joins a round that is starting anyway


@dataclass
class RecordCache:
    """The previous-track record as last read or written, with the resourceVersion that guards the next
    replace (None: no ConfigMap exists). Only this incarnation's reconciles write it, one at a time, so the
    cached copy stays true until someone else edits the ConfigMap, which the guard then catches."""

    tracks: dict[str, tuple[Track, str]]
    version: str | None
    assumed: bool = False  # taken for absent without a read (kopfapp/records.py: `ConfigMapRecord`)


@dataclass
class RestartsCache:
    """The VMs waiting for a restart as last read or written (engine/pending.py), kept the same way."""

    pending: dict[str, PendingRestart]
    version: str | None
    assumed: bool = False


@dataclass(eq=False, slots=True)  # one per policy: no per-instance dict
class PolicyRuntime:
    ref: Ref
    uid: str
    born: float  # monotonic time of binding: a "gone" read that started before it is about an older one
    generation: int = 0  # the newest generation a handler or a read saw: older work is superseded
    confirmed: bool = False  # a worker read this incarnation from the API server
    deleting: bool = False  # a deletion was requested: forward writes stop
    gone: bool = False  # a read found the object gone (or another incarnation): nothing to wait for
    restore_done: bool = False
    restore_problem: str | None = None
    _wakeup: asyncio.Event | None = field(default=None, init=False, repr=False)  # only once a deletion waits
    selection: frozenset[str] | None = None  # what a selector policy last resolved to
    matched: frozenset[str] = frozenset()  # and all its selector picked (VMs left to UUID policies too)
    record: RecordCache | None = None
    restarts: RestartsCache | None = None
    resource_version: str = ""  # of the object as last read or written: the next status write tests it
    status: Mapping[str, Any] | None = None  # the status as last read or written, during a reconcile only
    found: frozenset[str] | None = None  # the VMs that status says its observation found
    running: set[str] = field(default_factory=set)  # VMs whose write job may still run in ZStack
    connection: str = ""
    due: float | None = None  # next drift check (monotonic); None: not scheduled yet
    interval: float = 0.0
    round_started: float | None = None  # when the round that queued its current check began
    observed_at: float | None = None  # wall-clock time of the observation the status reflects

    @property
    def wanted(self) -> frozenset[str]:
        """Every VM its last resolution wants (`PolicyClaim.wanted`)."""
        return (self.selection or frozenset()) | self.matched

    def saw_status(self, status: Mapping[str, Any]) -> None:
        self.status = status
        self.found = found_vms(status)

    def saw_generation(self, generation: int) -> None:
        self.generation = max(self.generation, generation)

    def superseded(self, generation: int) -> int | None:
        """A newer generation of this object than `generation`, if a handler or read has seen one."""
        return self.generation if self.generation > generation else None

    def finish_restore(self) -> None:
        self.restore_done = True
        self.restore_problem = None
        self._wake()

    def mark_gone(self) -> None:
        self.gone = True
        self._wake()

    async def wait_settled(self) -> None:
        """Until `settled`. The event is made here: most policies are never waited on, and an idle event
        (with its queue of waiters) would be kept per policy."""
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        if not self.settled:
            await self._wakeup.wait()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    @property
    def settled(self) -> bool:
        """True when a deletion waiting on this incarnation may let it go."""
        return self.restore_done or self.gone


class Runtimes:
    """`forgetting` hears of each runtime just before it goes (replaced by another incarnation, or read
    gone): a selector policy's selection lives only here, so the policies sharing its VMs must be told
    then, while the VMs are still known (kopf's DELETED event may come later, or never for this uid's
    runtime, and the status lists only some of them)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        forgetting: Callable[[PolicyRuntime], None] = lambda _: None,
    ) -> None:
        self._clock = clock
        self._forgetting = forgetting
        self._by_ref: dict[Ref, PolicyRuntime] = {}

    def get(self, ref: Ref) -> PolicyRuntime | None:
        return self._by_ref.get(ref)

    def bind(self, ref: Ref, uid: str) -> PolicyRuntime:
        """The runtime of this incarnation; a runtime of another uid under the name is replaced whole."""
        current = self._by_ref.get(ref)
        if current is not None and (current.uid == uid or not uid):
            return current
        if current is not None and current.uid and current.confirmed:
            current.mark_gone()  # a worker or handler now sees another incarnation: the old one is no more
        if current is not None:
            self._forgetting(current)
        runtime = PolicyRuntime(ref, uid, born=self._clock())
        self._by_ref[ref] = runtime
        return runtime

    def fresh(self, ref: Ref, uid: str = "") -> bool:
        """No worker of this process has read this incarnation (`uid`, or whichever is bound) yet: a policy
        found at start-up, or one just created."""
        current = self._by_ref.get(ref)
        return current is None or not current.confirmed or bool(uid and current.uid != uid)

    def drop_gone(self, ref: Ref, *, read_started: float) -> PolicyRuntime | None:
        """The API server said the policy is gone (in a read that began at `read_started`): drop its
        runtime, unless it was bound after that read began (a namesake's create arrived meanwhile)."""
        current = self._by_ref.get(ref)
        if current is None or current.born >= read_started:
            return None
        self._forgetting(current)
        del self._by_ref[ref]
        current.mark_gone()
        return current

    def __iter__(self) -> Iterator[PolicyRuntime]:
        return iter(list(self._by_ref.values()))

    def __len__(self) -> int:
        return len(self._by_ref)

    # --- resync rounds ---------------------------------------------------------------------------------

    def schedule(self, runtime: PolicyRuntime, interval: float) -> None:
        """A reconcile just finished: the next drift check is one interval away, counted from the start of
        the round that asked for it, so a round's policies stay due together however long each took (1,000
        of them finish seconds apart; counted from each finish, they would drift into rounds of a few, each
        with its own reads). At least half an interval from now all the same: a round that ran long does not
        start the next one at once."""
        now = self._clock()
        start, runtime.round_started = runtime.round_started, None
        runtime.interval = interval
        runtime.due = max(now + interval * PULL_IN, (start if start is not None else now) + interval)

    def round(self, candidates: Iterable[tuple[Ref, float]]) -> list[Ref]:
        """The policies (with their intervals) to look at now: none unless one is due, then every one due
        soon. Policies never reconciled yet are not due: their create/resume handler queues them."""
        now = self._clock()
        known = [
            (runtime, interval)
            for ref, interval in candidates
            if (runtime := self._by_ref.get(ref)) is not None and runtime.due is not None
        ]
        if not any(runtime.due is not None and runtime.due <= now for runtime, _ in known):
            return []
        chosen = [r for r, interval in known if r.due is not None and r.due <= now + interval * PULL_IN]
        for runtime in chosen:
            runtime.due = None  # until its reconcile schedules the next one
            runtime.round_started = now
        return [runtime.ref for runtime in chosen]

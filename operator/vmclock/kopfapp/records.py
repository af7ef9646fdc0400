"""A policy's previous-track record as a ConfigMap in the policy's namespace (engine/records.py).

Why a ConfigMap: the record must survive a crash (it is written before the writes it covers), be namespaced
with the tenant's policy, and be bounded: one line per VM the policy changed, 10,000 VMs in ~420 KB, inside
a ConfigMap's 1 MiB. Status cannot hold it (256 KiB budget, a bounded `status.vms`). The VMs waiting for a
restart (engine/pending.py, ~45 bytes each) live in a second ConfigMap, `vmclock-restarts-<policy>`, owned
and guarded the same way: together they would not fit one ConfigMap at 10,000 VMs, apart each stays well
inside, and an operator of an older version, which knows only the first, never loses a previous track.

The ConfigMap is named after the policy, carries an ownerReference to the policy's uid (so Kubernetes'
garbage collector removes it with the policy) and the label app.kubernetes.io/managed-by=vmclock. One that
does not name this policy as its owner is someone else's (a user's ConfigMap of that name): it is never
overwritten or deleted; the policy reports it (`RecordConflict`) and writes nothing to ZStack until it is
gone.
One owned by a VmClockPolicy of this name with another uid is a deleted namesake's (its deletion finished,
its restores done or not owed), which the garbage collector is about to remove: it is removed now instead,
exactly as read, so a quick re-create does not wait for the collector.

Writes are whole replacements guarded by the resourceVersion last read or written: only one reconcile of a
policy runs at a time, so a conflict means someone else edited it, and the reconcile fails (and retries)
before writing to ZStack. The copy in the policy's runtime saves a read per reconcile. The operator deletes
the ConfigMap itself once the policy is gone or its Restore completed; a cluster's collector may lag.

A policy never reconciled by any process (its status is empty) has no record unless its first reconcile
crashed after writing one and before its first status (or a namesake's leftover is still there), so its
first reconcile in this process takes both ConfigMaps for absent without reading them (`never_reconciled`):
two GETs less for each new policy. The assumption is good for that reconcile only, and is checked before
anything relies on it: a create answers 409 when a ConfigMap is there, before any write to ZStack (intent
before action); a part not created by then is read in `confirm`, which the engine calls before the writes
and again before it returns the status. Either way a record found voids the reconcile (`Stale`: the worker
looks again at once, no backoff, no Warning), and the next one reads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from vmclock.connections.optin import OperatorAccount, namespace_not_enabled
from vmclock.connections.problems import NAMESPACE_NOT_ENABLED
from vmclock.engine.pending import PendingRestart, decode_restarts, encode_restarts
from vmclock.engine.records import Origins, decode_record_with_origins, encode_record
from vmclock.engine.spec import GROUP, VERSION
from vmclock.kopfapp.runtimes import PolicyRuntime, RecordCache, RestartsCache
from vmclock.kubeapi import CONFLICT, Forbidden, Gone, KubeApi, ObjectConflict, Stale
from vmclock.refs import Ref
from vmclock.zstack.models import Track

log = logging.getLogger(__name__)

RECORD_CONFLICT = "RecordConflict"

PREFIX = "vmclock-tracks-"
KEY = "previousTracks"
RESTARTS_PREFIX = "vmclock-restarts-"
RESTARTS_KEY = "pendingRestarts"
MAX_NAME = 253
MANAGED_BY = {"app.kubernetes.io/managed-by": "vmclock"}


def record_name(policy: str, prefix: str = PREFIX) -> str:
    """`vmclock-tracks-<policy>` (or another prefix); a name too long for that keeps a prefix of it and a
    hash of the whole."""
    name = prefix + policy
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(policy.encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME - 11]}-{digest}"


def owner_reference(policy: Ref, uid: str) -> dict[str, str]:
    """The ownerReference that lets Kubernetes' garbage collector remove a record with its policy."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VmClockPolicy", "name": policy.name, "uid": uid}


def _owner(body: Mapping[str, Any]) -> Mapping[str, Any]:
    owners = (body.get("metadata") or {}).get("ownerReferences") or ()
    return next((o for o in owners if o.get("kind") == "VmClockPolicy"), {})


def owning_uid(body: Mapping[str, Any]) -> str | None:
    uid = _owner(body).get("uid")
    return str(uid) if uid else None


def owning_name(body: Mapping[str, Any]) -> str | None:
    name = _owner(body).get("name")
    return str(name) if name else None


class RecordUnusable(Exception):
    """The policy may not use its record now; `reason` is the condition reason that says why."""

    reason = RECORD_CONFLICT


class RecordNotOurs(RecordUnusable):
    """The record's ConfigMap exists and is not owned by this incarnation of the policy."""


class RecordForbidden(RecordUnusable):
    """The namespace does not let the operator at its ConfigMaps (403): it never opted in, opted out, or is
    being deleted (the namespace controller may remove its RoleBindings before its policies). Like a
    connection there, that is the namespace's choice, not an operator fault: a condition and a Warning, no
    traceback, and the policy is tried again with backoff."""

    reason = NAMESPACE_NOT_ENABLED


@contextlib.asynccontextmanager
async def _allowed(namespace: str) -> AsyncIterator[None]:
    try:
        yield
    except Forbidden:
        problem = namespace_not_enabled(namespace, OperatorAccount.from_environment())
        raise RecordForbidden(str(problem)) from None


class OwnedConfigMap:
    """One ConfigMap of text that one incarnation (uid) of one policy owns, under one data key: read (a
    deleted namesake's is tidied away first) and replaced whole under the resourceVersion last seen."""

    def __init__(
        self, kube: KubeApi, policy: Ref, uid: str, part: tuple[str, str, str], *, tidy: bool = True
    ) -> None:
        """`part`: the name prefix, the data key, and what it keeps (for the message when it is not ours)."""
        self._kube, self._tidy = kube, tidy
        self._policy, self._uid = policy, uid
        prefix, self._key, self._keeps = part
        self._name = record_name(policy.name, prefix)

    async def read(self) -> tuple[str, str | None]:
        """The text and the resourceVersion to replace it under (None: there is no ConfigMap)."""
        async with _allowed(self._policy.namespace):
            return await self._read()

    async def write(self, text: str, version: str | None) -> str:
        """Replace (or create) it with `text`; the new resourceVersion."""
        async with _allowed(self._policy.namespace):
            return await self._write(text, version)

    async def _read(self) -> tuple[str, str | None]:
        body = await self._kube.get_config_map(self._policy.namespace, self._name)
        if body is not None and owning_name(body) == self._policy.name and owning_uid(body) != self._uid:
            if not self._tidy:
                return "", None
            await delete_exactly(self._kube, self._policy.namespace, body)
            body = await self._kube.get_config_map(self._policy.namespace, self._name)
        if body is None:
            return "", None
        if owning_uid(body) != self._uid:
            raise RecordNotOurs(
                f"ConfigMap {self._policy.namespace}/{self._name} exists and is not owned by this policy: "
                f"it keeps {self._keeps} and must be this policy's own; delete or rename it"
            )
        text = str((body.get("data") or {}).get(self._key) or "")
        return text, str(body["metadata"].get("resourceVersion") or "")

    async def _write(self, text: str, version: str | None) -> str:
        body = self._body(text)
        if version is None:
            written = await self._kube.create_config_map(self._policy.namespace, body)
        else:
            try:
                written = await self._kube.replace_config_map(
                    self._policy.namespace,
                    self._name,
                    {**body, "metadata": {**body["metadata"], "resourceVersion": version}},
                )
            except Gone:  # deleted by someone since: what this incarnation knows is written again
                written = await self._kube.create_config_map(self._policy.namespace, body)
        return str(written["metadata"].get("resourceVersion") or "")

    def _body(self, text: str) -> dict[str, Any]:
        return record_body(self._policy, self._uid, self._name, {self._key: text})


def record_body(policy: Ref, uid: str, name: str, data: Mapping[str, str]) -> dict[str, Any]:
    """A ConfigMap a policy keeps beside it: labelled as ours and owned by the policy's uid, so Kubernetes'
    garbage collector removes it with the policy."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": policy.namespace,
            "labels": dict(MANAGED_BY),
            "ownerReferences": [owner_reference(policy, uid)],
        },
        "data": dict(data),
    }


class ConfigMapRecord:
    """The `TrackRecord` of one incarnation (uid) of one policy, cached in its runtime: the previous tracks
    in one ConfigMap, the VMs waiting for a restart in another (each within 1 MiB at 10,000 VMs)."""

    def __init__(
        self, kube: KubeApi, runtime: PolicyRuntime, *, tidy: bool = True, never_reconciled: bool = False
    ) -> None:
        """`tidy`: remove a deleted namesake's leftover record (the operator does; a read-only reader
        such as `vmclock plan` reads it as empty instead). `never_reconciled`: the first reconcile of an
        incarnation no process has reconciled yet: the record is taken for absent until `confirm` (module
        docstring)."""
        self._runtime, self._assume = runtime, never_reconciled
        policy, uid = runtime.ref, runtime.uid
        self._tracks = OwnedConfigMap(kube, policy, uid, (PREFIX, KEY, "the VMs' previous tracks"), tidy=tidy)
        self._restarts = OwnedConfigMap(
            kube, policy, uid, (RESTARTS_PREFIX, RESTARTS_KEY, "which VMs wait for a restart"), tidy=tidy
        )

    async def load(self) -> dict[str, Track]:
        tracks = await self._tracks_cache()
        await self._restarts_cache()
        return {uuid: track for uuid, (track, _) in tracks.tracks.items()}

    def origins(self) -> dict[str, str]:
        cache = self._runtime.record
        return {u: origin for u, (_, origin) in cache.tracks.items() if origin} if cache else {}

    def pending_restarts(self) -> dict[str, PendingRestart]:
        cache = self._runtime.restarts
        return dict(cache.pending) if cache else {}

    async def _tracks_cache(self) -> RecordCache:
        cache = self._runtime.record
        if cache is None or (cache.assumed and not self._assume):
            cache = RecordCache({}, None, assumed=True) if self._assume else await self._read_tracks()
            self._runtime.record = cache
        return cache

    async def _restarts_cache(self) -> RestartsCache:
        cache = self._runtime.restarts
        if cache is None or (cache.assumed and not self._assume):
            cache = RestartsCache({}, None, assumed=True) if self._assume else await self._read_restarts()
            self._runtime.restarts = cache
        return cache

    async def _read_tracks(self) -> RecordCache:
        text, version = await self._tracks.read()
        tracks, origins = decode_record_with_origins(text)
        return RecordCache({uuid: (track, origins.get(uuid, "")) for uuid, track in tracks.items()}, version)

    async def _read_restarts(self) -> RestartsCache:
        text, version = await self._restarts.read()
        return RestartsCache(decode_restarts(text), version)

    async def confirm(self) -> None:
        """Read each part this reconcile took for absent and did not create since (a create that succeeded
        proved it). One found was left by a first reconcile that ended before its first status (or is not
        ours: `RecordUnusable`): raise `Stale`, and the next reconcile starts from it."""
        runtime = self._runtime
        tracks = await self._read_tracks() if runtime.record and runtime.record.assumed else None
        restarts = await self._read_restarts() if runtime.restarts and runtime.restarts.assumed else None
        runtime.record = tracks or runtime.record
        runtime.restarts = restarts or runtime.restarts
        if any(read is not None and read.version is not None for read in (tracks, restarts)):
            what = f"ConfigMap records of VmClockPolicy {runtime.ref}, left before its first status"
            raise Stale(CONFLICT, "AlreadyExists", what)

    async def store(self, tracks: Mapping[str, Track], origins: Origins) -> None:
        cache = await self._tracks_cache()
        self._runtime.record = None  # unknown until the write's answer says what is stored
        version = await self._tracks.write(encode_record(tracks, origins), cache.version)
        entries = {uuid: (track, origins.get(uuid, "")) for uuid, track in tracks.items()}
        self._runtime.record = RecordCache(entries, version)

    async def store_pending_restarts(self, pending: Mapping[str, PendingRestart]) -> None:
        cache = await self._restarts_cache()
        self._runtime.restarts = None  # unknown until the write's answer says what is stored
        version = await self._restarts.write(encode_restarts(pending), cache.version)
        self._runtime.restarts = RestartsCache(dict(pending), version)


async def delete_record(kube: KubeApi, policy: Ref, *, owner_uid: str) -> None:
    """Delete the policy's record, exactly as read, and only if it belongs to `owner_uid`: a namesake
    created since keeps its own, a ConfigMap of someone else's is never touched, a concurrent change is
    left alone."""
    try:
        for prefix in (PREFIX, RESTARTS_PREFIX):
            body = await kube.get_config_map(policy.namespace, record_name(policy.name, prefix))
            if body is not None and owning_uid(body) == owner_uid:
                await delete_exactly(kube, policy.namespace, body)
    except Forbidden:
        # The namespace no longer lets the operator in (a namespace deletion removes its RoleBinding first,
        # or it opted out): the record is owned by the policy, so the garbage collector removes it.
        log.info("record of VmClockPolicy %s left to the garbage collector (access withdrawn)", policy)


async def delete_exactly(kube: KubeApi, namespace: str, body: Mapping[str, Any]) -> None:
    meta = body["metadata"]
    with contextlib.suppress(ObjectConflict):
        await kube.delete_config_map(
            namespace,
            str(meta["name"]),
            uid=str(meta.get("uid")),
            resource_version=str(meta.get("resourceVersion")),
        )

"""ConnectionManager against the simulator: Secret -> credentials -> verified, cached client; every failure
maps to its Ready reason with a message naming the object and key, never a value.

Secrets come from an in-memory stand-in for the Kubernetes API (the only thing not real here)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlplane.certs import issue
from vmclock.connections import ConnectionManager
from vmclock.connections.manager import ConnectionVerdict
from vmclock.connections.secrets import CA_BUNDLE_ANNOTATION
from vmclock.connections.status import connection_status
from vmclock.connections.trust import ALLOWED_ENDPOINTS_ANNOTATION, EndpointPolicy
from vmclock.engine import ConnectionUnavailable
from vmclock.kubeapi import KubeObject
from vmclock.simulator import Simulator, SimulatorConfig

SECRET_VALUE = "s3cr3t-Pa55"
UNREACHABLE_ENDPOINT = "http://127.0.0.1:9"


class Objects:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], KubeObject] = {}
        self.config_maps: dict[tuple[str, str], KubeObject] = {}
        self.secret_reads = 0
        self.reads: list[str] = []  # "Kind/name" of every object read
        self.allowed: list[str] = [UNREACHABLE_ENDPOINT]
        self.annotations: dict[str, str] = {}  # more annotations on every Secret

    def put_secret(self, name: str, version: str, **data: str) -> None:
        """Read back with an allowed-endpoints annotation listing every endpoint in `allowed`."""
        self.secrets[("ns", name)] = KubeObject(version, {k: v.encode() for k, v in data.items()})

    async def read_secret(self, namespace: str, name: str) -> KubeObject | None:
        self.secret_reads += 1
        self.reads.append(f"Secret/{name}")
        found = self.secrets.get((namespace, name))
        if found is None:
            return None
        allowed = {ALLOWED_ENDPOINTS_ANNOTATION: ",".join(self.allowed)}
        return KubeObject(found.resource_version, found.data, {**allowed, **self.annotations})

    async def read_config_map(self, namespace: str, name: str) -> KubeObject | None:
        self.reads.append(f"ConfigMap/{name}")
        return self.config_maps.get((namespace, name))


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(vms=3, accounts={"admin": SECRET_VALUE}, access_keys={"AKID": SECRET_VALUE})
    async with Simulator(config) as running:
        yield running


@pytest.fixture
async def manager(sim: Simulator) -> AsyncIterator[tuple[ConnectionManager, Objects]]:
    objects = Objects()
    objects.allowed.append(sim.endpoint)
    made = ConnectionManager(objects, endpoints=EndpointPolicy(allow_insecure=True))
    yield made, objects
    await made.close_all()


def seconds_pass(manager: ConnectionManager) -> None:
    """As if a minute passed since the manager last looked at the Secrets (its freshness window is 5 s)."""
    for entry in manager._entries.values():
        entry.looked_at -= 60


async def client_of(
    manager: ConnectionManager, namespace: str, name: str, raw_spec: dict[str, object] | None
) -> object:
    async with manager.lease(namespace, name, raw_spec) as client:
        return client.current


def spec(sim: Simulator, **extra: object) -> dict[str, object]:
    return {"endpoint": sim.endpoint, "credentialsSecretRef": {"name": "creds"}, **extra}


async def test_account_and_access_key_secrets_connect(
    sim: Simulator, manager: tuple[ConnectionManager, Objects]
) -> None:
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    verdict = await connections.check("ns", "zs", spec(sim))
    assert (verdict.reason, verdict.version, verdict.storage) == ("Connected", "5.3.0", "ResourceConfig")
    first = await client_of(connections, "ns", "zs", spec(sim))

    assert (await connections.check("ns", "zs", spec(sim))).ready
    assert await client_of(connections, "ns", "zs", spec(sim)) is first  # same fingerprint: reused

    objects.put_secret("creds", "2", accessKeyId="AKID", accessKeySecret=SECRET_VALUE)
    assert (await connections.check("ns", "zs", spec(sim))).ready
    assert await client_of(connections, "ns", "zs", spec(sim)) is not first  # Secret changed: rebuilt


async def test_simultaneous_first_uses_share_one_check(
    sim: Simulator, manager: tuple[ConnectionManager, Objects]
) -> None:
    """Policies of a fresh connection reconciling at once must not each read the Secret and probe ZStack."""
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    clients = await asyncio.gather(*(client_of(connections, "ns", "zs", spec(sim)) for _ in range(5)))
    assert len({id(c) for c in clients}) == 1
    assert objects.secret_reads == 1
    await connections.check("ns", "zs", spec(sim))  # the periodic check still checks for real
    assert objects.secret_reads == 2


@pytest.mark.parametrize(
    ("data", "reason", "hint"),
    [
        (
            None,
            "EndpointNotAllowed",
            "Secret ns/creds (spec.credentialsSecretRef) does not exist or does not",
        ),
        ({"accountName": "admin"}, "InvalidSecret", "missing key 'password'"),
        ({"accessKeySecret": SECRET_VALUE}, "InvalidSecret", "missing key 'accessKeyId'"),
        (
            {"token": "x"},
            "InvalidSecret",
            "neither keys accountName+password nor accessKeyId+accessKeySecret",
        ),
        ({"accountName": "admin", "password": "wrong-" + SECRET_VALUE}, "AuthFailed", "ID.1000"),
        ({"accessKeyId": "AKID", "accessKeySecret": "wrong-" + SECRET_VALUE}, "AuthFailed", "login failed"),
    ],
)
async def test_broken_secrets_name_the_problem_but_never_a_value(
    sim: Simulator,
    manager: tuple[ConnectionManager, Objects],
    data: dict[str, str] | None,
    reason: str,
    hint: str,
) -> None:
    connections, objects = manager
    if data is not None:
        objects.put_secret("creds", "1", **data)
    verdict = await connections.check("ns", "zs", spec(sim))
    assert verdict.reason == reason
    assert hint in verdict.message
    assert SECRET_VALUE not in verdict.message
    with pytest.raises(ConnectionUnavailable) as caught:
        await client_of(connections, "ns", "zs", spec(sim))
    assert caught.value.reason == reason
    assert SECRET_VALUE not in str(caught.value)


async def test_unreachable_not_ready_unsupported_and_missing(
    manager: tuple[ConnectionManager, Objects],
) -> None:
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    async with Simulator(
        SimulatorConfig(vms=1, zstack_version="4.0.0", accounts={"admin": SECRET_VALUE})
    ) as old:
        objects.allowed.append(old.endpoint)
        assert (await connections.check("ns", "old", spec(old))).reason == "Unsupported"
    async with Simulator(SimulatorConfig(vms=1, accounts={"admin": SECRET_VALUE})) as sim:
        objects.allowed.append(sim.endpoint)
        sim.faults.ready = False
        assert (await connections.check("ns", "busy", spec(sim))).reason == "NotReady"
        gone = spec(sim)
    assert (
        await connections.check("ns", "gone", {**gone, "requestTimeoutSeconds": 1})
    ).reason == "Unreachable"
    with pytest.raises(ConnectionUnavailable) as caught:
        await client_of(connections, "ns", "nothing", None)
    assert (caught.value.reason, str(caught.value)) == ("NotFound", "ZStackConnection ns/nothing not found")


async def test_ca_bundle_problems(sim: Simulator, manager: tuple[ConnectionManager, Objects]) -> None:
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    objects.annotations[CA_BUNDLE_ANNOTATION] = "ConfigMap/ca"
    tls = {"tls": {"caBundleRef": {"kind": "ConfigMap", "name": "ca"}}}
    for extra in ({}, tls):  # the Secret chooses; a connection may only repeat its choice
        assert (await connections.check("ns", "zs", spec(sim, **extra))).message.startswith(
            "ConfigMap ns/ca (the CA Secret ns/creds chooses) not found"
        )
    objects.config_maps[("ns", "ca")] = KubeObject("1", {"ca.crt": b"not a certificate"})
    verdict = await connections.check("ns", "zs", spec(sim, **tls))
    assert (verdict.reason, "is not a PEM CA bundle" in verdict.message) == ("InvalidSecret", True)
    objects.annotations[CA_BUNDLE_ANNOTATION] = "ConfigMap/ca/ca.crt/x"
    verdict = await connections.check("ns", "zs", spec(sim))
    assert verdict.reason == "InvalidSecret"
    assert f"annotation {CA_BUNDLE_ANNOTATION} must be ConfigMap/<name>[/<key>]" in verdict.message


@pytest.mark.parametrize(
    "tls",
    [
        {"caBundleRef": {"kind": "Secret", "name": "db-creds", "key": "password"}},
        {"caBundleRef": {"kind": "ConfigMap", "name": "other-ca"}},
        {"caBundleRef": {"kind": "Secret", "name": "creds", "key": "password"}},
    ],
)
async def test_a_connection_cannot_choose_the_ca_nor_probe_other_objects(
    sim: Simulator, manager: tuple[ConnectionManager, Objects], tls: dict[str, object]
) -> None:
    """Whoever picks the CA picks who may receive the credentials; and a CA reference read without the
    Secret's consent would tell a connection editor which objects exist and which keys they hold."""
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    objects.put_secret("db-creds", "1", username="app", password="xyz")
    objects.config_maps[("ns", "other-ca")] = KubeObject("1", {"ca.crt": b"x"})
    verdict = await connections.check("ns", "zs", spec(sim, tls=tls))
    assert verdict.reason == "EndpointNotAllowed"
    assert "spec.tls.caBundleRef is not the CA that Secret ns/creds" in verdict.message
    assert objects.reads == ["Secret/creds"], "nothing but the credentials Secret was read"
    with pytest.raises(ConnectionUnavailable) as caught:
        async with connections.lease("ns", "zs", spec(sim, tls=tls), for_restore=True):
            pass
    assert caught.value.reason == "EndpointNotAllowed"


async def test_the_ca_the_secret_carries_verifies_the_endpoint(
    sim: Simulator, manager: tuple[ConnectionManager, Objects], tmp_path: Path
) -> None:
    ca_pem = issue(tmp_path).ca_cert.read_text()
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE, **{"ca.crt": ca_pem})
    ca = {"caBundleRef": {"kind": "Secret", "name": "creds", "key": "ca.crt"}}
    for tls in ({}, {"tls": ca}):  # the old spelling of the same choice still works
        assert (await connections.check("ns", "zs", spec(sim, **tls))).ready
        async with connections.lease("ns", "zs", spec(sim, **tls)) as client:
            assert client.current is not None
            context = client.current.options.ssl
        assert isinstance(context, ssl.SSLContext)
        assert [cert["subject"] for cert in context.get_ca_certs()] == [
            ((("commonName", "vmclock-controlplane-ca"),),)
        ]
    assert objects.reads == ["Secret/creds"] * 2, "the CA came from the Secret each check read"
    skip = await connections.check("ns", "zs", spec(sim, tls={"insecureSkipVerify": True}))
    assert skip.reason == "EndpointNotAllowed"
    assert "insecureSkipVerify would bypass the CA" in skip.message
    objects.annotations[CA_BUNDLE_ANNOTATION] = "ConfigMap/ca"
    both = await connections.check("ns", "zs", spec(sim))
    assert (both.reason, "names two CAs" in both.message) == ("InvalidSecret", True)


def test_connection_status_refreshes_last_check_time_only_when_due() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    ok = ConnectionVerdict("Connected", "fine", "5.3.0", "ResourceConfig")
    first = connection_status({}, ok, generation=1, now=now, refresh_seconds=300)
    assert first["lastCheckTime"] == "2026-05-01T12:00:00Z"
    assert (first["version"], first["clockTrackStorage"], first["conditions"][0]["status"]) == (
        "5.3.0",
        "ResourceConfig",
        "True",
    )
    soon = connection_status(first, ok, generation=1, now=now + timedelta(seconds=60), refresh_seconds=300)
    assert soon == first  # nothing to write
    later = connection_status(first, ok, generation=1, now=now + timedelta(seconds=300), refresh_seconds=300)
    assert later["lastCheckTime"] == "2026-05-01T12:05:00Z"
    broken = connection_status(
        first,
        ConnectionVerdict("AuthFailed", "nope"),
        generation=1,
        now=now + timedelta(seconds=5),
        refresh_seconds=300,
    )
    assert (broken["conditions"][0]["reason"], broken["version"]) == ("AuthFailed", "5.3.0")


async def test_a_rebuilt_client_drains_the_old_one_instead_of_failing_its_work(
    sim: Simulator, manager: tuple[ConnectionManager, Objects]
) -> None:
    """Secret rotation mid-reconcile: a call in flight on the old client finishes; the lease's next call
    uses the new client, and the old one closes once its last call ended."""
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    vm = sim.state.vm_uuids()[0]
    async with connections.lease("ns", "zs", spec(sim)) as lease:
        old = lease.current
        assert old is not None
        sim.faults.latency = 0.3
        call = asyncio.create_task(lease.set_clock_track(vm, "guest"))
        await asyncio.sleep(0.1)  # its submit is on the wire, through the old client
        objects.put_secret("creds", "2", accountName="admin", password=SECRET_VALUE)
        assert (await connections.check("ns", "zs", spec(sim))).ready
        assert not old._closed
        await call
        sim.faults.latency = 0.0
        await lease.get_vm_inventories([vm])
        assert lease.current is not old, "the lease's next call uses the rebuilt client"
        assert old._closed, "closed once its last call ended"
    assert sim.state.track_of(vm) == "guest"


async def test_a_lease_notices_a_rotated_secret_without_waiting_for_a_check(
    sim: Simulator, manager: tuple[ConnectionManager, Objects]
) -> None:
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    first = await client_of(connections, "ns", "zs", spec(sim))
    objects.put_secret("creds", "2", accountName="admin", password=SECRET_VALUE)
    assert await client_of(connections, "ns", "zs", spec(sim)) is first, "looked at again only every few s"
    seconds_pass(connections)
    assert await client_of(connections, "ns", "zs", spec(sim)) is not first


async def test_a_restore_lease_falls_back_to_the_last_known_good_client(
    sim: Simulator, manager: tuple[ConnectionManager, Objects]
) -> None:
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    good = await client_of(connections, "ns", "zs", spec(sim))
    del objects.secrets[("ns", "creds")]
    seconds_pass(connections)
    with pytest.raises(ConnectionUnavailable, match=r"does not exist or does not allow") as caught:
        await client_of(connections, "ns", "zs", spec(sim))
    assert caught.value.reason == "EndpointNotAllowed"
    async with connections.lease("ns", "zs", None, for_restore=True) as client:
        assert client.current is good


async def test_a_restore_outlives_a_deleted_secret_though_it_reads_like_a_refusal(
    sim: Simulator, manager: tuple[ConnectionManager, Objects]
) -> None:
    """A namespace deletion may remove the Secret before the connection: the verdict then reads exactly like
    an endpoint the Secret refuses, yet the restore still uses the client that last worked."""
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    good = await client_of(connections, "ns", "zs", spec(sim))
    del objects.secrets[("ns", "creds")]
    seconds_pass(connections)
    async with connections.lease("ns", "zs", spec(sim), for_restore=True) as client:
        assert client.current is good
    assert (await connections.check("ns", "zs", spec(sim))).reason == "EndpointNotAllowed"


async def test_credentials_go_only_to_endpoints_their_secret_allows(
    sim: Simulator, manager: tuple[ConnectionManager, Objects]
) -> None:
    """Editing a connection is not reading its Secret: an endpoint the Secret does not list gets nothing."""
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    objects.allowed = ["https://zstack.example:8080"]
    sim.stats.reset()
    verdict = await connections.check("ns", "zs", spec(sim))
    assert verdict.reason == "EndpointNotAllowed"
    assert f"{sim.endpoint}/zstack" in verdict.message
    assert "zstack.example" not in verdict.message, "never another entry of the Secret's allow-list"
    assert sum(sim.stats.calls.values()) == 0, "not a single request reached the endpoint"
    objects.allowed.append(sim.endpoint)
    objects.put_secret("creds", "2", accountName="admin", password=SECRET_VALUE)
    assert (await connections.check("ns", "zs", spec(sim))).ready


async def test_plain_http_needs_the_operators_opt_in(sim: Simulator) -> None:
    objects = Objects()
    objects.allowed.append(sim.endpoint)
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    strict = ConnectionManager(objects)
    try:
        verdict = await strict.check("ns", "zs", spec(sim))
    finally:
        await strict.close_all()
    assert verdict.reason == "InsecureEndpoint"
    assert "--allow-insecure-endpoints" in verdict.message


async def test_a_restore_never_sends_credentials_where_their_owner_no_longer_allows(
    sim: Simulator, manager: tuple[ConnectionManager, Objects]
) -> None:
    """The last-known-good fallback covers objects that are gone, not endpoint rules that say no."""
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    await client_of(connections, "ns", "zs", spec(sim))
    objects.allowed.remove(sim.endpoint)
    objects.put_secret("creds", "2", accountName="admin", password=SECRET_VALUE)
    seconds_pass(connections)
    sim.stats.reset()
    with pytest.raises(ConnectionUnavailable) as caught:
        async with connections.lease("ns", "zs", spec(sim), for_restore=True):
            pass
    assert caught.value.reason == "EndpointNotAllowed"
    assert sum(sim.stats.calls.values()) == 0


async def test_status_tells_a_connection_editor_nothing_about_the_secrets_of_the_namespace(
    manager: tuple[ConnectionManager, Objects],
) -> None:
    """Someone who may edit connections but not read Secrets: an existing Secret that does not allow the
    endpoint and a Secret that does not exist answer alike, and neither shows what a Secret allows."""
    connections, objects = manager
    objects.put_secret("zstack-creds", "7", accountName="admin", password=SECRET_VALUE)
    objects.allowed = ["https://zstack-prod.corp.example:8443", "https://10.20.30.40"]
    verdicts = {
        name: await connections.check(
            "ns",
            f"probe-{name}",
            {"endpoint": "https://attacker.example", "credentialsSecretRef": {"name": name}},
        )
        for name in ("zstack-creds", "nope")
    }
    existing, absent = verdicts["zstack-creds"], verdicts["nope"]
    assert existing.reason == absent.reason == "EndpointNotAllowed"
    assert existing.message.replace("zstack-creds", "NAME") == absent.message.replace("nope", "NAME")
    assert "zstack-prod" not in existing.message
    assert "10.20.30.40" not in existing.message
    assert "https://attacker.example:443/zstack" in existing.message


async def test_a_call_after_the_lease_ended_keeps_no_client_for_it(
    sim: Simulator, manager: tuple[ConnectionManager, Objects]
) -> None:
    """A shared read a reconcile started may outlive its lease: its calls use a client for themselves only,
    so a client retired later is still closed once its last call ends."""
    connections, objects = manager
    objects.put_secret("creds", "1", accountName="admin", password=SECRET_VALUE)
    async with connections.lease("ns", "zs", spec(sim)) as lease:
        first = lease.current
    assert first is not None
    await lease.get_vm_inventories(sim.state.vm_uuids()[:1])  # the shared batch, after the lease
    assert lease.current is None
    objects.put_secret("creds", "2", accountName="admin", password=SECRET_VALUE)
    assert (await connections.check("ns", "zs", spec(sim))).ready
    assert first._closed, "the retired client is closed: nothing holds it any more"

"""Tenancy and trust end to end (design.md §6, issue 9): one operator process serves every namespace.

Real kube-apiserver + etcd, the simulator, the hostile management node of ``tests/hostile/server.py`` and the
operator, each its own process. The tests act as tenants would (``kubectl apply``, ``kubectl annotate``) and
judge only by what the API server, the simulator, the hostile server and ``/proc`` report:

- credentials go only to endpoints their Secret allows, and the refusal says how to allow one;
- a tenant cannot block another's VMs by listing their UUIDs, and never learns another tenant's names;
- one tenant's hostile endpoint neither slows another's 1,000-VM policy by more than half nor takes down
  liveness or the memory limit.

The operator runs as deploy/overlays/tenants installs it (issue 15): the overlay rendered for the namespaces
the tests use, applied whole, and the operator process holding only a token of the rendered ServiceAccount,
serving exactly the rendered ``--namespace`` list. Any permission the overlay lacks fails a test here.

Most tenants here sign with an AccessKey, so the module's leak scan of the operator log also covers real
AccessKey traffic, including a server that hands the signature back in its error replies.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from controlplane import ControlPlane, Kubectl
from deploy.serviceaccount import refusals
from harness import (
    CONNECTION,
    POLICY,
    SimulatorProcess,
    Tenant,
    access_key_secret,
    account_secret,
    condition,
    condition_is,
    connection,
    holds_for,
    phases,
    policy,
    wait_for,
)
from harness.credentials import RunCredentials
from harness.e2e import CONNECTION_NAME, E2E, READY_TIMEOUT, SECRET_NAME, module_simulator
from harness.hostile import HostileProcess
from harness.objects import ALLOWED_ENDPOINTS, Obj
from harness.operator import OperatorProcess
from harness.tenants_overlay import TenantsInstall, install_tenants
from harness.vitals import MIB, Vitals, cpu_seconds, quantity_bytes

SIMULATED_VMS = 4_200
"""About 80 % are seeded on track host: enough for three disjoint 1,000-VM policies that each write every
VM, plus the small policies of the other tests."""

SERVED_NAMESPACES = 11
"""Tenant namespaces the overlay is rendered for: each test's own (4 tests, one parametrized twice), one more
for B in each ownership test (3) and three Bs in the hostile test."""

FLEET = 1_000
CONVERGE_TIMEOUT = 110.0  # below the kubectl wrapper's own 120 s
"""B must converge while A is hostile; how much slower it is (the issue's goal: within 1.5x of alone) is
printed, not asserted: timing goals are measured, never timed tests (on this shared 2-core machine the ratio
swung from 0.5 to 2.2 between runs, about as much with A's connections answering plain 404s as with the
attacks). An operator without reply bounds fails this test outright: B never became Ready within
CONVERGE_TIMEOUT."""

KEYS_SECRET = "zstack-keys"
ELSEWHERE = "https://zstack.elsewhere.example"
DEPLOYMENT = Path(__file__).resolve().parents[2] / "deploy" / "base" / "deployment.yaml"

ACCOUNT, ACCESS_KEY = SECRET_NAME, KEYS_SECRET
HOSTILE_CONNECTIONS = {
    # attack (context path on the hostile server) -> the Secret the connection uses
    "huge": ACCOUNT,  # 600 MB declared body, on every path (the readiness check first)
    "endless": ACCESS_KEY,  # chunked body that never ends
    "endless-text": ACCOUNT,  # a plain-text 400 that never ends
    "gzip": ACCESS_KEY,  # 128 MiB once inflated
    "nested": ACCOUNT,  # 100,000 levels of JSON arrays
    "digits": ACCOUNT,  # getVersion answers a million digits
    "redirect": ACCESS_KEY,  # every request redirected to the bystander
    "pages": ACCOUNT,  # well-behaved check; full pages without total on the global config listing
    "overfull": ACCESS_KEY,  # more VM rows than asked for
    "error-text": ACCOUNT,  # megabytes of error description on VM queries
    "inventory": ACCESS_KEY,  # VM rows with 400 kB strings and absurd numbers
    "echo": ACCESS_KEY,  # the request's Authorization header handed back in the error text
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def simulator(
    tmp_path_factory: pytest.TempPathFactory, credentials: RunCredentials
) -> Iterator[SimulatorProcess]:
    """Like the conftest's, with enough VMs for three 1,000-VM policies; jobs take the default 50 ms."""
    with module_simulator(tmp_path_factory.mktemp("simulator"), credentials, vms=SIMULATED_VMS) as sim:
        yield sim


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileProcess]:
    with HostileProcess(log_path=tmp_path_factory.mktemp("hostile") / "hostile.log") as server:
        yield server


@pytest.fixture(scope="module")
def installed(controlplane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> TenantsInstall:
    run = secrets.token_hex(3)
    return install_tenants(
        controlplane.kubectl(),
        tmp_path_factory.mktemp("tenants-overlay"),
        namespace=f"tenancy-{run}-operator",
        tenants=tuple(f"tenancy-{run}-{index:02d}" for index in range(SERVED_NAMESPACES)),
    )


@pytest.fixture(scope="module")
def operator(
    installed: TenantsInstall, tmp_path_factory: pytest.TempPathFactory, credentials: RunCredentials
) -> Iterator[OperatorProcess]:
    """Replaces the conftest's admin-kubeconfig operator; the same checks at module teardown, and also: the
    ServiceAccount's token is never logged, and no request was refused (kopf only warns when it may not
    watch Namespaces, so a missing permission would not always fail a test by itself)."""
    process = installed.operator(
        log_path=tmp_path_factory.mktemp("operator") / "operator.log", pod_name="vmclock-tenancy"
    )
    with process:
        yield process
        crashed = not process.alive()
    assert not crashed, f"the operator died during the module; log {process.log_path}:\n{process.log_tail()}"
    log = process.log_text()
    leaks = credentials.leaks_in(log)
    assert not leaks, f"operator log {process.log_path} contains: {', '.join(leaks)}"
    assert installed.login.token not in log, f"operator log {process.log_path} contains its token"
    assert refusals(log, enabled=installed.serving) == [], (
        f"the overlay RBAC refused the operator; log {process.log_path}"
    )


@pytest.fixture
def namespace(installed: TenantsInstall, kubectl: Kubectl) -> Iterator[str]:
    """The test's own tenant namespace: one the overlay serves."""
    name = installed.take()
    yield name
    installed.retire(name)
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def tenants(installed: TenantsInstall, kubectl: Kubectl) -> Iterator[Callable[[], Tenant]]:
    """More tenants besides ``e2e.tenant``, each in another namespace the overlay serves."""
    made: list[str] = []

    def make() -> Tenant:
        made.append(installed.take())
        return Tenant(kubectl, made[-1])

    yield make
    for name in made:
        installed.retire(name)
        kubectl("delete", "namespace", name, "--wait=false")


# --------------------------------------------------------------------------- helpers


def keys_secret(e2e: E2E, *, allow: str) -> Obj:
    return access_key_secret(KEYS_SECRET, e2e.credentials.key_id, e2e.credentials.key_secret, allow=allow)


def wait_connection(tenant: Tenant, name: str, status: str, reason: str | None = None) -> Obj:
    return wait_for(
        lambda: tenant.connection(name),
        lambda c: condition_is(c, "Ready", status, reason),
        timeout=READY_TIMEOUT,
        what=f"connection {tenant.namespace}/{name} Ready={status} {reason or ''}",
    )


def connect_with_keys(e2e: E2E, tenant: Tenant) -> None:
    """An AccessKey Secret allowing the simulator and a Ready connection ``default`` to it."""
    endpoint = e2e.simulator.endpoint
    tenant.apply(keys_secret(e2e, allow=endpoint), connection(CONNECTION_NAME, endpoint, KEYS_SECRET))
    wait_connection(tenant, CONNECTION_NAME, "True", "Connected")


def annotate_command(secret: str, namespace: str, allowed: str) -> list[str]:
    """What the Secret's owner runs, knowing their own list (status never shows it to anyone)."""
    return ["annotate", "secret", secret, "-n", namespace, f"{ALLOWED_ENDPOINTS}={allowed}", "--overwrite"]


def text_of(tenant: Tenant, resource: str, name: str) -> str:
    """Everything a tenant can read about one object: ``kubectl get -o json`` and its Events."""
    got = tenant.kubectl("get", resource, name, "-o", "json", namespace=tenant.namespace).stdout
    events = tenant.kubectl("get", "events", "-o", "json", namespace=tenant.namespace).stdout
    return got + events


@dataclass(frozen=True)
class FleetRun:
    seconds: float  # kubectl apply of the policy -> its Ready=True
    cpu: dict[str, float]  # CPU seconds each watched process used meanwhile


def converge_fleet(
    e2e: E2E,
    tenant: Tenant,
    uuids: list[str],
    *,
    watched: Mapping[str, int],
    meanwhile: Callable[[], None] = lambda: None,
) -> FleetRun:
    """Tenant B: a Ready AccessKey connection, then (after ``meanwhile``) a policy moving ``uuids`` to guest,
    timed until Ready=True with ``kubectl wait`` (a watch: it costs the machine the same however long the
    operator takes, unlike polling). ``watched``: name -> pid of the processes whose CPU time to report."""
    connect_with_keys(e2e, tenant)
    meanwhile()
    cpu, started = {name: cpu_seconds(pid) for name, pid in watched.items()}, time.monotonic()
    tenant.apply(policy("fleet", "guest", uuids))
    ready = ("wait", "--for=condition=Ready", f"{POLICY}/fleet", f"--timeout={CONVERGE_TIMEOUT:.0f}s")
    tenant.kubectl(*ready, namespace=tenant.namespace)
    seconds = time.monotonic() - started
    run = FleetRun(seconds, {name: cpu_seconds(pid) - cpu[name] for name, pid in watched.items()})
    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "guest")
    return run


def cpu_table(before: FleetRun, shared: FleetRun, after: FleetRun) -> str:
    return (
        "; ".join(
            f"{name} {before.cpu[name]:.1f} / {shared.cpu[name]:.1f} / {after.cpu[name]:.1f}"
            for name in shared.cpu
        )
        + " (before / with A / after)"
    )


def deployment_memory_limit() -> int:
    """The operator container's memory limit as shipped in deploy/base (the Deployment's 384Mi)."""
    deployment = yaml.safe_load(DEPLOYMENT.read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return quantity_bytes(container["resources"]["limits"]["memory"])


# --------------------------------------------------------------------------- endpoint binding (§6.1)


def test_credentials_go_only_to_endpoints_their_secret_allows(e2e: E2E, hostile: HostileProcess) -> None:
    ns, sim = e2e.namespace, e2e.simulator.endpoint
    counted = f"binding-{secrets.token_hex(4)}"  # a context path of its own: every request to it is ours
    # The hostile origin is listed without a path, which allows its /zstack only, not /<counted>.
    owners_list = f"{ELSEWHERE},{hostile.origin}"
    e2e.tenant.apply(
        account_secret(SECRET_NAME, e2e.credentials.account, e2e.credentials.password, allow=owners_list),
        connection("counted", hostile.endpoint(counted), SECRET_NAME),
        connection(CONNECTION_NAME, sim, SECRET_NAME),
        connection("no-secret", sim, "no-such-secret"),
    )
    uuids = e2e.vms.take(3, track="host")
    e2e.tenant.apply(
        policy("windows", "guest", uuids), policy("lured", "guest", uuids[:1], connection_name="counted")
    )

    refused = {
        name: condition(wait_connection(e2e.tenant, name, "False", "EndpointNotAllowed"), "Ready")["message"]
        for name in ("counted", CONNECTION_NAME, "no-secret")
    }
    assert f"{hostile.endpoint(counted)} to its annotation {ALLOWED_ENDPOINTS}" in refused["counted"], refused
    assert f"{sim}/zstack to its annotation {ALLOWED_ENDPOINTS}" in refused[CONNECTION_NAME], refused
    for message in refused.values():  # status never shows what the Secret allows
        assert "elsewhere" not in message
    # A missing Secret reads exactly like one that does not allow the endpoint.
    assert refused["no-secret"] == refused[CONNECTION_NAME].replace(SECRET_NAME, "no-such-secret")
    e2e.tenant.wait_policy(
        "lured",
        lambda p: condition_is(p, "Ready", "False", "ConnectionNotReady"),
        timeout=READY_TIMEOUT,
        what="Ready=False/ConnectionNotReady",
    )
    holds_for(
        lambda: hostile.requests().get(counted, 0),
        lambda sent: sent == 0,
        duration=5.0,
        what="no request to the endpoint the Secret does not allow",
    )

    # The Secret's owner adds the simulator to their list, as the status says.
    e2e.kubectl(*annotate_command(SECRET_NAME, ns, f"{owners_list},{sim}"))

    wait_connection(e2e.tenant, CONNECTION_NAME, "True", "Connected")
    got = e2e.tenant.wait_ready("windows", timeout=READY_TIMEOUT)
    assert phases(got) == dict.fromkeys(uuids, "Applied")
    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "guest")
    # Allowing the simulator allowed nothing else: the lured connection still sends nothing.
    assert condition_is(e2e.tenant.connection("counted"), "Ready", "False", "EndpointNotAllowed")
    assert hostile.requests().get(counted, 0) == 0


# --------------------------------------------------------------------------- ownership (§6.3, §6.4)


def older_policy_elsewhere(
    e2e: E2E, tenants: Callable[[], Tenant], uuids: list[str], *, management: str, allow: str
) -> tuple[Tenant, str]:
    """Tenant B: a Secret allowing ``allow``, a connection to the simulator and a policy (older than any
    A creates next) listing ``uuids`` with track host. Returns B and the policy's name."""
    b = tenants()
    name = f"older-{secrets.token_hex(4)}"
    b.apply(keys_secret(e2e, allow=allow), connection(CONNECTION_NAME, e2e.simulator.endpoint, KEYS_SECRET))
    b.apply(policy(name, "host", uuids, management=management))
    b.wait_policy(
        name, lambda p: bool(condition(p, "Ready")), timeout=READY_TIMEOUT, what="a Ready condition"
    )
    time.sleep(1.1)  # creationTimestamp has whole seconds: A's policy must be strictly younger
    return b, name


@pytest.mark.parametrize(
    ("management", "reachable"),
    [
        pytest.param("Enforce", False, id="b-connection-not-ready"),
        pytest.param("Observe", True, id="b-observe"),
    ],
)
def test_a_policy_that_cannot_act_on_the_vms_does_not_block_their_tenant(
    e2e: E2E, tenants: Callable[[], Tenant], management: str, reachable: bool
) -> None:
    uuids = e2e.vms.take(3, track="host")
    b, b_policy = older_policy_elsewhere(
        e2e, tenants, uuids, management=management, allow=e2e.simulator.endpoint if reachable else ELSEWHERE
    )
    wait_connection(b, CONNECTION_NAME, "True" if reachable else "False")
    e2e.connect()
    e2e.tenant.apply(policy("mine", "guest", uuids))

    got = e2e.tenant.wait_ready("mine", timeout=READY_TIMEOUT)

    older = b.policy(b_policy)["metadata"]["creationTimestamp"]
    assert older < got["metadata"]["creationTimestamp"]
    assert phases(got) == dict.fromkeys(uuids, "Applied")
    assert got["status"]["summary"]["conflicted"] == 0
    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "guest")
    e2e.tenant.wait_event("mine", "Applied", timeout=READY_TIMEOUT)
    seen = text_of(e2e.tenant, POLICY, "mine")
    assert b.namespace not in seen
    assert b_policy not in seen


def test_a_real_owner_in_another_namespace_stays_anonymous(e2e: E2E, tenants: Callable[[], Tenant]) -> None:
    uuids = e2e.vms.take(3, track="host")
    b, b_policy = older_policy_elsewhere(
        e2e, tenants, uuids, management="Enforce", allow=e2e.simulator.endpoint
    )
    b.wait_ready(b_policy, timeout=READY_TIMEOUT)
    e2e.connect()
    e2e.tenant.apply(policy("mine", "guest", uuids))

    got = e2e.tenant.wait_policy(
        "mine",
        lambda p: condition_is(p, "Ready", "False", "Conflict"),
        timeout=READY_TIMEOUT,
        what="Ready=False/Conflict",
    )
    e2e.tenant.wait_event("mine", "Conflict", timeout=READY_TIMEOUT)

    assert phases(got) == dict.fromkeys(uuids, "Conflict")
    assert e2e.simulator.admin.tracks(uuids) == dict.fromkeys(uuids, "host")
    seen = text_of(e2e.tenant, POLICY, "mine")
    assert b.namespace not in seen
    assert b_policy not in seen
    assert "another namespace" in seen  # the owner is named, anonymously


# --------------------------------------------------------------------------- a hostile tenant (§6.2)


def hostile_tenant(e2e: E2E, tenant: Tenant, hostile: HostileProcess) -> None:
    """Tenant A: one connection per attack, each with a small policy, Secrets allowing the hostile server
    (so the operator does send it requests: A's own credentials, to an endpoint A chose)."""
    creds = e2e.credentials
    attacks = ",".join(hostile.endpoint(attack) for attack in HOSTILE_CONNECTIONS)
    objs = [
        account_secret(ACCOUNT, creds.account, creds.password, allow=attacks),
        keys_secret(e2e, allow=attacks),
    ]
    for attack, secret in HOSTILE_CONNECTIONS.items():
        objs.append(connection(attack, hostile.endpoint(attack), secret))
        objs.append(policy(attack, "guest", e2e.vms.take(2), connection_name=attack))
    tenant.apply(*objs)


def test_a_hostile_endpoint_harms_only_its_own_tenant(
    e2e: E2E, tenants: Callable[[], Tenant], hostile: HostileProcess
) -> None:
    """B's time with A hostile is compared with B alone measured just before and just after (A's objects
    deleted), so that load from outside this test shifts the baseline as much as the measurement."""
    operator, a = e2e.operator, e2e.tenant
    pids = {"operator": operator.pid, "simulator": e2e.simulator.pid, "hostile server": hostile.pid}
    watched = {name: pid for name, pid in pids.items() if pid is not None}
    assert watched.keys() == pids.keys()
    limit = deployment_memory_limit()
    fleets = [e2e.vms.take(FLEET, track="host") for _ in range(3)]

    with Vitals(watched["operator"], operator.liveness_status) as vitals:
        before = converge_fleet(e2e, tenants(), fleets[0], watched=watched)
        shared = converge_fleet(
            e2e,
            tenants(),
            fleets[1],
            watched=watched,
            meanwhile=lambda: hostile_tenant(e2e, a, hostile),
        )
        attacked = hostile.requests()
        seen_by_a = a.kubectl("get", f"{POLICY},{CONNECTION},events", "-o", "json", namespace=a.namespace)
        a.kubectl("delete", f"{POLICY},{CONNECTION}", "--all", "--timeout=60s", namespace=a.namespace)
        after = converge_fleet(e2e, tenants(), fleets[2], watched=watched)

    alone = (before.seconds + after.seconds) / 2
    peak = vitals.peak_bytes()
    print(
        f"\nB's {FLEET}-VM policy, apply -> Ready: alone {before.seconds:.2f}s (before A) and "
        f"{after.seconds:.2f}s (after A), with A hostile {shared.seconds:.2f}s; "
        f"ratio {shared.seconds / alone:.2f} to their mean\n"
        f"CPU seconds meanwhile: {cpu_table(before, shared, after)}\n"
        f"operator peak RSS {peak / MIB:.0f} MiB (limit {limit / MIB:.0f} MiB); liveness: "
        f"{len(vitals.probes)} probes, {len(vitals.failed_probes())} not 200, "
        f"slowest answer {vitals.slowest_probe() * 1000:.0f} ms\n"
        f"requests A's connections sent to the hostile server: {attacked}"
    )
    missed = [attack for attack in HOSTILE_CONNECTIONS if not attacked.get(attack)]
    assert missed == [], f"A's connections never reached these attacks: {missed}"
    assert attacked.get("bystander", 0) == 0
    assert len(vitals.probes) >= 10
    assert vitals.failed_probes() == []
    assert peak < limit, f"peak RSS {peak / MIB:.0f} MiB"
    assert operator.alive()
    assert e2e.credentials.leaks_in(seen_by_a.stdout) == []

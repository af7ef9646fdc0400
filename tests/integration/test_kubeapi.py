"""KubeApi against the real kube-apiserver: the typed answers the core loop relies on (design §5.10, §5.13).

The policy controller's unit tests use an in-memory stand-in that answers Gone / Stale / Rejected; this module
shows the real API server gives exactly those answers to the real calls, through `kubernetes.aio`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from controlplane import ControlPlane, Kubectl
from vmclock.engine.spec import POLICY_PLURAL
from vmclock.kubeapi import Gone, KubeApi, Rejected, Stale

T = TypeVar("T")
POLICY = "p"
UUID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
async def kube(controlplane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[KubeApi]:
    monkeypatch.setenv("KUBECONFIG", str(controlplane.kubeconfig))
    api = KubeApi()
    yield api
    await api.close()


def apply_policy(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(
        {
            "apiVersion": "vmclock.zstack.io/v1alpha1",
            "kind": "VmClockPolicy",
            "metadata": {"name": POLICY},
            "spec": {"track": "guest", "vmUuids": [UUID]},
        },
        namespace=namespace,
    )


async def read_meta(kube: KubeApi, namespace: str) -> tuple[str, str]:
    body = await kube.read_object(POLICY_PLURAL, namespace, POLICY)
    assert body is not None
    return str(body["metadata"]["uid"]), str(body["metadata"]["resourceVersion"])


def status(phase: str = "InSync", uuid: str = UUID) -> dict[str, object]:
    return {"observedGeneration": 1, "vms": [{"uuid": uuid, "phase": phase}]}


@pytest.mark.usefixtures("installed_crds")
async def test_a_status_write_lands_only_on_the_incarnation_and_version_it_saw(
    kube: KubeApi, kubectl: Kubectl, namespace: str
) -> None:
    apply_policy(kubectl, namespace)
    uid, version = await read_meta(kube, namespace)
    written = await kube.write_status(
        POLICY_PLURAL, namespace, POLICY, status(), uid=uid, resource_version=version
    )
    assert written.resource_version != version
    body = await kube.read_object(POLICY_PLURAL, namespace, POLICY)
    assert body is not None
    assert body["status"]["vms"][0]["phase"] == "InSync"

    with pytest.raises(Stale):  # an older write, still on its way, never wins
        await kube.write_status(
            POLICY_PLURAL, namespace, POLICY, status("Pending"), uid=uid, resource_version=version
        )
    kubectl("annotate", "vmclockpolicy", POLICY, "-n", namespace, "touched=yes")  # kopf patches like this
    with pytest.raises(Stale) as stale:
        await kube.write_status(
            POLICY_PLURAL, namespace, POLICY, status(), uid=uid, resource_version=written.resource_version
        )
    # what it read to tell Stale from Gone comes along, so the caller need not read it again
    assert stale.value.current is not None
    assert stale.value.current["metadata"]["annotations"]["touched"] == "yes"
    assert stale.value.current["metadata"]["resourceVersion"] == (await read_meta(kube, namespace))[1]

    kubectl("delete", "vmclockpolicy", POLICY, "-n", namespace)
    apply_policy(kubectl, namespace)  # a namesake: same name, another uid
    _, fresh = await read_meta(kube, namespace)
    with pytest.raises(Gone):
        await kube.write_status(POLICY_PLURAL, namespace, POLICY, status(), uid=uid, resource_version=fresh)
    kubectl("delete", "vmclockpolicy", POLICY, "-n", namespace)
    with pytest.raises(Gone):
        await kube.write_status(POLICY_PLURAL, namespace, POLICY, status(), uid=uid, resource_version=fresh)
    assert await kube.read_object(POLICY_PLURAL, namespace, POLICY) is None


@pytest.mark.usefixtures("installed_crds")
async def test_a_status_the_schema_refuses_is_rejected_not_stale(
    kube: KubeApi, kubectl: Kubectl, namespace: str
) -> None:
    apply_policy(kubectl, namespace)
    uid, version = await read_meta(kube, namespace)
    with pytest.raises(Rejected) as refused:
        await kube.write_status(
            POLICY_PLURAL, namespace, POLICY, status(uuid="Not-A-Uuid"), uid=uid, resource_version=version
        )
    assert refused.value.status == 422


@pytest.mark.usefixtures("installed_crds")
async def test_config_maps_are_created_replaced_and_deleted_exactly_as_read(
    kube: KubeApi, namespace: str
) -> None:
    body = {"metadata": {"name": "rec", "namespace": namespace}, "data": {"k": "1"}}
    created = await kube.create_config_map(namespace, body)
    with pytest.raises(Stale):
        await kube.create_config_map(namespace, body)
    version = created["metadata"]["resourceVersion"]
    changed = {"metadata": {**body["metadata"], "resourceVersion": version}, "data": {"k": "2"}}
    replaced = await kube.replace_config_map(namespace, "rec", changed)
    with pytest.raises(Stale):
        await kube.replace_config_map(
            namespace, "rec", {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
        )
    uid = created["metadata"]["uid"]
    with pytest.raises(Stale):
        await kube.delete_config_map(namespace, "rec", uid=uid, resource_version=version)
    assert await kube.delete_config_map(
        namespace, "rec", uid=uid, resource_version=replaced["metadata"]["resourceVersion"]
    )
    assert not await kube.delete_config_map(namespace, "rec", uid=uid, resource_version="1")
    assert await kube.get_config_map(namespace, "rec") is None


GENERATED_CORE_API = "kubernetes.aio.client.api.core_v1_api"
READ_A_SECRET = """
import asyncio, sys
from vmclock.kubeapi import KubeApi

async def main(namespace):
    api = KubeApi()
    try:
        found = await api.read_secret(namespace, "s")
        missing = await api.read_secret(namespace, "absent")
    finally:
        await api.close()
    print(found.data["k"].decode(), missing, "{module}" in sys.modules)

asyncio.run(main(sys.argv[1]))
"""


def test_a_secret_is_read_without_the_generated_core_api_module(
    controlplane: ControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    """The generated CoreV1Api (a 6 MB module) costs about a second of the event loop and 24 MiB when the
    first Secret is read, which every start waits for (the connection check); the operator's few core
    calls are made without it. A fresh process, so nothing else imported it before."""
    kubectl("create", "secret", "generic", "s", "--from-literal=k=v", "-n", namespace)
    done = subprocess.run(
        [sys.executable, "-c", READ_A_SECRET.replace("{module}", GENERATED_CORE_API), namespace],
        env={**os.environ, "KUBECONFIG": str(controlplane.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == ["v", "None", "False"], done.stdout + done.stderr


class CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting what is handed to a thread."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.mark.usefixtures("installed_crds")
async def test_calls_stay_on_the_event_loop(
    kube: KubeApi, kubectl: Kubectl, namespace: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A status write per small reconcile must not cost a thread hop: aiohttp's session, trusting the
    environment, reads ~/.netrc in the default executor before every request."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-for-the-api-server\n")
    monkeypatch.setenv("NETRC", str(netrc))
    apply_policy(kubectl, namespace)
    await read_meta(kube, namespace)  # the client is built (its kubeconfig read) on the first call
    executor = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    try:
        uid, version = await read_meta(kube, namespace)
        await kube.write_status(POLICY_PLURAL, namespace, POLICY, status(), uid=uid, resource_version=version)
        await kube.read_config_map(namespace, "absent")
    finally:
        executor.shutdown()
    assert executor.submitted == 0

"""The sandbox's rewriting of ``examples/``: only the endpoint and the VM UUIDs change."""

from __future__ import annotations

import base64
import copy
from pathlib import Path

from harness import SimVm, policy
from sandbox import examples

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENDPOINT = "http://127.0.0.1:45678"


def _fleet() -> list[SimVm]:
    """Two VMs of each (platform, track) pair, with recognisable UUIDs."""
    fleet = []
    for platform in ("Linux", "Windows", "WindowsVirtio", "Other"):
        for track in ("guest", "host"):
            for n in range(2):
                uuid = f"{platform[:3].lower()}{track}{n}".encode().hex().ljust(32, "0")[:32]
                fleet.append(SimVm(uuid, f"{platform}-{track}-{n}", platform, "Running", track))
    return fleet


def test_the_shipped_examples_change_only_endpoint_and_uuids() -> None:
    """Only the endpoint (in the connection and in the Secret's allowed-endpoints) and the VM UUIDs."""
    objs = examples.load(EXAMPLES)
    fleet = {vm.uuid: vm for vm in _fleet()}

    rewritten = examples.rewrite(objs, ENDPOINT, list(fleet.values()))

    assert [o["kind"] for o in rewritten] == [o["kind"] for o in objs]
    assert {o["kind"] for o in objs} >= {"Secret", "ZStackConnection", "VmClockPolicy"}
    for before, after in zip(objs, rewritten, strict=True):
        expected = copy.deepcopy(before)
        if before["kind"] == "ZStackConnection":
            expected["spec"]["endpoint"] = ENDPOINT
        if before["kind"] == "Secret":
            expected["metadata"]["annotations"][examples.ALLOWED_ENDPOINTS] = ENDPOINT
        if before["kind"] == "VmClockPolicy":
            assert len(after["spec"]["vmUuids"]) == len(before["spec"]["vmUuids"])
            assert set(after["spec"]["vmUuids"]) <= set(fleet)
            expected["spec"]["vmUuids"] = after["spec"]["vmUuids"]
        assert after == expected
    picked = [u for o in rewritten if o["kind"] == "VmClockPolicy" for u in o["spec"]["vmUuids"]]
    assert len(picked) == len(set(picked))


def test_enforce_gets_windows_vms_to_change_and_observe_gets_vms_already_in_sync() -> None:
    fleet = _fleet()
    by_uuid = {vm.uuid: vm for vm in fleet}
    objs = [
        policy("enforce", "guest", ["a" * 32, "b" * 32]),
        policy("observe", "host", ["c" * 32], management="Observe"),
    ]

    enforce, observe = examples.rewrite(objs, ENDPOINT, fleet)

    for uuid in enforce["spec"]["vmUuids"]:
        assert by_uuid[uuid].platform in examples.WINDOWS_PLATFORMS
        assert by_uuid[uuid].track == "host"
    (observed,) = observe["spec"]["vmUuids"]
    assert (by_uuid[observed].platform, by_uuid[observed].track) == ("Linux", "host")


def test_a_uuid_shared_by_two_policies_stays_shared() -> None:
    shared = "d" * 32
    objs = [policy("one", "guest", [shared, "e" * 32]), policy("two", "guest", ["f" * 32, shared])]

    one, two = examples.rewrite(objs, ENDPOINT, _fleet())

    assert one["spec"]["vmUuids"][0] == two["spec"]["vmUuids"][1]
    assert len({*one["spec"]["vmUuids"], *two["spec"]["vmUuids"]}) == 3


def test_credentials_come_from_string_data_and_data() -> None:
    objs = examples.load(EXAMPLES)
    keys = {
        "kind": "Secret",
        "data": {
            "accessKeyId": base64.b64encode(b"key-id").decode(),
            "accessKeySecret": base64.b64encode(b"key-secret").decode(),
        },
    }

    creds = examples.credentials([*objs, keys])

    assert creds.accounts == [("admin", "password")]
    assert creds.access_keys == [("key-id", "key-secret")]

"""The harness's SimulatorAdmin against a real `python -m vmclock.simulator` process: what end-to-end tests
use to change the fleet "next week", checked through the process's ZStack API."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness import SimulatorProcess


class ZStackView:
    """Logged-in GETs against the process's ZStack API (plain urllib, none of our client code)."""

    def __init__(self, endpoint: str) -> None:
        self.base = endpoint + "/zstack"
        login = {
            "logInByAccount": {"accountName": "admin", "password": hashlib.sha512(b"password").hexdigest()}
        }
        self.session = self._call("PUT", "/v1/accounts/login", login)["inventory"]["uuid"]

    def _call(self, method: str, path: str, body: Any = None, session: str | None = None) -> Any:
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"OAuth {session}"} if session else {},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def uuids(self, query: str) -> list[str]:
        body = self._call("GET", f"/v1/vm-instances?{query}&fields=uuid", session=self.session)
        return [vm["uuid"] for vm in body["inventories"]]


def test_simulator_admin_changes_the_fleet_of_a_running_simulator(tmp_path: Path) -> None:
    with SimulatorProcess(log_path=tmp_path / "sim.log", vms=10, seed=5) as sim:
        admin, zstack = sim.admin, ZStackView(sim.endpoint)
        seeded = admin.vms()
        assert all(vm.zone_uuid and vm.cluster_uuid for vm in seeded)

        vm = admin.add_vm("win-late", platform="Windows", user_tags=["env::canary"], track="host")
        assert (vm.platform, vm.state, vm.track, vm.user_tags) == (
            "Windows",
            "Running",
            "host",
            ("env::canary",),
        )
        assert zstack.uuids("q=__userTag__=env::canary") == [vm.uuid]
        assert [v.uuid for v in admin.vms()] == [*(v.uuid for v in seeded), vm.uuid]

        admin.set_platform(vm.uuid, "Linux")
        assert vm.uuid in zstack.uuids("q=platform=Linux")
        admin.add_user_tag(vm.uuid, "team::b")
        assert zstack.uuids("q=__userTag__=env::canary&q=__userTag__=team::b") == [vm.uuid]
        admin.remove_user_tag(vm.uuid, "env::canary")
        assert zstack.uuids("q=__userTag__=env::canary") == []

        admin.delete_vm(vm.uuid)
        assert zstack.uuids(f"q=uuid={vm.uuid}") == []
        with pytest.raises(urllib.error.HTTPError) as refused:
            admin.delete_vm(vm.uuid)
        assert refused.value.code == 404

"""Fixtures for the end-to-end tests: one simulator and one operator process per test module.

Sharing the two processes within a module keeps the suite fast; isolation comes from a fresh namespace and
fresh VM UUIDs per test (``e2e.vms.take``), so a test can attribute every simulator write to itself.  At
module teardown the operator must still be running (a crash would otherwise go unnoticed) and its log must
not contain any credential.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from controlplane import ControlPlane, Kubectl
from harness import OperatorProcess, SimulatorProcess, Tenant
from harness.credentials import RunCredentials
from harness.e2e import E2E, VmPool

SIMULATED_VMS = 150


@pytest.fixture(scope="session")
def credentials() -> RunCredentials:
    return RunCredentials()


@pytest.fixture(scope="module")
def operator_args() -> tuple[str, ...]:
    """Extra ``vmclock run`` flags; a module overrides this fixture to change them."""
    return ()


@pytest.fixture(scope="module")
def simulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, credentials: RunCredentials
) -> Iterator[SimulatorProcess]:
    """`SIMULATED_VMS` seeded VMs, or as many as the module's own `SIMULATED_VMS` says."""
    sim = SimulatorProcess(
        log_path=tmp_path_factory.mktemp("simulator") / "simulator.log",
        vms=getattr(request.module, "SIMULATED_VMS", SIMULATED_VMS),
        seed=secrets.randbelow(1_000_000),
        accounts=credentials.simulator_accounts,
        access_keys=credentials.simulator_access_keys,
    )
    with sim:
        yield sim


@pytest.fixture(scope="module")
def operator(
    controlplane: ControlPlane,
    installed_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
    credentials: RunCredentials,
    operator_args: tuple[str, ...],
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        log_path=tmp_path_factory.mktemp("operator") / "operator.log",
        kubeconfig=controlplane.kubeconfig,
        extra_args=operator_args,
    )
    with process:
        yield process
        crashed = not process.alive()
    assert not crashed, f"the operator died during the module; log {process.log_path}:\n{process.log_tail()}"
    leaks = credentials.leaks_in(process.log_text())
    assert not leaks, f"operator log {process.log_path} contains: {', '.join(leaks)}"


@pytest.fixture(scope="module")
def vm_pool(simulator: SimulatorProcess) -> VmPool:
    return VmPool(simulator.admin.vms())


@pytest.fixture
def e2e(  # noqa: PLR0917 - pytest injects fixtures as parameters
    simulator: SimulatorProcess,
    operator: OperatorProcess,
    credentials: RunCredentials,
    vm_pool: VmPool,
    kubectl: Kubectl,
    namespace: str,
) -> E2E:
    return E2E(simulator, operator, credentials, vm_pool, Tenant(kubectl, namespace))

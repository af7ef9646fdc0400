"""`vmclock plan` run as a user runs it: a separate process, manifests in files or on stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .objects import API_VERSION

PLAN_TIMEOUT = 120.0
"""Generous for one plan of a few dozen VMs on a loaded 2-core machine (an idle one takes about a second)."""


@dataclass(frozen=True)
class PlanRun:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def document(self) -> dict[str, Any]:
        """The `-o json` document."""
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed

    def policy(self, name: str) -> dict[str, Any]:
        return next(p for p in self.document()["policies"] if p["name"] == name)

    def actions(self, name: str) -> dict[str, str]:
        """uuid -> action of one policy's VMs."""
        return {vm["uuid"]: vm["action"] for vm in self.policy(name)["vms"]}


def write_manifests(path: Path, manifests: Iterable[Mapping[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all([dict(m) for m in manifests], sort_keys=False))
    return path


def run_plan(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
) -> PlanRun:
    """`python -m vmclock plan ARGS` with `env` added to a copy of this process's environment minus every
    ZSTACK_* variable (a test states the credentials it means)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZSTACK_")}
    done = subprocess.run(
        [sys.executable, "-m", "vmclock", "plan", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=PLAN_TIMEOUT,
        check=False,
    )
    return PlanRun(done.returncode, done.stdout, done.stderr)


def selector_policy(name: str, track: str, selector: Mapping[str, Any], **spec: Any) -> dict[str, Any]:
    """A VmClockPolicy by selector; extra keyword arguments are further spec fields (camelCase)."""
    body = {"track": track, "selector": dict(selector), **spec}
    return {"apiVersion": API_VERSION, "kind": "VmClockPolicy", "metadata": {"name": name}, "spec": body}


def plan_in_cluster(
    kubeconfig: Path, namespace: str, tmp_path: Path, manifests: Sequence[Mapping[str, Any]], *flags: str
) -> PlanRun:
    """`vmclock plan -o json` of `manifests` in `namespace`, reaching ZStack through the cluster."""
    path = write_manifests(tmp_path / "policies.yaml", manifests)
    args = ["-f", str(path), "-n", namespace, "--allow-insecure-endpoints", "-o", "json", *flags]
    return run_plan(args, env={"KUBECONFIG": str(kubeconfig)})

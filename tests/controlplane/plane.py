"""One running control plane: etcd, kube-apiserver and kube-controller-manager on free loopback ports,
with an admin kubeconfig.

Typical use (pytest fixture, sandbox)::

    plane = ControlPlane(require_binaries()).start()
    try:
        subprocess.run(["kubectl", "get", "ns"], env={**os.environ, **plane.env()})
    finally:
        plane.stop()

kube-controller-manager runs only the controllers in :data:`CONTROLLERS`: a deleted namespace is emptied and
removed by the namespace controller (finalizers hold it, as in a cluster), owner references cascade through
the garbage collector, and ServiceAccount token Secrets get tokens signed with the apiserver's SA key.  The
namespace controller and the garbage collector act as their own ServiceAccounts in ``kube-system``
(``--use-service-account-credentials``), with exactly the permissions the built-in RBAC policy gives them
in a cluster; kube-controller-manager itself is ``system:kube-controller-manager``, never an admin.  There
are no workload controllers and no default ServiceAccounts: nothing here runs pods.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from . import certs, kubeconfig
from .binaries import Binaries
from .kubectl import Kubectl
from .processes import spawn
from .rundir import RunDir, reap_orphans

START_ATTEMPTS = 3
POLL_SECONDS = 0.1
LOG_TAIL_LINES = 30
PORT_RACE_MARKERS = ("address already in use", "bind: address")
CONTROLLERS = ("namespace-controller", "garbage-collector-controller", "serviceaccount-token-controller")
"""kube-controller-manager's controllers by canonical name, which is also the name of each one's health
check (``[+]namespace-controller ok`` in ``/healthz?verbose`` once it started)."""


class ControlPlaneError(RuntimeError):
    """Starting failed; the message names the daemon and ends with the tail of its log."""


class _PortRaceError(ControlPlaneError):
    """Another process took one of our ports between probing and binding; worth a full retry."""


def _seconds_from_env(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all probed at once, so the kernel cannot hand one out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@functools.cache
def _etcd_supports(etcd: Path, flag: str) -> bool:
    """envtest's rule: pass optional flags only when ``--help`` lists them."""
    result = subprocess.run([str(etcd), "--help"], capture_output=True, text=True, check=False)
    return flag in result.stdout + result.stderr


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(lines[-LOG_TAIL_LINES:])


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager for one test session or one sandbox.

    ``detached=False`` (default): the daemons die with this process (``PR_SET_PDEATHSIG``), so
    :meth:`start` must run on a thread that lives as long as the control plane (normally the main thread).
    ``detached=True``: the daemons outlive this process (``controlplane start``); ``controlplane stop``
    finds them through the pid files in :attr:`directory`.
    """

    def __init__(
        self,
        binaries: Binaries,
        *,
        detached: bool = False,
        start_timeout: float | None = None,
        stop_timeout: float | None = None,
    ) -> None:
        self.binaries = binaries
        self.detached = detached
        self.start_timeout = start_timeout or _seconds_from_env("CONTROLPLANE_START_TIMEOUT", 90.0)
        self.stop_timeout = stop_timeout or _seconds_from_env("CONTROLPLANE_STOP_TIMEOUT", 10.0)
        self.startup_seconds: float | None = None
        self._rundir: RunDir | None = None
        self._port = 0
        self._controller_manager_port = 0
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> ControlPlane:
        """Start the daemons and wait until each is ready: the API answers (``/readyz``, then namespace
        ``default``) and kube-controller-manager reports every controller started."""
        if not self.detached and threading.current_thread() is not threading.main_thread():
            raise ControlPlaneError(
                "start an owned control plane from the main thread (PR_SET_PDEATHSIG is per thread)"
            )
        reap_orphans(self.stop_timeout)
        started = time.monotonic()
        for _ in range(START_ATTEMPTS):
            try:
                self._start_once()
            except _PortRaceError:
                self.stop()
                continue
            except BaseException:
                self.stop()
                raise
            self.startup_seconds = time.monotonic() - started
            return self
        raise ControlPlaneError(f"lost a port race {START_ATTEMPTS} times in a row; giving up")

    def stop(self) -> dict[str, int]:
        """Stop the daemons (SIGTERM, then SIGKILL after ``stop_timeout``) and delete the run directory.

        Returns the exit code of each daemon this object started (``-9`` for one that had to be killed).
        """
        if self._rundir is not None:
            self._rundir.reap(self.stop_timeout)
        # Already dead: this only collects each exit status.
        codes = {name: process.wait(timeout=self.stop_timeout) for name, process in self._processes.items()}
        self._rundir = None
        self._processes = {}
        return codes

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- facts for clients

    @property
    def directory(self) -> Path:
        return self._running().path

    @property
    def server(self) -> str:
        self._running()
        return f"https://127.0.0.1:{self._port}"

    @property
    def kubeconfig(self) -> Path:
        return self._running().kubeconfig

    @property
    def ca_file(self) -> Path:
        return certs.Pki(self._running().pki).ca_cert

    @property
    def kubectl_path(self) -> Path:
        return self.binaries.kubectl

    @property
    def pids(self) -> dict[str, int]:
        return self._running().read_pids()

    def kubectl(self) -> Kubectl:
        return Kubectl(self.kubectl_path, self.kubeconfig)

    def env(self) -> dict[str, str]:
        """Variables for a client process: ``KUBECONFIG``, ``CONTROLPLANE_DIR``, assets and pids."""
        return describe(self._running(), self.binaries)

    def get(self, path: str, *, authenticated: bool = True, port: int | None = None) -> tuple[int, bytes]:
        """One HTTPS GET against the apiserver (or the daemon on ``port``), as admin or
        (``authenticated=False``) anonymously."""
        pki = certs.Pki(self._running().pki)
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        if authenticated:
            context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        connection = http.client.HTTPSConnection("127.0.0.1", port or self._port, context=context, timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def server_version(self) -> str:
        """The release the running apiserver reports (``/version`` ``gitVersion``, e.g. ``v1.34.4``)."""
        status, body = self.get("/version")
        if status != 200:
            raise ControlPlaneError(f"GET /version answered {status}: {body[:200]!r}")
        version: str = json.loads(body)["gitVersion"]
        return version

    # ----------------------------------------------------------------- start steps

    def _running(self) -> RunDir:
        if self._rundir is None:
            raise ControlPlaneError("the control plane is not running")
        return self._rundir

    def _start_once(self) -> None:
        rundir = self._rundir = RunDir.create(detached=self.detached)
        pki = certs.issue(rundir.pki)
        etcd_client, etcd_peer, self._port, self._controller_manager_port = free_ports(4)
        self._launch("etcd", self._etcd_args(rundir, etcd_client, etcd_peer))
        self._wait("etcd", lambda: _etcd_healthy(etcd_client))
        self._launch("kube-apiserver", self._apiserver_args(pki, etcd_client))
        kubeconfig.write(rundir.kubeconfig, self.server, pki.ca_cert, pki.admin_cert, pki.admin_key)
        (rundir.bin / "kubectl").symlink_to(self.binaries.kubectl)
        self._wait("kube-apiserver", lambda: self._answer("/readyz") is not None)
        self._wait("kube-apiserver", lambda: self._answer("/api/v1/namespaces/default") is not None)
        kubeconfig.write(
            rundir.controller_manager_kubeconfig,
            self.server,
            pki.ca_cert,
            pki.controller_manager_cert,
            pki.controller_manager_key,
        )
        self._launch("kube-controller-manager", self._controller_manager_args(rundir, pki))
        self._wait("kube-controller-manager", self._controllers_started)

    def _etcd_args(self, rundir: RunDir, client: int, peer: int) -> list[str]:
        client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        args = [
            str(self.binaries.etcd),
            "--name=default",
            f"--data-dir={rundir.etcd_data}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--log-level=warn",
        ]
        if _etcd_supports(self.binaries.etcd, "--unsafe-no-fsync"):
            args.append("--unsafe-no-fsync=true")
        return args

    def _apiserver_args(self, pki: certs.Pki, etcd_client: int) -> list[str]:
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._port}",
            f"--cert-dir={pki.directory}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={pki.service_account_key}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--disable-admission-plugins=ServiceAccount",  # no serviceaccount controller, so no default SA
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",  # loopback may not be published in Endpoints
            "--profiling=false",
            "--v=1",
        ]

    def _controller_manager_args(self, rundir: RunDir, pki: certs.Pki) -> list[str]:
        own = rundir.controller_manager_kubeconfig
        return [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={own}",
            # Requests to its own endpoints (/healthz, /metrics): client certificates are checked against the
            # CA here, tokens and permissions by the apiserver, asked as this same user.  No lookup of the
            # apiserver's front-proxy CA, which this control plane does not have (it would log an error
            # every few seconds).
            f"--client-ca-file={pki.ca_cert}",
            "--authentication-skip-lookup=true",
            f"--authentication-kubeconfig={own}",
            f"--authorization-kubeconfig={own}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self._controller_manager_port}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--controllers={','.join(CONTROLLERS)}",
            "--leader-elect=false",  # one instance; a lease would only delay the start
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca_cert}",
            "--profiling=false",
            "--v=1",
        ]

    def _launch(self, name: str, args: list[str]) -> None:
        rundir = self._running()
        process = spawn(args, rundir.log(name), owned=not self.detached)
        self._processes[name] = process
        rundir.write_pid(name, process.pid)

    def _answer(self, path: str, port: int | None = None) -> bytes | None:
        """The body of a 200 answer; ``None`` while the daemon is not listening or not ready."""
        try:
            status, body = self.get(path, port=port)
        except (OSError, http.client.HTTPException):
            return None
        return body if status == 200 else None

    def _controllers_started(self) -> bool:
        """Its health checks list each controller once it started (before that ``/healthz`` is bare)."""
        body = self._answer("/healthz?verbose", self._controller_manager_port)
        return body is not None and all(f"[+]{name} ok".encode() in body for name in CONTROLLERS)

    def _wait(self, name: str, ready: Callable[[], bool]) -> None:
        """Poll ``ready`` until true; fail at once if any daemon died, or after ``start_timeout``."""
        deadline = time.monotonic() + self.start_timeout
        while not ready():
            self._check_alive()
            if time.monotonic() > deadline:
                log = self._running().log(name)
                raise ControlPlaneError(
                    f"{name} not ready after {self.start_timeout:.0f}s (CONTROLPLANE_START_TIMEOUT); "
                    f"last lines of {log}:\n{_tail(log)}"
                )
            time.sleep(POLL_SECONDS)

    def _check_alive(self) -> None:
        for name, process in self._processes.items():
            code = process.poll()
            if code is None:
                continue
            tail = _tail(self._running().log(name))
            if any(marker in tail for marker in PORT_RACE_MARKERS):
                raise _PortRaceError(f"{name} could not bind its port:\n{tail}")
            raise ControlPlaneError(
                f"{name} exited with code {code} during start; last lines of its log:\n{tail}"
            )


def _etcd_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return bool(json.load(response).get("health") == "true")
    except (OSError, ValueError):
        return False


def describe(rundir: RunDir, binaries: Binaries) -> dict[str, str]:
    """The environment a client needs for the control plane in ``rundir`` (also ``controlplane env``)."""
    env = {"KUBECONFIG": str(rundir.kubeconfig), "CONTROLPLANE_DIR": str(rundir.path), **binaries.env()}
    for name, pid in rundir.read_pids().items():
        env[f"CONTROLPLANE_{name.upper().replace('-', '_')}_PID"] = str(pid)
    return env

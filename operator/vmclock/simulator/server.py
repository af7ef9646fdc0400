"""`Simulator`: one simulated ZStack management node on a loopback port.

    async with Simulator(SimulatorConfig(vms=100)) as sim:
        sim.endpoint  # "http://127.0.0.1:PORT"; the REST API is under /zstack/v1

aiohttp's own request-line limit (8190 bytes) is raised so that RestServer can enforce ZStack's 8 KiB
limit itself and answer it the way the MN does (414, plain text) rather than with aiohttp's 400.
"""

from __future__ import annotations

from types import TracebackType

from aiohttp import web

from vmclock.simulator.admin import AdminRoutes
from vmclock.simulator.catalog import build_catalog
from vmclock.simulator.config import SimulatorConfig
from vmclock.simulator.faults import Faults
from vmclock.simulator.handlers import ZStackApis
from vmclock.simulator.jobs import ChainQueues, JobStore
from vmclock.simulator.mediator import Mediator
from vmclock.simulator.rest import RestServer
from vmclock.simulator.state import SimState
from vmclock.simulator.stats import Stats
from vmclock.simulator.wire import strip_content_type

_PARSER_LIMIT = 1 << 20  # well above 8192, so long lines reach RestServer's own 414


class Simulator:
    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.state = SimState(self.config)
        self.stats = Stats()
        self.faults = Faults(self.state.sessions, self.config.seed)
        jobs = JobStore(self.config.job_retention)
        self._mediator = Mediator(self.state, self.faults, jobs)
        apis = ZStackApis(self.config, self.state, self.stats, ChainQueues(), self.faults)
        catalog, shared_paths = build_catalog(apis, self.config.features)
        rest = RestServer(
            config=self.config,
            stats=self.stats,
            faults=self.faults,
            jobs=jobs,
            mediator=self._mediator,
            catalog=catalog,
            shared_paths=shared_paths,
        )
        self.app = web.Application()
        self.app.router.add_route("*", self.config.context_path + "/{tail:.*}", rest.handle)
        self.app.router.add_routes(AdminRoutes(self.state, self.stats, self.faults).routes())
        self.app.on_response_prepare.append(strip_content_type)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        runner = web.AppRunner(
            self.app,
            access_log=None,
            shutdown_timeout=1.0,
            max_line_size=_PARSER_LIMIT,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Cancel running jobs and close the server; safe to call twice."""
        await self._mediator.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("simulator not started")
        return self._port

    @property
    def endpoint(self) -> str:
        host = self.config.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

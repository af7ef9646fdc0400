"""A faithful ZStack REST simulator (aiohttp) with fault injection, for tests, the sandbox and benchmarks.

See `Simulator` for the Python API, `python -m vmclock.simulator --help` for the CLI, and
/work/shared/docs/zstack-api.md for the protocol it reproduces.
"""

from vmclock.simulator.config import SimulatorConfig
from vmclock.simulator.faults import Faults
from vmclock.simulator.server import Simulator
from vmclock.simulator.state import SimState
from vmclock.simulator.stats import Stats, Write

__all__ = ["Faults", "SimState", "Simulator", "SimulatorConfig", "Stats", "Write"]

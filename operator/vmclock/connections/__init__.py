"""ZStackConnection handling: Secret -> credentials -> a cached, verified ZStackClient per connection."""

from vmclock.connections.manager import ConnectionManager, ConnectionVerdict
from vmclock.connections.problems import ConnectionProblem
from vmclock.connections.spec import ConnectionSpec, parse_connection_spec

__all__ = [
    "ConnectionManager",
    "ConnectionProblem",
    "ConnectionSpec",
    "ConnectionVerdict",
    "parse_connection_spec",
]

"""The `on_call(api, code, seconds)` hook: one report per attempt at a ZStack API, for metrics.

Reported per attempt (a retried call reports each try with its own code) so that metrics show how often
ZStack answered SYS.1001 or a proxy dropped a connection, not only what the caller finally saw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vmclock.zstack.errors import ZStackError

log = logging.getLogger(__name__)

OnCall = Callable[[str, str, float], None]
OK = "OK"


@contextmanager
def observed(on_call: OnCall | None, api: str) -> Iterator[None]:
    """Time the block and report `OK` or the ZStackError's code; other exceptions are not ZStack's answer."""
    started = time.monotonic()
    try:
        yield
    except ZStackError as err:
        _report(on_call, api, err.code, started)
        raise
    _report(on_call, api, OK, started)


def _report(on_call: OnCall | None, api: str, code: str, started: float) -> None:
    if on_call is None:
        return
    try:
        on_call(api, code, time.monotonic() - started)
    except Exception:
        # A broken metrics hook must not turn a successful ZStack call into a failure.
        log.exception("on_call hook failed for %s", api)

"""py-spy around a stretch of the operator's work, summarised as the functions the samples were in.

py-spy (``.venv/bin/pip install py-spy``) samples the running operator from outside (ptrace), so the
operator runs unmodified. ``--nonblocking`` keeps it from pausing the process at each sample, and idle
threads are left out, so the shares are of the time the operator was on the CPU or holding the GIL.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

RATE = 50  # samples per second: enough for shares, light on a shared 2-core machine
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    return found


class Profile:
    """``py-spy record`` of `pid` in raw (collapsed-stack) format while the ``with`` block runs."""

    def __init__(self, pid: int, output: Path) -> None:
        self.output = output
        self._argv = [py_spy(), "record", "--pid", str(pid), "--format", "raw", "--output", str(output)]
        self._argv += ["--rate", str(RATE), "--nonblocking"]
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profile:
        log = self.output.with_suffix(".log").open("wb")
        self._proc = subprocess.Popen(self._argv, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        self._proc.wait(timeout=120)


def short(frame: str) -> str:
    """``name (package/module.py:12)`` -> ``name (package/module.py)``: one entry per function, not per line
    (py-spy already shows each file relative to its ``sys.path`` entry)."""
    match = _FRAME.match(frame)
    return frame if match is None else f"{match['function']} ({match['file']})"


_ENTRY = frozenset({"vmclock/__main__.py", "vmclock/cli.py"})  # under every sample: they start the loop


def ours(frame: str) -> bool:
    """A frame of the operator's own package (either tree's), not asyncio, kopf or aiohttp, nor the
    start-up frames every sample has."""
    match = _FRAME.match(frame)
    return match is not None and match["file"].startswith("vmclock/") and match["file"] not in _ENTRY


def summarize(raw: Path, top: int = 15) -> dict[str, Any]:
    """Shares of the samples by function, in percent, the `top` of each: `self` (the sample's innermost
    frame), `total` (anywhere on the stack, counted once per sample) and `ours` (`total` of the operator's
    own functions only: the event loop and kopf's frames sit under every sample and would fill `total`)."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    operator: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        raw_frames = stack.split(";")
        frames = [short(f) for f in raw_frames]
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for function in set(frames):
            anywhere[function] += n
        for function in {short(f) for f in raw_frames if ours(f)}:
            operator[function] += n

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / samples, 1)) for name, n in counter.most_common(top)]

    return {
        "samples": samples,
        "rate": RATE,
        "self": shares(own),
        "total": shares(anywhere),
        "ours": shares(operator),
    }

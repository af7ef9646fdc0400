"""Reading /proc, so tests can check that no process outlived its owner."""

from __future__ import annotations

from pathlib import Path

_PROC = Path("/proc")


def stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (which may contain spaces); None if gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _live_processes() -> dict[int, list[str]]:
    table = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name))) and fields[0] != "Z":
            table[int(entry.name)] = fields
    return table


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` in the parent tree."""
    parents = {child: int(fields[1]) for child, fields in _live_processes().items()}
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def group_members(pgid: int) -> set[int]:
    """Every live process in process group ``pgid``."""
    return {pid for pid, fields in _live_processes().items() if int(fields[2]) == pgid}

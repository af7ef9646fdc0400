"""Every version of some objects, as ``kubectl get --watch`` saw them, recorded by a background process.

Polling can miss a status that existed for a moment (a stale write overwritten a second later); a watch
delivers each resourceVersion in order, so a test can assert on every state an object ever had.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from .objects import Obj
from .processes import ManagedProcess, OutputPump, spawn


@dataclass(kw_only=True)
class KubectlWatch(ManagedProcess):
    """``kubectl get RESOURCE -n NAMESPACE --watch --output-watch-events -o json``; stderr goes to the log."""

    kubectl: Path
    kubeconfig: Path
    resource: str
    namespace: str
    _pump: OutputPump | None = field(init=False, default=None, repr=False)

    def argv(self) -> list[str]:
        return [
            str(self.kubectl),
            "get",
            self.resource,
            "--namespace",
            self.namespace,
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ]

    def start(self) -> Self:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        self._proc = spawn(self.argv(), log=self._open_log(), env=env, stdout_pipe=True)
        assert self._proc.stdout is not None
        self._pump = OutputPump(self._proc.stdout)
        return self

    def events(self) -> list[Obj]:
        """The watch events so far (``{"type": ..., "object": ...}``), in the order the server sent them."""
        return _documents(self._pump.lines if self._pump is not None else [])


def _documents(lines: Sequence[str]) -> list[Obj]:
    """kubectl prints one indented JSON document per event; the last one may still be incomplete."""
    text, decoder, found, at = "\n".join(lines), json.JSONDecoder(), [], 0
    while (start := text.find("{", at)) >= 0:
        try:
            document, at = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            break
        found.append(document)
    return found

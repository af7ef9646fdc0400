"""The VmClockPolicy manifests a plan is about, read the way `kubectl apply -f` reads them.

`-f` takes a file, a directory (its *.yaml, *.yml and *.json files, not recursive, like kubectl) or `-`
for standard input, so `kustomize build overlays/prod | vmclock plan -f -` previews exactly what would be
applied. Documents of other kinds (the Secret, the ZStackConnection, anything else in a kustomize build)
are skipped; `kind: List` documents are opened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from vmclock.engine.spec import GROUP

KIND = "VmClockPolicy"
SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Manifest:
    source: str  # file name (or "stdin") and document number, for messages
    body: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name"))

    @property
    def namespace(self) -> str | None:
        namespace = (self.body.get("metadata") or {}).get("namespace")
        return str(namespace) if namespace else None


def _files(source: str) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    if not path.is_file():
        raise ManifestError(f"-f {source}: no such file or directory")
    return [path]


def _documents(text: str, where: str) -> Iterator[tuple[str, Any]]:
    try:
        loaded = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise ManifestError(f"{where}: not valid YAML or JSON ({error})") from None
    for number, document in enumerate(loaded, start=1):
        label = f"{where} (document {number})" if len(loaded) > 1 else where
        if isinstance(document, Mapping) and document.get("kind") == "List":
            for index, item in enumerate(document.get("items") or []):
                yield f"{label} items[{index}]", item
        elif document is not None:
            yield label, document


def _is_policy(document: Any) -> bool:
    return (
        isinstance(document, Mapping)
        and document.get("kind") == KIND
        and str(document.get("apiVersion", "")).startswith(f"{GROUP}/")
    )


def _checked(where: str, document: Mapping[str, Any]) -> Manifest:
    name = (document.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not _DNS1123.match(name):
        raise ManifestError(f"{where}: metadata.name: got {name!r}; expected a DNS-1123 label")
    if not isinstance(document.get("spec"), Mapping):
        raise ManifestError(f"{where}: spec: a VmClockPolicy needs a spec object")
    return Manifest(where, document)


def load_manifests(sources: Sequence[str], stdin: IO[str]) -> list[Manifest]:
    """Every VmClockPolicy in `sources`, in order; ManifestError when a source is unreadable or none holds
    a policy (a plan of nothing would report "no changes" and hide the mistake)."""
    found: list[Manifest] = []
    for source in sources:
        texts = (
            [("stdin", stdin.read())]
            if source == STDIN
            else [(str(p), p.read_text()) for p in _files(source)]
        )
        for where, text in texts:
            found += [_checked(label, doc) for label, doc in _documents(text, where) if _is_policy(doc)]
    if not found:
        raise ManifestError(f"no {KIND} ({GROUP}) found in {', '.join(sources)}")
    return found

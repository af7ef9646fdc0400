"""Replaying the Dockerfile's install steps on this machine, which has no Docker daemon.

The replay reads the steps from the Dockerfile itself, so the image and this emulation cannot drift apart:

- the build context is filtered by ``.dockerignore`` exactly as Docker does (last matching rule wins, a rule
  matching a parent directory matches everything below it), and ``COPY`` copies only what survives;
- every absolute path the Dockerfile uses (``WORKDIR``, ``COPY`` destinations, absolute ``ENV``/``ARG``
  values, the ``ENTRYPOINT`` executable) is mapped below a scratch directory that stands in for ``/``;
- ``RUN`` steps that start with ``pip`` or ``python`` run verbatim in ``/bin/sh -c`` with the stage's ``ENV``,
  a fresh virtualenv standing in for the base image's Python; other ``RUN`` steps (``useradd``) are
  image plumbing and are listed in :attr:`ReplayedImage.skipped_runs`;
- anything this emulation does not understand (``RUN --mount``, ``ADD``, ``ENV k v``) raises, so a
  Dockerfile change cannot silently bypass the replay.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_COMMANDS = ("pip", "python")
RUN_TIMEOUT = 900.0
# Host variables that would change what pip or python do inside the replay (a real image has none of them).
# Network settings (PIP_CERT, PIP_INDEX_URL, proxies, ...) stay: the build needs the same network access.
LEAKY_VARIABLES = re.compile(
    r"^(VIRTUAL_ENV|PYTHON[A-Z_]*"
    r"|PIP_(CONSTRAINT|REQUIREMENT|USER|REQUIRE_VIRTUALENV|TARGET|PREFIX|NO_BINARY|ONLY_BINARY|NO_COMPILE))$"
)
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


class UnsupportedDockerfile(AssertionError):
    """The Dockerfile uses something the replay cannot reproduce faithfully."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


@dataclass(frozen=True)
class ReplayedImage:
    """What the replay produced; ``root`` stands in for the image's ``/``."""

    root: Path
    entrypoint: list[str]
    env: dict[str, str]
    executed_runs: list[str]
    skipped_runs: list[str]

    @property
    def venv(self) -> Path:
        """The runtime venv (the image's ``$VIRTUAL_ENV``), e.g. to start the operator from it."""
        return Path(self.env["VIRTUAL_ENV"])


def logical_lines(text: str) -> Iterator[str]:
    """Instruction lines with comments dropped and backslash continuations joined."""
    pending: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        yield " ".join(pending)
        pending = []
    if pending:
        raise UnsupportedDockerfile(f"dangling line continuation: {' '.join(pending)!r}")


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages in order; ``FROM`` images are expanded with the global ``ARG`` defaults."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=expand(words[0], global_args), name=name))
        elif not stages:
            if keyword != "ARG":
                raise UnsupportedDockerfile(f"{keyword} before the first FROM")
            global_args.update(parse_assignments(arguments, allow_bare=True))
        else:
            stages[-1].instructions.append(Instruction(keyword, arguments.strip()))
    return stages


def parse_assignments(arguments: str, *, allow_bare: bool = False) -> dict[str, str]:
    """``K=V K2="V 2"`` (ENV, LABEL, ARG); a bare ``K`` is only allowed for ARG (no default)."""
    result: dict[str, str] = {}
    for word in shlex.split(arguments):
        key, equals, value = word.partition("=")
        if not equals and not allow_bare:
            raise UnsupportedDockerfile(f"legacy 'KEY value' form is not supported: {arguments!r}")
        if equals:
            result[key] = value
    return result


def expand(value: str, variables: Mapping[str, str]) -> str:
    """Docker's ``$VAR``/``${VAR}`` substitution (unknown variables expand to the empty string)."""
    return VARIABLE.sub(lambda match: variables.get(match.group(1) or match.group(2), ""), value)


class DockerIgnore:
    """``.dockerignore`` rules: ``*`` and ``?`` stay within one path segment, ``**`` spans segments."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[re.Pattern[str], bool]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = line[1:] if negated else line
            self.rules.append((self._compile(pattern.strip().strip("/")), negated))

    @staticmethod
    def _compile(pattern: str) -> re.Pattern[str]:
        regex = ""
        index = 0
        while index < len(pattern):
            if pattern.startswith("**/", index):
                regex += "(?:.*/)?"
                index += 3
            elif pattern.startswith("**", index):
                regex += ".*"
                index += 2
            elif pattern[index] == "*":
                regex += "[^/]*"
                index += 1
            elif pattern[index] == "?":
                regex += "[^/]"
                index += 1
            else:
                regex += re.escape(pattern[index])
                index += 1
        return re.compile(regex + r"\Z")

    def excluded(self, relative: str) -> bool:
        parts = relative.split("/")
        prefixes = ["/".join(parts[: depth + 1]) for depth in range(len(parts))]
        verdict = False
        for pattern, negated in self.rules:
            if any(pattern.match(prefix) for prefix in prefixes):
                verdict = not negated
        return verdict


class Replay:
    """One replay of a Dockerfile into ``root``; ``base_bin`` (a venv's bin) plays the base image's Python."""

    def __init__(self, dockerfile: Path, context: Path, root: Path, base_bin: Path) -> None:
        self.dockerfile = dockerfile
        self.context = context
        self.root = root
        self.base_bin = base_bin
        ignore_file = context / ".dockerignore"
        self.ignore = DockerIgnore(ignore_file.read_text() if ignore_file.exists() else "")
        self.executed: list[str] = []
        self.skipped: list[str] = []

    def image_path(self, path: str) -> Path:
        """Where an absolute in-image path lives in the replay."""
        if not path.startswith("/"):
            raise UnsupportedDockerfile(f"expected an absolute path, got {path!r}")
        return self.root / path.lstrip("/")

    def map_value(self, value: str) -> str:
        """Map absolute items of a (possibly ``:``-separated) ENV/ARG value into the replay root."""
        return ":".join(
            str(self.image_path(item)) if item.startswith("/") and not item.startswith("//") else item
            for item in value.split(":")
        )

    def host_env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not LEAKY_VARIABLES.match(key)}
        env["PATH"] = f"{self.base_bin}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(self) -> ReplayedImage:
        stages = parse_dockerfile(self.dockerfile.read_text())
        env: dict[str, str] = {}
        for stage in stages:
            env = self.host_env()
            workdir = self.root
            for instruction in stage.instructions:
                workdir = self.apply(instruction, env, workdir)
        final = stages[-1].instructions
        return ReplayedImage(
            root=self.root,
            entrypoint=self.entrypoint(final),
            env=env,
            executed_runs=self.executed,
            skipped_runs=self.skipped,
        )

    def apply(self, instruction: Instruction, env: dict[str, str], workdir: Path) -> Path:
        """Replay one instruction; returns the working directory for the next one."""
        keyword, arguments = instruction.keyword, instruction.arguments
        if keyword in ("ENV", "ARG"):
            for key, value in parse_assignments(arguments, allow_bare=keyword == "ARG").items():
                env[key] = expand(self.map_value(value), env)
        elif keyword == "WORKDIR":
            workdir = self.image_path(expand(arguments, env))
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            self.copy(shlex.split(arguments), workdir)
        elif keyword == "RUN":
            self.run_step(arguments, env, workdir)
        elif keyword == "ADD":
            raise UnsupportedDockerfile("ADD is not replayed; use COPY")
        # LABEL, USER, EXPOSE, ENTRYPOINT, CMD: metadata, nothing to replay.
        return workdir

    def copy(self, words: list[str], workdir: Path) -> None:
        flags = [word for word in words if word.startswith("--")]
        *sources, destination = [word for word in words if not word.startswith("--")]
        from_stage = any(flag.startswith("--from=") for flag in flags)
        target = self.image_path(destination) if destination.startswith("/") else workdir / destination
        for source in sources:
            if from_stage:
                # All stages share the replay root: the source must already be there.
                if not self.image_path(source).exists():
                    raise AssertionError(f"COPY --from: {source} was not produced by an earlier stage")
                if self.image_path(source) != target:
                    shutil.copytree(self.image_path(source), target, dirs_exist_ok=True, symlinks=True)
            else:
                self.copy_from_context(source, target, into_directory=destination.endswith("/"))

    def copy_from_context(self, source: str, target: Path, *, into_directory: bool) -> None:
        origin = self.context / source
        relative = origin.relative_to(self.context).as_posix()
        if not origin.exists() or self.ignore.excluded(relative):
            raise AssertionError(f"COPY {source}: not in the build context (missing or in .dockerignore)")
        if origin.is_file():
            destination = target / origin.name if into_directory else target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination)
            return
        for path in sorted(origin.rglob("*")):
            inner = path.relative_to(self.context).as_posix()
            if path.is_file() and not self.ignore.excluded(inner):
                destination = target / path.relative_to(origin)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)

    def run_step(self, arguments: str, env: dict[str, str], workdir: Path) -> None:
        if arguments.startswith("--"):
            raise UnsupportedDockerfile(f"RUN flags are not replayed: {arguments!r}")
        if arguments.startswith("["):
            raise UnsupportedDockerfile("exec-form RUN is not replayed")
        if arguments.split(maxsplit=1)[0] not in INSTALL_COMMANDS:
            self.skipped.append(arguments)
            return
        result = subprocess.run(
            ["/bin/sh", "-c", arguments],  # Docker's shell form
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"RUN {arguments}\nexited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        self.executed.append(arguments)

    def entrypoint(self, instructions: list[Instruction]) -> list[str]:
        """The exec-form ENTRYPOINT with its executable mapped into the replay root."""
        (argv,) = [json.loads(item.arguments) for item in instructions if item.keyword == "ENTRYPOINT"]
        if not isinstance(argv, list) or not all(isinstance(word, str) for word in argv):
            raise UnsupportedDockerfile("ENTRYPOINT must be exec form (a JSON list of strings)")
        return [str(self.image_path(argv[0])), *argv[1:]]


def make_base_python(directory: Path) -> Path:
    """A fresh virtualenv (with pip) from this interpreter's base Python: the base image's Python."""
    subprocess.run(
        [getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(directory)],
        check=True,
        capture_output=True,
        timeout=RUN_TIMEOUT,
    )
    return directory / "bin"


def replay_image(dockerfile: Path, scratch: Path) -> ReplayedImage:
    """Replay ``dockerfile`` (build context: its directory) into ``scratch``; see the module docstring."""
    root = scratch / "image-root"
    root.mkdir(parents=True)
    base_bin = make_base_python(scratch / "base-python")
    return Replay(dockerfile, dockerfile.parent, root, base_bin).run()

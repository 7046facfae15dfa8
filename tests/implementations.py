"""The implementations of the repository's gRPC contracts, found from data: every
`services/<name>/service.toml` (the one descriptor of a service; tools/k8s_invariants.py
reads its [deploy] section) says which services (`implements`, full proto names) it
serves, how to build it once per test session (`[build]`, optional) and how to run it
(`[run]`), and where it differs from the contract on purpose (`[[tolerated]]`, each with its
reason). The contract tests (tests/contracts/) run against every implementation found, so a
new one (services/greeter-rust, ...) joins them by adding that one file.

In the command lines, `{python}` is this test session's interpreter and `{binary}` a path in
the session's temporary directory that the build writes and the run starts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "services"
DECLARATION = "service.toml"
BUILD_TIMEOUT = 600.0  # seconds one build may take (a cold Go build cache included)


@dataclass(frozen=True)
class Pattern:
    """An expected string given as a regular expression (`{ pattern = "..." }` in the data):
    where the words are a library's, not the contract's."""

    regex: str

    def matches(self, value: object) -> bool:
        return isinstance(value, str) and re.fullmatch(self.regex, value, re.DOTALL) is not None


def matches(expected: object, actual: object) -> bool:
    """Whether actual is expected, where a Pattern anywhere inside expected matches a string."""
    if isinstance(expected, Pattern):
        return expected.matches(actual)
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(matches(value, actual[key]) for key, value in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


def patterns(value: Any) -> Any:
    """Data as loaded from TOML with each `{ pattern = "..." }` table made a Pattern."""
    if isinstance(value, dict):
        if value.keys() == {"pattern"}:
            return Pattern(str(value["pattern"]))
        return {key: patterns(item) for key, item in value.items()}
    if isinstance(value, list):
        return [patterns(item) for item in value]
    return value


@dataclass(frozen=True)
class Tolerance:
    """A difference from the contract that an implementation declares: at `check`, it gives
    `actual` instead of the contract's value, for `reason`."""

    check: str
    actual: Any
    reason: str


@dataclass(frozen=True)
class Build:
    """How to build an implementation: command, in its directory, needs tools (a missing one
    is reported with install, and is a failure when require_variable is 1)."""

    command: list[str]
    install: str
    require_variable: str
    tools: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Implementation:
    """One service directory declaring the contracts it implements."""

    name: str  # the service directory's name, e.g. greeter-go
    directory: Path
    implements: tuple[str, ...]
    run: list[str]
    build: Build | None
    tolerated: dict[str, Tolerance]

    def missing_tools(self) -> list[str]:
        """The build's tools that are not on PATH."""
        return [tool for tool in (self.build.tools if self.build else []) if not shutil.which(tool)]

    def build_into(self, directory: Path) -> Path:
        """Run the build (when there is one) with {binary} in directory; the binary's path."""
        binary = directory / self.name
        if self.build is not None:
            command = [
                part.format(binary=binary, python=sys.executable) for part in self.build.command
            ]
            subprocess.run(command, cwd=self.directory, check=True, timeout=BUILD_TIMEOUT)
        return binary

    def command(self, binary: Path) -> list[str]:
        """The command line that runs the service (after build_into)."""
        return [part.format(binary=binary, python=sys.executable) for part in self.run]


def load(declaration: Path) -> Implementation:
    """One service.toml; ValueError naming the file when it is not in the expected shape."""
    try:
        data = tomllib.loads(declaration.read_text(encoding="utf-8"))
        build = data.get("build")
        tolerated = [
            Tolerance(t["check"], patterns(t["actual"]), t["reason"])
            for t in data.get("tolerated", [])
        ]
        checks = [t.check for t in tolerated]
        if len(set(checks)) != len(checks):
            raise ValueError(f"a check is tolerated twice: {sorted(checks)}")
        return Implementation(
            name=declaration.parent.name,
            directory=declaration.parent,
            implements=tuple(data["implements"]),
            run=list(data["run"]["command"]),
            build=Build(**build) if build is not None else None,
            tolerated={t.check: t for t in tolerated},
        )
    except (KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{declaration}: {error!r}") from error


def implementations(service: str, root: Path = SERVICES) -> list[Implementation]:
    """Every service directory under root whose service.toml implements service (a full
    proto name such as acme.greeter.v1.GreeterService), in name order."""
    found = [load(path) for path in sorted(root.glob(f"*/{DECLARATION}"))]
    return [implementation for implementation in found if service in implementation.implements]


class Builds:
    """The session's builds: each implementation built at most once (the Go build cache makes
    even that cheap after the first), shared by the contract tests and the services' own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._built: dict[str, Path] = {}

    def command(self, implementation: Implementation) -> list[str]:
        """The command line of implementation, built on first use. Without the build's tools:
        a loud skip (a failure when the build's require_variable is 1)."""
        from acme_devkit.external import not_run

        if implementation.name not in self._built:
            missing = implementation.missing_tools()
            if missing and implementation.build is not None:
                not_run(
                    f"{implementation.name} ({', '.join(implementation.implements)})",
                    f"{', '.join(missing)} not on PATH, so it cannot be built",
                    implementation.build.install,
                    implementation.build.require_variable,
                )
            target = self.directory / implementation.name
            target.mkdir(parents=True, exist_ok=True)
            self._built[implementation.name] = implementation.build_into(target)
        return implementation.command(self._built[implementation.name])

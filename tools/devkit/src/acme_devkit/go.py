"""Programs installed with `go install`, and Go's own settings (`go env`), for the tests that
run Go programs (the Connect conformance suite's runner)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

GO_ENV_TIMEOUT = 30.0  # seconds `go env` may take


def go_env(name: str) -> str | None:
    """`go env <name>` (None without a `go` command, or when it fails)."""
    go = shutil.which("go")
    if go is None:
        return None
    try:
        result = subprocess.run(  # noqa: S603 - a fixed command line
            [go, "env", name], capture_output=True, text=True, timeout=GO_ENV_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = result.stdout.strip()
    return value if result.returncode == 0 and value else None


def go_program(name: str) -> Path | None:
    """A program installed with `go install`: on PATH, else in $(go env GOBIN) or the bin/ of
    the first $(go env GOPATH) entry (where `go install` puts it); None when in neither."""
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    directories = [go_env("GOBIN")]
    gopath = go_env("GOPATH")
    if gopath is not None:
        directories.append(str(Path(gopath.split(os.pathsep)[0]) / "bin"))
    for directory in filter(None, directories):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None

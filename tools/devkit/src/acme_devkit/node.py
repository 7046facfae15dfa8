"""The npm packages of a Node.js helper directory (package.json + package-lock.json), for the
tests that run Node.js programs (the interop client, the browser driver)."""

from __future__ import annotations

import subprocess
from pathlib import Path

NPM_TIMEOUT = 300.0  # seconds `npm ci` may take


def npm_ci(npm: str, directory: Path, timeout: float = NPM_TIMEOUT) -> str | None:
    """`npm ci` in directory unless its node_modules is newer than its package-lock.json
    (installed once, reused until the lock changes); None, or npm's output when it failed.
    --ignore-scripts: no package's install script runs (none of ours needs one)."""
    installed = directory / "node_modules" / ".package-lock.json"
    lock = directory / "package-lock.json"
    if installed.is_file() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return None
    result = subprocess.run(  # noqa: S603 - the harness's own command line
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return None if result.returncode == 0 else f"npm ci failed:\n{result.stdout}{result.stderr}"

"""The contracts' third-party protos (third_party/<name>/), each from the artifact its
source.toml pins: downloaded, checked against the pinned SHA-256, the file taken out of it.

Usage: python tools/proto_deps.py [--check]

Without --check the committed copies are (re)written; with it nothing is written and the exit
code is 1 when a committed copy differs from the pinned artifact's (lint runs this). Downloads
are cached by digest under $XDG_CACHE_HOME/acme/proto-deps (~/.cache by default).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tomllib
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIRD_PARTY = ROOT / "third_party"
DOWNLOAD_TIMEOUT = 60.0  # seconds, per artifact


@dataclass(frozen=True)
class PinnedFile:
    """One file of a third-party proto tree: its path below third_party/<name>/ and the
    artifact (a zip or jar) that holds it at that path."""

    root: Path
    path: str
    url: str
    sha256: str


def pinned_files() -> list[PinnedFile]:
    """Every [[file]] of every third_party/*/source.toml."""
    files = []
    for source in sorted(THIRD_PARTY.glob("*/source.toml")):
        for entry in tomllib.loads(source.read_text())["file"]:
            files.append(PinnedFile(source.parent, entry["path"], entry["url"], entry["sha256"]))
    return files


def artifact(url: str, sha256: str) -> bytes:
    """The artifact's bytes (from the cache, else downloaded); SystemExit when its digest is
    not the pinned one."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "acme" / "proto-deps"
    cached = cache / sha256
    if cached.exists() and hashlib.sha256(cached.read_bytes()).hexdigest() == sha256:
        return cached.read_bytes()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=DOWNLOAD_TIMEOUT) as response:
        data: bytes = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        sys.exit(f"proto_deps: {url} has SHA-256 {digest}, source.toml pins {sha256}")
    cache.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(data)
    return data


def pinned_content(pinned: PinnedFile) -> bytes:
    """The file as the pinned artifact holds it."""
    with zipfile.ZipFile(io.BytesIO(artifact(pinned.url, pinned.sha256))) as archive:
        return archive.read(pinned.path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if a committed copy differs from its artifact"
    )
    args = parser.parse_args(argv)
    differ = []
    for pinned in pinned_files():
        target = pinned.root / pinned.path
        content = pinned_content(pinned)
        name = target.relative_to(ROOT).as_posix()
        if args.check:
            if not target.exists() or target.read_bytes() != content:
                differ.append(name)
        elif not target.exists() or target.read_bytes() != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            print(f"proto_deps: wrote {name}")
    if differ:
        print("proto_deps check FAILED: not the pinned artifact's file (run tools/proto_deps.py):")
        print("\n".join(f"  {name}" for name in differ))
        return 1
    print("proto_deps: third-party protos match their pinned artifacts")
    return 0


if __name__ == "__main__":
    sys.exit(main())

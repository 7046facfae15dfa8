"""What the harness needs from the system: h2load and a C++ gRPC toolchain (Debian packages,
installed with apt-get when missing and allowed), the C++ reference server, built once
and cached under .bench/cpp/ (rebuilt when its sources or the proto change), and the Go
greeter (services/greeter-go), built once per session with `go build` (Go's build cache
makes a rebuild of unchanged sources cheap) when `go` is on PATH."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.procs import REPO

# command (or pkg-config module) -> the Debian package that provides it
DEBIAN_PACKAGES = {
    "h2load": "nghttp2-client",
    "protoc": "protobuf-compiler",
    "grpc_cpp_plugin": "protobuf-compiler-grpc",
    "g++": "g++",
    "pkg-config": "pkg-config",
    # the C++ build asks pkg-config for both modules; libgrpc++-dev does not depend on
    # libprotobuf-dev (--no-install-recommends leaves it out), so each is checked on its own
    "pkgconfig:grpc++": "libgrpc++-dev",
    "pkgconfig:protobuf": "libprotobuf-dev",
}
APT_TIMEOUT = 600.0
BUILD_TIMEOUT = 600.0
CPP_SOURCES = [
    REPO / "bench/cpp/greeter_server.cc",
    REPO / "bench/cpp/build.sh",
    REPO / "proto/acme/greeter/v1/greeter.proto",
]


def _present(requirement: str) -> bool:
    if requirement.startswith("pkgconfig:"):
        if shutil.which("pkg-config") is None:
            return False
        module = requirement.removeprefix("pkgconfig:")
        command = ["pkg-config", "--exists", module]
        probe = subprocess.run(command, check=False)  # noqa: S603 - fixed command
        return probe.returncode == 0
    return shutil.which(requirement) is not None


def missing_packages() -> list[str]:
    return sorted({pkg for need, pkg in DEBIAN_PACKAGES.items() if not _present(need)})


def ensure_packages(allow_apt: bool, log: Path) -> str | None:
    """Install the missing Debian packages with apt-get (root only); None when everything is
    there afterwards, else why not (the rows that need it are skipped with that reason)."""
    missing = missing_packages()
    if not missing:
        return None
    if not allow_apt:
        return f"missing Debian packages {' '.join(missing)} (--no-apt)"
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return f"missing Debian packages {' '.join(missing)} (no apt-get as root to install them)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"bench: apt-get install -y {' '.join(missing)}  (output in {log})", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        for attempt in ("install", "update-then-install"):
            if attempt == "update-then-install":
                subprocess.run(  # noqa: S603 - fixed command
                    [apt, "update"],
                    stdout=out,
                    stderr=out,
                    env=env,
                    timeout=APT_TIMEOUT,
                    check=False,
                )
            try:
                done = subprocess.run(  # noqa: S603 - fixed command, package names from above
                    [apt, "install", "-y", "--no-install-recommends", *missing],
                    stdout=out,
                    stderr=out,
                    env=env,
                    timeout=APT_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return f"apt-get install timed out after {APT_TIMEOUT:.0f} s (see {log})"
            if done.returncode == 0:
                break
    still = missing_packages()
    if still:
        return f"apt-get could not install {' '.join(still)} (see {log})"
    return None


@dataclass(frozen=True)
class CppServer:
    binary: Path | None
    reason: str | None  # why there is no binary


def sources_digest() -> str:
    digest = hashlib.sha256()
    for source in CPP_SOURCES:
        digest.update(source.read_bytes())
    return digest.hexdigest()


def cpp_server(cache: Path, packages_problem: str | None) -> CppServer:
    """The cached C++ greeter binary, built when missing or stale; or why it cannot be."""
    binary = cache / "greeter_server"
    stamp = cache / "sources.sha256"
    digest = sources_digest()
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return CppServer(binary, None)
    if packages_problem is not None and any(
        pkg in packages_problem
        for pkg in (
            "protobuf-compiler",
            "protobuf-compiler-grpc",
            "libgrpc++-dev",
            "libprotobuf-dev",
            "g++",
        )
    ):
        return CppServer(None, packages_problem)
    print(f"bench: building the C++ reference server into {cache} ...", flush=True)
    try:
        built = subprocess.run(  # noqa: S603 - our own build script
            ["bash", str(REPO / "bench/cpp/build.sh"), str(cache)],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return CppServer(None, f"C++ build timed out after {BUILD_TIMEOUT:.0f} s")
    (cache / "build.log").write_text(built.stdout + built.stderr)
    if built.returncode != 0 or not binary.exists():
        lines = (built.stderr.strip() or built.stdout.strip() or "no output").splitlines()
        return CppServer(None, f"C++ build failed: {lines[-1]} (see {cache / 'build.log'})")
    stamp.write_text(digest)
    return CppServer(binary, None)


GO_MODULE = REPO / "services/greeter-go"
GO_INSTALL = "Go (https://go.dev/dl/, the version of go.work)"


@dataclass(frozen=True)
class GoServer:
    binary: Path | None
    reason: str | None  # why there is no binary


def go_server(binary: Path) -> GoServer:
    """services/greeter-go built into binary with `go build`; or why it cannot be. Never
    installs Go: without it the Go rows are reported "not available" with the reason."""
    go = shutil.which("go")
    if go is None:
        return GoServer(None, f"no Go toolchain (`go` not on PATH; install {GO_INSTALL})")
    print(f"bench: go build -o {binary} (services/greeter-go) ...", flush=True)
    binary.parent.mkdir(parents=True, exist_ok=True)
    log = binary.with_name(binary.name + ".build.log")
    try:
        built = subprocess.run(  # noqa: S603 - the Go toolchain on our own module
            [go, "build", "-o", str(binary), "."],
            cwd=GO_MODULE,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return GoServer(None, f"go build timed out after {BUILD_TIMEOUT:.0f} s")
    log.write_text(built.stdout + built.stderr)
    if built.returncode != 0 or not binary.exists():
        lines = (built.stderr.strip() or built.stdout.strip() or "no output").splitlines()
        return GoServer(None, f"go build failed: {lines[-1]} (see {log})")
    return GoServer(binary, None)

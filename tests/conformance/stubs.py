"""The conformance protos' Python stubs, generated at run time (never committed) with
grpc_tools.protoc from the protos of the pinned connectrpc.com/conformance module in Go's
module cache (`go install` of connectconformance puts them there).

The protos' package is connectrpc.conformance.v1, so protoc's modules are
connectrpc/conformance/v1/*.py: inside the package of the installed connectrpc library, whose
package a directory on sys.path cannot simply add to. The generated tree therefore gets a
connectrpc/__init__.py of its own (SHIM) that makes its package path this directory's
connectrpc/ plus the library's, and runs the library's __init__: with the tree first on
PYTHONPATH, a process (the gateway started as `python -m gateway` among them) imports the
library and `connectrpc.conformance.v1.*_pb2` alike, and the gateway finds the service the
way it finds any (forwarding.find_service: the Python package named like the proto package).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from types import ModuleType

from acme_devkit.go import go_env

HERE = Path(__file__).resolve().parent
MODULE = "connectrpc.com/conformance"
# tools/go/go.mod pins the version (.ci/run installs connectconformance from there).
GO_MOD = HERE.parents[1] / "tools" / "go" / "go.mod"


def _pinned(module: str) -> str:
    """The version go.mod requires of module."""
    found = re.search(rf"^\s*{re.escape(module)} (v\S+)", GO_MOD.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"{GO_MOD} requires no {module}")
    return found.group(1)


VERSION = _pinned(MODULE)
PACKAGE = "connectrpc.conformance.v1"
SERVICE = f"{PACKAGE}.ConformanceService"
PROTOS = ("config.proto", "server_compat.proto", "service.proto")
STUBS_VARIABLE = "ACME_CONFORMANCE_STUBS"  # a directory generate() filled; see launcher.py
GO_TIMEOUT = 120.0  # seconds `go mod download` may take

SHIM = '''"""Written by tests/conformance/stubs.py (see there): this package is the installed
connectrpc library plus the generated connectrpc.conformance stubs next to this file."""

import importlib.machinery as _machinery
import os as _os
import sys as _sys

_tree = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
_others = [p for p in _sys.path if _os.path.abspath(p or _os.curdir) != _tree]
_library = _machinery.PathFinder.find_spec(__name__, _others)
if _library is None or _library.origin is None or not _library.submodule_search_locations:
    raise ImportError("the connectrpc library is not installed")
__path__.extend(_library.submodule_search_locations)
with open(_library.origin, encoding="utf-8") as _source:
    exec(compile(_source.read(), _library.origin, "exec"))  # noqa: S102
'''


class ProtosMissing(RuntimeError):
    """The pinned module's protos are not in Go's module cache and cannot be downloaded."""


def proto_root() -> Path:
    """The `proto/` directory of connectrpc.com/conformance@VERSION in Go's module cache;
    `go mod download` fetches it when the cache lacks it. ProtosMissing says why not."""
    cache = go_env("GOMODCACHE")
    if cache is None:
        raise ProtosMissing("`go env GOMODCACHE` gave nothing: is Go installed?")
    root = Path(cache) / f"{MODULE}@{VERSION}" / "proto"
    if not root.is_dir():
        try:
            result = subprocess.run(
                ["go", "mod", "download", "-json", f"{MODULE}@{VERSION}"],
                capture_output=True,
                text=True,
                timeout=GO_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ProtosMissing(f"`go mod download {MODULE}@{VERSION}`: {error}") from None
        if result.returncode != 0:
            raise ProtosMissing(f"`go mod download {MODULE}@{VERSION}`: {result.stdout[-500:]}")
        root = Path(json.loads(result.stdout)["Dir"]) / "proto"
    if not all((root / PACKAGE.replace(".", "/") / proto).is_file() for proto in PROTOS):
        raise ProtosMissing(f"{root} lacks {', '.join(PROTOS)}")
    return root


def generate(out_dir: Path) -> Path:
    """Messages and gRPC stubs of PROTOS into out_dir (created), with SHIM; out_dir."""
    root = proto_root()
    well_known = resources.files("grpc_tools") / "_proto"
    package_dir = PACKAGE.replace(".", "/")
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={root}",
        f"--proto_path={well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(f"{package_dir}/{proto}" for proto in PROTOS),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=GO_TIMEOUT)
    (out_dir / "connectrpc" / "__init__.py").write_text(SHIM)
    for directory in (out_dir / "connectrpc" / "conformance", out_dir / package_dir):
        (directory / "__init__.py").touch()
    return out_dir


def load(stubs: Path, name: str) -> ModuleType:
    """The generated module `connectrpc.conformance.v1.<name>` of the stubs in `stubs`, in
    this process: the tree goes first on sys.path, and when the connectrpc library was
    imported before (without the shim), its package path gets the tree's connectrpc/."""
    tree = str(stubs)
    if tree not in sys.path:
        sys.path.insert(0, tree)
    library = sys.modules.get("connectrpc")
    generated = os.path.join(tree, "connectrpc")
    if library is not None and generated not in library.__path__:
        library.__path__.append(generated)
    return importlib.import_module(f"{PACKAGE}.{name}")

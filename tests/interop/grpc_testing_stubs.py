"""Python stubs of grpc.testing (the protos of gRPC's interop cases), generated at run time,
never committed, from Debian's grpc-proto package (/usr/share/grpc-proto; .ci/run installs
it) with grpc_tools.protoc.

protoc writes them as grpc/testing/*.py, importing each other as `from grpc.testing import`:
grpcio's own package is `grpc`, so that tree cannot go on sys.path. The modules are written
into a package of their own instead, PACKAGE (a name no distribution uses), and their
`from grpc.testing import` lines now import from it. The proto package stays grpc.testing,
so what goes over the wire (/grpc.testing.TestService/...) is unchanged.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

PROTO_ROOT = Path("/usr/share/grpc-proto")
PROTOS = ("empty.proto", "messages.proto", "test.proto")
PACKAGE = "acme_interop_grpc_testing"
STUBS_VARIABLE = "ACME_INTEROP_STUBS"  # the directory generate() filled (the service reads it)
PROTOC_TIMEOUT = 60.0  # seconds


class ProtosMissing(RuntimeError):
    """Debian's grpc-proto package is not installed."""


def generate(out_dir: Path) -> Path:
    """The stubs of PROTOS as the package PACKAGE in out_dir (created); out_dir."""
    missing = [p for p in PROTOS if not (PROTO_ROOT / "grpc" / "testing" / p).is_file()]
    if missing:
        raise ProtosMissing(f"{PROTO_ROOT}/grpc/testing lacks {', '.join(missing)}")
    raw = out_dir / "protoc"
    raw.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--python_out={raw}",
        f"--grpc_python_out={raw}",
        *(f"grpc/testing/{proto}" for proto in PROTOS),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=PROTOC_TIMEOUT)
    package = out_dir / PACKAGE
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text('"""grpc.testing stubs, see grpc_testing_stubs.py."""\n')
    for module in sorted((raw / "grpc" / "testing").glob("*.py")):
        source = module.read_text().replace("from grpc.testing import ", f"from {PACKAGE} import ")
        (package / module.name).write_text(source)
    return out_dir


def load(stubs: Path, name: str) -> ModuleType:
    """The generated module `name` (test_pb2, messages_pb2, ...) of the stubs in `stubs`."""
    tree = str(stubs)
    if tree not in sys.path:
        sys.path.insert(0, tree)
    return importlib.import_module(f"{PACKAGE}.{name}")

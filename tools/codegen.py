"""Generate the acme-protos package from proto/: messages, gRPC stubs and their .pyi types;
the Go module libs/protos-go (protoc-gen-go, protoc-gen-go-grpc); then the gateway's web page
(tools/webgen.py: TypeScript from the protos, one JS bundle).

Usage: python tools/codegen.py [--check]

The proto package path is the Python package path (acme.greeter.v1 -> acme/greeter/v1/), so
protoc's absolute imports inside generated code resolve from anywhere without sys.path tricks.
It is the Go package path too, below the module acme.example/protos (acme.greeter.v1 ->
acme.example/protos/acme/greeter/v1, package greeterv1): given as protoc `M` options, so the
protos carry no go_package. The Go plugins are the versions tools/go/go.mod pins, installed
with `go install` into $(go env GOPATH)/bin first (a no-op when they are built already).
With --check nothing is written: the committed stubs are compared with a fresh generation and
every file that differs is named; the exit code is 1 when anything differs.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import posixpath
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from importlib import resources
from pathlib import Path

# Run as a script (`python tools/codegen.py`): the repository root on the path for tools.webgen.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import webgen

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
STUBS_ROOT = ROOT / "libs" / "protos" / "src"
NAMESPACE = "acme"
MARKER = "py.typed"
GO_STUBS_ROOT = ROOT / "libs" / "protos-go"  # the Go module of the generated code
GO_MODULE = "acme.example/protos"  # its module path (libs/protos-go/go.mod)
GO_TOOLS = ROOT / "tools" / "go"  # the Go module whose `tool` lines pin the plugins
GO_PLUGINS = {
    "protoc-gen-go": "google.golang.org/protobuf/cmd/protoc-gen-go",
    "protoc-gen-go-grpc": "google.golang.org/grpc/cmd/protoc-gen-go-grpc",
}
REQUIRE_GO = "ACME_REQUIRE_GO_TOOLS"  # =1 (CI): no Go is an error, not a skipped language


def proto_files() -> list[str]:
    """Every .proto below proto/, relative to it, sorted."""
    protos = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto"))
    if not protos:
        sys.exit(f"codegen: no .proto files under {PROTO_ROOT}")
    return protos


def generate(out_dir: Path) -> None:
    """Run protoc with the python, grpc_python, mypy and mypy_grpc plugins into out_dir."""
    protos = proto_files()
    search_path = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    mypy_plugin = shutil.which("protoc-gen-mypy", path=search_path)
    mypy_grpc_plugin = shutil.which("protoc-gen-mypy_grpc", path=search_path)
    if mypy_plugin is None or mypy_grpc_plugin is None:
        sys.exit("codegen: mypy-protobuf plugins not found on PATH (install the dev group)")
    well_known = resources.files("grpc_tools") / "_proto"
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--plugin=protoc-gen-mypy={mypy_plugin}",
        f"--plugin=protoc-gen-mypy_grpc={mypy_grpc_plugin}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        "--mypy_opt=quiet",
        "--mypy_grpc_opt=quiet",
        *protos,
    ]
    subprocess.run(command, check=True, cwd=PROTO_ROOT)  # noqa: S603 - fixed argv, no shell
    package_root = out_dir / NAMESPACE
    for directory in [package_root, *sorted(p for p in package_root.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    (package_root / MARKER).touch()


def go_package(proto: str) -> str:
    """`acme/greeter/v1/greeter.proto` -> `acme.example/protos/acme/greeter/v1;greeterv1`: the
    import path mirrors the proto package, the name is its last two segments (buf's managed
    mode names them the same way)."""
    directory = posixpath.dirname(proto)
    return f"{GO_MODULE}/{directory};{''.join(directory.split('/')[-2:])}"


def go_plugins() -> dict[str, Path] | None:
    """The pinned Go plugins, installed (go install, versions from tools/go/go.mod) into
    $(go env GOPATH)/bin; None when `go` is not on PATH."""
    go = shutil.which("go")
    if go is None:
        return None
    gopath = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [go, "env", "GOPATH"], check=True, capture_output=True, text=True
    ).stdout.strip()
    gobin = Path(gopath.split(os.pathsep)[0]) / "bin"
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [go, "-C", str(GO_TOOLS), "install", *GO_PLUGINS.values()],
        check=True,
        # tools/go is its own module, outside go.work (its tools' dependencies stay apart).
        env={**os.environ, "GOBIN": str(gobin), "GOWORK": "off"},
    )
    return {name: gobin / name for name in GO_PLUGINS}


def generate_go(out_dir: Path, plugins: dict[str, Path]) -> None:
    """Run protoc with protoc-gen-go and protoc-gen-go-grpc into out_dir (source-relative
    paths: out_dir/acme/greeter/v1/greeter.pb.go, greeter_grpc.pb.go)."""
    protos = proto_files()
    mappings = ",".join(f"M{proto}={go_package(proto)}" for proto in protos)
    well_known = resources.files("grpc_tools") / "_proto"
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        *(f"--plugin={name}={path}" for name, path in plugins.items()),
        f"--go_out={out_dir}",
        f"--go_opt=paths=source_relative,{mappings}",
        f"--go-grpc_out={out_dir}",
        f"--go-grpc_opt=paths=source_relative,{mappings}",
        *protos,
    ]
    subprocess.run(command, check=True, cwd=PROTO_ROOT)  # noqa: S603 - fixed argv, no shell


def relative_files(root: Path) -> set[str]:
    """Every generated file below root/NAMESPACE, relative to root, bytecode caches excluded."""
    base = root / NAMESPACE
    if not base.exists():
        return set()
    return {
        p.relative_to(root).as_posix()
        for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def differences(fresh: Path, committed: Path) -> list[str]:
    """Files that are missing, stale or different in committed compared with fresh."""
    fresh_files, committed_files = relative_files(fresh), relative_files(committed)
    changed = [
        name
        for name in sorted(fresh_files & committed_files)
        if not filecmp.cmp(fresh / name, committed / name, shallow=False)
    ]
    missing = [f"{name} (missing)" for name in sorted(fresh_files - committed_files)]
    stale = [
        f"{name} (stale: no proto generates it)" for name in sorted(committed_files - fresh_files)
    ]
    return changed + missing + stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if the committed stubs differ from proto/"
    )
    args = parser.parse_args(argv)
    plugins = go_plugins()
    if plugins is None:
        message = "codegen: `go` is not on PATH: the Go stubs (libs/protos-go) are left alone"
        if os.environ.get(REQUIRE_GO) == "1":
            print(f"{message}, and {REQUIRE_GO}=1")
            return 1
        print(f"WARNING: {message}")
    with tempfile.TemporaryDirectory() as tmp:
        fresh, fresh_go = Path(tmp) / "python", Path(tmp) / "go"
        fresh.mkdir()
        fresh_go.mkdir()
        generate(fresh)
        diff = differences(fresh, STUBS_ROOT)
        go_diff: list[str] = []
        if plugins is not None:
            generate_go(fresh_go, plugins)
            go_diff = differences(fresh_go, GO_STUBS_ROOT)
        if args.check:
            web_diff, how = webgen.check()
            if diff or go_diff or web_diff:
                print("codegen check FAILED: generated files differ; run `nox -s codegen`")
                for name in diff:
                    print(f"  libs/protos/src/{name}")
                for name in go_diff:
                    print(f"  libs/protos-go/{name}")
                for name in web_diff:
                    print(f"  {name} (web page, {how})")
                return 1
            go_said = "; Go stubs match" if plugins is not None else ""
            print(f"codegen check passed: stubs match proto/{go_said}; web page {how}: no drift")
            return 0
        shutil.rmtree(STUBS_ROOT / NAMESPACE, ignore_errors=True)
        shutil.copytree(fresh / NAMESPACE, STUBS_ROOT / NAMESPACE)
        print(f"codegen: {len(diff)} file(s) changed under libs/protos/src/{NAMESPACE}")
        for name in diff:
            print(f"  {name}")
        if plugins is not None:
            shutil.rmtree(GO_STUBS_ROOT / NAMESPACE, ignore_errors=True)
            shutil.copytree(fresh_go / NAMESPACE, GO_STUBS_ROOT / NAMESPACE)
            print(f"codegen: {len(go_diff)} file(s) changed under libs/protos-go/{NAMESPACE}")
            for name in go_diff:
                print(f"  {name}")
    web_changed = webgen.write()
    print(f"codegen: {len(web_changed)} file(s) of the web page changed")
    for name in web_changed:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The gateway's web page, generated: TypeScript from the protos the page calls (protoc-gen-es)
and one bundle (esbuild) of services/gateway/web/src/main.ts (and the page's other hand-written
modules, src/*.ts) into the gateway's static files.
Called by tools/codegen.py (`nox -s codegen`, `--check`).

Both the generated TypeScript and the bundle are committed, so the gateway's image and
`nox -s up` need no Node.js. `services/gateway/web/generated.sha256` records the sha256 of
every input (protos, src/*.ts, package-lock.json) and output of the last generation:
- with the npm packages installed (`npm ci` in services/gateway/web; `nox -s lint` does it),
  the check regenerates everything in a temporary copy and compares file by file;
- without them, it compares the recorded hashes with the files: a changed input ("run
  `nox -s codegen`") or a hand-edited output is still found, without Node.js.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "services" / "gateway" / "web"
STATIC = ROOT / "services" / "gateway" / "src" / "gateway" / "static"
BUNDLE = "app.js"
GENERATED_TS = Path("src") / "proto"
STAMP = WEB / "generated.sha256"
# The contracts the page calls, plus google.rpc.BadRequest to read validation errors (from
# googleapis-common-protos, next to its Python modules). A fixed list: a new service changes
# nothing here until the page uses it.
PROTOS = ("acme/caller/v1/caller.proto", "acme/greeter/v1/greeter.proto")
GOOGLE_PROTOS = ("google/rpc/error_details.proto",)
# The protovalidate rules the contracts import (tools/codegen.py, tools/proto_deps.py): read to
# compile the contracts, not generated. The page imports buf/validate's TypeScript from
# @bufbuild/protovalidate (the validator reads the rules with that copy; its descriptor is
# byte-identical to the pinned validate.proto's), so the bundle holds one copy of it.
THIRD_PARTY = ROOT / "third_party" / "protovalidate"
THIRD_PARTY_PROTOS = ("buf/validate/validate.proto",)
ES_OPTIONS = ("target=ts", "map_imports=buf/validate/:@bufbuild/protovalidate/gen")
NPM_VALIDATE = "node_modules/@bufbuild/protovalidate/dist/esm/gen/buf/validate/validate_pb.js"
# The descriptor protoc-gen-es embeds in a generated file (base64 of the FileDescriptorProto).
EMBEDDED_DESCRIPTOR = re.compile(r'fileDesc\("([A-Za-z0-9+/=_-]+)"')
ESBUILD_OPTIONS = (
    "--bundle",
    "--format=esm",
    "--target=es2022",
    "--minify",
    "--charset=utf8",
    "--legal-comments=none",
)


def _google_protos_root() -> Path:
    import google.rpc

    return Path(next(iter(google.rpc.__path__))).parent.parent


def inputs() -> dict[str, Path]:
    """Name (relative to the repository) -> path of everything the generation reads."""
    files = {f"proto/{name}": ROOT / "proto" / name for name in PROTOS}
    google = _google_protos_root()
    files |= {f"<googleapis-common-protos>/{name}": google / name for name in GOOGLE_PROTOS}
    files |= {f"third_party/protovalidate/{n}": THIRD_PARTY / n for n in THIRD_PARTY_PROTOS}
    for name in (*sources(), "package.json", "package-lock.json"):
        files[f"services/gateway/web/{name}"] = WEB / name
    return files


def sources() -> list[str]:
    """The page's hand-written modules (relative to web): src/*.ts; src/proto is generated."""
    return sorted(path.relative_to(WEB).as_posix() for path in (WEB / "src").glob("*.ts"))


def outputs(web: Path, static: Path) -> dict[str, Path]:
    """Name (relative to the repository) -> path of every generated file, under web and
    static (the real directories, or a temporary copy's)."""
    files = {
        f"services/gateway/web/{path.relative_to(web).as_posix()}": path
        for path in sorted((web / GENERATED_TS).rglob("*.ts"))
    }
    files[f"services/gateway/src/gateway/static/{BUNDLE}"] = static / BUNDLE
    return files


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"


def stamp_text(files: dict[str, Path]) -> str:
    return "".join(f"{_sha256(path)}  {name}\n" for name, path in sorted(files.items()))


def tools_installed() -> bool:
    """Whether node and the page's npm packages (protoc-gen-es, esbuild) are installed."""
    bin_dir = WEB / "node_modules" / ".bin"
    installed = all((bin_dir / tool).exists() for tool in ("protoc-gen-es", "esbuild"))
    return installed and shutil.which("node") is not None


def _protoc_es(out: Path, protos: tuple[str, ...]) -> None:
    """protoc-gen-es (ES_OPTIONS) of protos into out."""
    protoc = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={ROOT / 'proto'}",
        f"--proto_path={_google_protos_root()}",
        f"--proto_path={THIRD_PARTY}",
        f"--plugin=protoc-gen-es={WEB / 'node_modules' / '.bin' / 'protoc-gen-es'}",
        f"--es_out={out}",
        *(f"--es_opt={option}" for option in ES_OPTIONS),
        *protos,
    ]
    subprocess.run(protoc, check=True, cwd=ROOT)  # noqa: S603 - fixed argv, no shell


def check_validate_copy() -> None:
    """SystemExit unless the buf/validate descriptor in @bufbuild/protovalidate (the copy the
    page uses) is the one of the pinned third_party validate.proto (the copy the servers use):
    both sides must then read the same rules the same way."""
    with tempfile.TemporaryDirectory() as tmp:
        _protoc_es(Path(tmp), THIRD_PARTY_PROTOS)
        pinned = EMBEDDED_DESCRIPTOR.search(Path(tmp, "buf/validate/validate_pb.ts").read_text())
    npm = EMBEDDED_DESCRIPTOR.search((WEB / NPM_VALIDATE).read_text())
    if pinned is None or npm is None or pinned[1] != npm[1]:
        sys.exit(
            "codegen: @bufbuild/protovalidate's buf/validate/validate.proto differs from the "
            "pinned third_party/protovalidate one: move the npm package (services/gateway/web/"
            "package.json) and third_party/protovalidate/source.toml to the same release"
        )


def generate(web: Path, static: Path) -> None:
    """Generate the TypeScript into web/src/proto and bundle web/src/main.ts into static."""
    check_validate_copy()
    generated = web / GENERATED_TS
    shutil.rmtree(generated, ignore_errors=True)
    generated.mkdir(parents=True)
    _protoc_es(generated, PROTOS + GOOGLE_PROTOS)
    static.mkdir(parents=True, exist_ok=True)
    bundle = [str(WEB / "node_modules" / ".bin" / "esbuild"), "src/main.ts", *ESBUILD_OPTIONS]
    bundle.append(f"--outfile={static / BUNDLE}")
    # esbuild finds the npm packages from web's node_modules (NODE_PATH) wherever web is.
    env = {**os.environ, "NODE_PATH": str(WEB / "node_modules")}
    subprocess.run(bundle, check=True, cwd=web, env=env, capture_output=True)  # noqa: S603


def write() -> list[str]:
    """Regenerate in place (when an input or output changed since the stamp); the names of
    the files that changed. SystemExit when that needs tools that are not installed."""
    before = stamp_text(inputs()) + stamp_text(outputs(WEB, STATIC))
    if STAMP.is_file() and STAMP.read_text() == before:
        return []
    if not tools_installed():
        sys.exit(
            "codegen: the web page must be regenerated but its tools are missing: install "
            "Node.js >= 18 and npm, then `npm ci` in services/gateway/web"
        )
    old = {name: _sha256(path) for name, path in outputs(WEB, STATIC).items()}
    generate(WEB, STATIC)
    new = outputs(WEB, STATIC)
    STAMP.write_text(stamp_text(inputs()) + stamp_text(new))
    return sorted(name for name, path in new.items() if old.get(name) != _sha256(path))


def check() -> tuple[list[str], str]:
    """(files that differ from what generation gives, how that was found)."""
    if tools_installed():
        with tempfile.TemporaryDirectory() as tmp:
            web, static = Path(tmp) / "web", Path(tmp) / "static"
            (web / "src").mkdir(parents=True)
            for name in sources():
                shutil.copy2(WEB / name, web / name)
            generate(web, static)
            fresh = {name: _sha256(path) for name, path in outputs(web, static).items()}
        committed = {name: _sha256(path) for name, path in outputs(WEB, STATIC).items()}
        differ = sorted(
            name
            for name in fresh.keys() | committed.keys()
            if fresh.get(name) != committed.get(name)
        )
        if not differ and STAMP.read_text() != stamp_text(inputs()) + stamp_text(
            outputs(WEB, STATIC)
        ):
            differ = [str(STAMP.relative_to(ROOT))]
        return differ, "regenerated with protoc-gen-es and esbuild"
    recorded = STAMP.read_text().splitlines() if STAMP.is_file() else []
    current = (stamp_text(inputs()) + stamp_text(outputs(WEB, STATIC))).splitlines()
    differ = sorted({line.split("  ", 1)[-1] for line in set(recorded) ^ set(current)})
    return differ, "compared with generated.sha256 (npm packages not installed: `npm ci` there)"

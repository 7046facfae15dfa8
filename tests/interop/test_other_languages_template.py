"""buf.gen.other-languages.yaml is a working `buf generate` template.

The real TypeScript and Go plugins are not installed here (and remote plugins are out of reach),
so stand-ins with the same names (protoc-gen-es, protoc-gen-go, protoc-gen-go-grpc) are put on
PATH: each records the CodeGeneratorRequest buf sends it. That proves the template parses, that
buf runs each plugin with the documented options on every contract, and that managed mode gives
Go the import paths it needs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs tools (buf, kubectl, uv, ...) as processes

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "buf.gen.other-languages.yaml"
BUF = Path(sys.executable).parent / "buf"

# A protoc plugin: reads the CodeGeneratorRequest on stdin, writes one JSON file describing it.
STAND_IN = """\
import json, os, sys
from google.protobuf.compiler import plugin_pb2

request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
plugin = os.path.basename(sys.argv[0])
files = {f.name: f for f in request.proto_file}
response = plugin_pb2.CodeGeneratorResponse(
    supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
)
for name in request.file_to_generate:
    seen = {"parameter": request.parameter, "go_package": files[name].options.go_package}
    response.file.add(name=f"{plugin}/{name}.json", content=json.dumps(seen))
sys.stdout.buffer.write(response.SerializeToString())
"""
PLUGINS = ("protoc-gen-es", "protoc-gen-go", "protoc-gen-go-grpc")


def test_template_drives_the_typescript_and_go_plugins(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "proto", work / "proto")
    shutil.copy(ROOT / "buf.yaml", work / "buf.yaml")
    shutil.copy(ROOT / TEMPLATE, work / TEMPLATE)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for plugin in PLUGINS:
        script = bin_dir / plugin
        script.write_text(f"#!{sys.executable}\n{STAND_IN}")
        script.chmod(0o755)

    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(BUF), "generate", "--template", TEMPLATE],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    contracts = sorted(p.relative_to(work / "proto").as_posix() for p in work.rglob("*.proto"))
    for out, plugin, parameter in [
        ("gen/ts", "protoc-gen-es", "target=ts,import_extension=js"),
        ("gen/go", "protoc-gen-go", "paths=source_relative"),
        ("gen/go", "protoc-gen-go-grpc", "paths=source_relative"),
    ]:
        records = sorted((work / out / plugin).rglob("*.proto.json"))
        generated = [r.relative_to(work / out / plugin).as_posix() for r in records]
        assert [name.removesuffix(".json") for name in generated] == contracts, plugin
        for record in records:
            seen = json.loads(record.read_text())
            assert seen["parameter"] == parameter, (plugin, record)
            if plugin.startswith("protoc-gen-go"):
                package = record.relative_to(work / out / plugin).parent.as_posix()
                short = f"{package.split('/')[-2]}{package.split('/')[-1]}"
                assert seen["go_package"] == f"example.com/acme/gen/go/{package};{short}"

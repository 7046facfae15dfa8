"""A protoc plugin that runs one of grpcio-tools' built-in generators, for `buf generate`.

grpcio-tools compiles the `python` and `grpc_python` generators into its own protoc instead of
shipping plugin executables; buf needs executables. Usage in buf.gen.yaml:
`local: [python, tools/grpc_tools_plugin.py, grpc_python]`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2


def main() -> int:
    generator = sys.argv[1]  # "python" or "grpc_python"
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = Path(tmp, "descriptors.binpb")
        descriptors.write_bytes(
            descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString()
        )
        out = Path(tmp, "out")
        out.mkdir()
        arguments = [f"--descriptor_set_in={descriptors}", f"--{generator}_out={out}"]
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-m", "grpc_tools.protoc", *arguments, *request.file_to_generate],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            response.error = result.stderr or f"grpc_tools.protoc exited {result.returncode}"
        for path in sorted(out.rglob("*")):
            if path.is_file():
                response.file.add(name=path.relative_to(out).as_posix(), content=path.read_text())
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())

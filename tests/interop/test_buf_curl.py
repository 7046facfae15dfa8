"""Interop without stubs: `buf curl` (the dev dependency buf-bin) discovers the schema through
the servers' reflection service and calls unary RPCs with JSON, as any language's tooling could.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import GREETER_INSTANCE, Server, scrubbed_environment

BUF = Path(sys.executable).parent / "buf"

pytestmark = pytest.mark.integration


def buf_curl(*args: str) -> str:
    """stdout of `buf curl --protocol grpc --http2-prior-knowledge ARGS` (plaintext HTTP/2)."""
    if not BUF.is_file():
        pytest.fail(f"buf not found at {BUF}: install the dev dependencies (`uv sync`)")
    result = subprocess.run(
        [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args],
        env=scrubbed_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"buf curl {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def test_buf_curl_calls_greeter_through_reflection(greeter: Server) -> None:
    url = f"http://{greeter.address}/acme.greeter.v1.GreeterService/SayHello"
    reply = json.loads(buf_curl("--data", '{"name": "Ada", "language": "de"}', url))
    # buf curl prints the reply in the proto3 JSON mapping: lowerCamelCase field names.
    assert reply == {"message": "Hallo, Ada!", "servedBy": GREETER_INSTANCE}


def test_buf_curl_calls_caller_which_calls_greeter(caller: Server) -> None:
    url = f"http://{caller.address}/acme.caller.v1.CallerService/Introduce"
    reply = json.loads(buf_curl("--data", '{"name": "Grace"}', url))
    assert reply == {"message": "Hello, Grace!", "greeterInstance": GREETER_INSTANCE}


def test_buf_curl_lists_the_methods_reflection_exposes(greeter: Server) -> None:
    methods = buf_curl("--list-methods", f"http://{greeter.address}").split()
    assert "acme.greeter.v1.GreeterService/SayHello" in methods
    assert "acme.greeter.v1.GreeterService/SayHelloLanguages" in methods

"""Interop: a Node.js client (@grpc/grpc-js + @grpc/proto-loader, loading proto/ directly, no
generated code) calls the real Python greeter and caller processes.

tests/interop/node/client.js makes the calls and prints the replies as JSON: Greeter.SayHello
(unary), Greeter.SayHelloLanguages (server streaming), Caller.Introduce (which calls Greeter),
and SayHello with an invalid name (INVALID_ARGUMENT must reach Node with its message).
`npm ci` installs the pinned packages (package-lock.json) into node/node_modules (git-ignored)
once; later runs reuse it until package-lock.json changes.

Without Node.js >= 18 and npm the test is skipped with a loud reason (ACME_REQUIRE_NODE=1:
fails instead), so CI must install them (Debian: `apt-get install -y nodejs npm`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

from acme_devkit.external import not_run
from acme_devkit.node import npm_ci

from .conftest import GREETER_INSTANCE, Server, scrubbed_environment

NODE_DIR = Path(__file__).resolve().parent / "node"
REQUIRE_VARIABLE = "ACME_REQUIRE_NODE"
MIN_NODE_MAJOR = 18
CLIENT_TIMEOUT = 60.0

pytestmark = pytest.mark.integration


def not_available(problem: str) -> NoReturn:
    """Skip loudly (or fail, with ACME_REQUIRE_NODE=1): nobody should miss that it did not run."""
    not_run(
        "NODE.JS INTEROP TEST", problem,
        f"Node.js >= {MIN_NODE_MAJOR} and npm (Debian/Ubuntu: `apt-get install -y nodejs npm`)",
        REQUIRE_VARIABLE,
    )  # fmt: skip


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, with this directory's npm packages installed (`npm ci`, once)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        not_available(f"`{'node' if node is None else 'npm'}` is not on PATH")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    major = re.match(r"v(\d+)\.", version)
    if major is None or int(major.group(1)) < MIN_NODE_MAJOR:
        not_available(f"node {version or '(unknown version)'} is older than {MIN_NODE_MAJOR}")
    problem = npm_ci(npm, NODE_DIR)
    assert problem is None, problem
    return node


def test_node_client_calls_the_python_services(node: str, greeter: Server, caller: Server) -> None:
    result = subprocess.run(
        [node, "client.js", "--greeter", greeter.address, "--caller", caller.address],
        cwd=NODE_DIR,
        env=scrubbed_environment(),
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"client.js failed:\n{result.stdout}{result.stderr}"
    replies = json.loads(result.stdout)

    assert replies["say_hello"] == {"message": "Bonjour, Ada !", "served_by": GREETER_INSTANCE}
    assert replies["say_hello_languages"] == [
        {"language": "en", "message": "Hello, Ada!"},
        {"language": "de", "message": "Hallo, Ada!"},
        {"language": "it", "message": "Ciao, Ada!"},
    ]
    assert replies["introduce"] == {"message": "Hello, Ada!", "greeter_instance": GREETER_INSTANCE}
    assert replies["say_hello_empty_name"] == {
        "code": "INVALID_ARGUMENT",
        "details": "name: must not be empty",
    }

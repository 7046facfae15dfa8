"""The gateway's page in a real browser: headless Chromium from Debian's packages, driven by
playwright-core (tests/browser/node/page.js; no browser download), loads the page from the
running gateway (in front of the real caller and greeter), submits the form and reads what the
page shows: the greeting, a validation error for an empty name with its field violation, the
fan-out, and a server stream, over the Connect protocol and over gRPC-Web.

Without Chromium, Node.js or npm the test is skipped with a loud message; ACME_REQUIRE_BROWSER=1
(set by .ci/run) turns that skip into a failure. Debian: `apt-get install -y chromium nodejs
npm`. `npm ci` installs playwright-core into tests/browser/node/node_modules once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest

from acme_devkit.environment import clean_environment
from acme_devkit.external import not_run
from acme_devkit.node import npm_ci
from tests.processes import GREETER_INSTANCE, GatewayProcess

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).resolve().parents[1] / "browser" / "node"
REQUIRE_VARIABLE = "ACME_REQUIRE_BROWSER"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
BROWSER_TIMEOUT = 120.0


def not_available(problem: str) -> NoReturn:
    not_run(
        "BROWSER TEST", problem,
        "Debian's chromium, Node.js >= 18 and npm (`apt-get install -y chromium nodejs npm`)",
        REQUIRE_VARIABLE,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tools() -> tuple[str, str]:
    """(node, chromium), with playwright-core installed (`npm ci`, once)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        not_available(f"`{'node' if node is None else 'npm'}` is not on PATH")
    chromium = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if chromium is None:
        not_available("no `chromium` on PATH")
    problem = npm_ci(npm, NODE_DIR)
    assert problem is None, problem
    return node, chromium


def drive_page(tools: tuple[str, str], url: str, profile: Path) -> dict[str, Any]:
    node, chromium = tools
    result = subprocess.run(
        [node, "page.js", "--url", url, "--chromium", chromium, "--profile", str(profile)],
        cwd=NODE_DIR,
        env=clean_environment({"NO_PROXY": "*"}),
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
        check=False,
    )
    if result.returncode != 0 and "Failed to launch" in result.stderr:
        not_available(f"{chromium} did not start: {result.stderr.strip()[-500:]}")
    assert result.returncode == 0, f"page.js failed:\n{result.stdout}\n{result.stderr}"
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def test_page_in_chromium(tools: tuple[str, str], gateway: GatewayProcess, tmp_path: Path) -> None:
    shown = drive_page(tools, f"{gateway.url}/", tmp_path / "profile")
    assert shown["title"] == "acme gateway"
    for protocol in ("", "grpc_web_"):
        introduce = shown[f"{protocol}introduce"]
        name = "Grace" if protocol else "Ada"
        assert introduce == {
            "text": f"greeting: Hello, {name}!\ngreeter: {GREETER_INSTANCE}",
            "state": "ok",
        }
        empty = shown[f"{protocol}empty_name"]
        assert empty["state"] == "error"
        assert empty["text"].splitlines() == [
            "error: invalid_argument",
            "message: name: must not be empty",
            "field name: must not be empty",
        ]
    assert shown["introduce_all"]["text"].splitlines() == [
        "greeting: Hello, Ada!",
        "greeting: Hello, Alan!",
        "greeting: Hello, Grace!",
        "succeeded: 3, failed: 0",
    ]
    assert shown["stream"]["text"].splitlines() == [
        "greeting (en): Hello, Ada!",
        "greeting (fr): Bonjour, Ada !",
        "greeting (de): Hallo, Ada!",
        "stream ended: 3 messages",
    ]
    assert shown["grpc_web_stream"]["text"].splitlines()[-1] == "stream ended: 3 messages"
    # Only the expected 400 of the empty name (Connect's HTTP status) shows in the console.
    assert [line for line in shown["console"] if "status of 400" not in line] == []

"""The gateway's page in a real browser: headless Chromium from Debian's packages, driven by
playwright-core (tests/browser/node/page.js; no browser download), loads the page from the
running gateway (in front of the real caller and greeter), submits the form and reads what the
page shows: the greeting, the fan-out and a server stream, over the Connect protocol and over
gRPC-Web; the page's own check of the contract's rules (protovalidate-es) refusing invalid
forms with no request sent, each message next to its field; and, with that check turned off by
the page's test hook `?novalidate`, the server's violations shown next to the field the same way.

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


# The contract's messages (buf.validate rules of proto/acme/*/v1/*.proto), as protovalidate says
# them: the page's check and (once it enforces them) the server's.
EMPTY = "must not be empty"
TOO_LONG = "must be at most 100 characters"
UNSUPPORTED = "must be one of the supported language tags: de, en, es, fr, it, pt"
INTRODUCE = "/acme.caller.v1.CallerService/Introduce"
INTRODUCE_ALL = "/acme.caller.v1.CallerService/IntroduceAll"
SAY_HELLO_LANGUAGES = "/acme.greeter.v1.GreeterService/SayHelloLanguages"


@pytest.fixture(scope="module")
def shown(
    tools: tuple[str, str], gateway: GatewayProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """What the page showed at each step of page.js (one browser run for this module)."""
    return drive_page(tools, f"{gateway.url}/", tmp_path_factory.mktemp("browser") / "profile")


def marked(field: str, message: str) -> dict[str, str]:
    """How the page marks an invalid input (fields.ts): aria-invalid, and aria-describedby
    naming the element next to it that shows the message."""
    return {"invalid": "true", "describedby": f"{field}-error", "message": message}


def test_page_in_chromium(shown: dict[str, Any]) -> None:
    assert shown["title"] == "acme gateway"
    for protocol in ("", "grpc_web_"):
        introduce = shown[f"{protocol}introduce"]
        name = "Grace" if protocol else "Ada"
        assert introduce["text"] == f"greeting: Hello, {name}!\ngreeter: {GREETER_INSTANCE}"
        assert (introduce["state"], introduce["fields"]) == ("ok", {})
        assert introduce["requests"] == [INTRODUCE]
    assert shown["introduce_all"]["text"].splitlines() == [
        "greeting: Hello, Ada!",
        "greeting: Hello, Alan!",
        "greeting: Hello, Grace!",
        "succeeded: 3, failed: 0",
    ]
    assert shown["introduce_all"]["requests"] == [INTRODUCE_ALL]
    assert shown["stream"]["text"].splitlines() == [
        "greeting (en): Hello, Ada!",
        "greeting (fr): Bonjour, Ada !",
        "greeting (de): Hallo, Ada!",
        "stream ended: 3 messages",
    ]
    assert shown["grpc_web_stream"]["text"].splitlines()[-1] == "stream ended: 3 messages"
    for step in ("stream", "grpc_web_stream"):
        assert shown[step]["requests"] == [SAY_HELLO_LANGUAGES]
    # The server's 400s (Connect's HTTP status for invalid_argument) are the only console lines.
    assert [line for line in shown["console"] if "status of 400" not in line] == []


def test_page_refuses_invalid_forms_before_sending(shown: dict[str, Any]) -> None:
    """protovalidate-es in the page: each invalid form shows the contract's message next to
    its field, focuses the first invalid field, and sends nothing (no request in the page's
    network events); a valid form afterwards clears the marks."""
    expected = {
        "empty_name": [("name", "name", EMPTY)],
        "grpc_web_empty_name": [("name", "name", EMPTY)],
        "long_name": [("name", "name", TOO_LONG)],
        "blank_name_and_language": [
            ("name", "name", EMPTY),
            ("language", "language", UNSUPPORTED),
        ],
        "long_names_entry": [("names", "names[1]", TOO_LONG)],
        "stream_language": [("languages", "languages[1]", UNSUPPORTED)],
    }
    for step, violations in expected.items():
        refused = shown[step]
        assert refused["requests"] == [], step
        assert refused["state"] == "error", step
        assert refused["text"].splitlines() == [
            "not sent: the form is invalid",
            *(f"field {path}: {message}" for _, path, message in violations),
        ], step
        assert refused["fields"] == {
            field: marked(field, message if path == field else f"{path}: {message}")
            for field, path, message in violations
        }, step
        assert refused["focused"] == violations[0][0], step
    for step in ("introduce_all", "stream", "grpc_web_introduce"):
        assert shown[step]["fields"] == {}, step


def test_page_shows_server_violations_next_to_fields(shown: dict[str, Any]) -> None:
    """The test hook `?novalidate` turns the page's check off: the page sends the invalid form
    and shows the server's google.rpc.BadRequest violation next to its field, as it shows its
    own."""
    for step in ("server_empty_name", "server_grpc_web_empty_name"):
        answered = shown[step]
        assert answered["requests"] == [INTRODUCE], step
        assert answered["state"] == "error", step
        assert answered["text"].splitlines() == [
            "error: invalid_argument",
            f"message: name: {EMPTY}",
            f"field name: {EMPTY}",
        ], step
        assert answered["fields"] == {"name": marked("name", EMPTY)}, step
    # The server enforces the same rule (the contract's protovalidate rules) in the same words.
    answered = shown["server_language"]
    assert answered["requests"] == [INTRODUCE]
    assert answered["text"].splitlines()[-1] == f"field language: {UNSUPPORTED}"
    assert answered["fields"] == {"language": marked("language", UNSUPPORTED)}

"""The daily loop after `nox -s new_service -- <name>` (issue #22), in Python and in Go:
with no edit, the local stack (`acmectl stack`, what `nox -s up` runs) starts the new service,
serves it directly and as JSON through the edge, and the commands it prints work as pasted
(`uv run acmectl call ...`, from the repository). On a temporary copy of the repository
(tests/scaffold/test_new_service.py's helpers), with its own locked virtualenv."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acme_devkit.external import not_run
from acmectl.stack import post_json
from tests.scaffold.test_new_service import ROOT, copy_repository, run_ok, scaffold
from tests.tools import stack_process

pytestmark = pytest.mark.integration

# A name no service of the repository has (it may hold orders already: the example).
NAME = next(
    name for name in ("orders", *(f"orders{n}" for n in range(2, 1000)))
    if not (ROOT / "services" / name).exists()
)  # fmt: skip
CAMEL = NAME[:1].upper() + NAME[1:]
SERVICE = f"acme.{NAME}.v1.{CAMEL}Service"


@pytest.fixture(scope="module", params=["python", "go"])
def repo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy with NAME scaffolded in a language (as `nox -s new_service -- NAME --lang ...`
    does) and its own locked virtualenv (as `nox -s up` syncs one)."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH (README prerequisites: pip install uv)")
    if request.param == "go" and shutil.which("go") is None:
        not_run("the local stack with a Go service", "`go` is not on PATH",
                "Go (https://go.dev/dl/)", "ACME_REQUIRE_GO_TOOLS")  # fmt: skip
    repo = copy_repository(tmp_path_factory.mktemp(f"stack-{request.param}"))
    result = scaffold(repo, NAME, "--lang", request.param)
    assert result.returncode == 0, result.stdout + result.stderr
    run_ok([uv, "sync", "--locked", "--quiet", "--python", sys.executable], repo, environment())
    return repo


def environment() -> dict[str, str]:
    """A plain shell's: no virtualenv active (uv run finds the repository's .venv)."""
    active = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    env = {key: value for key, value in os.environ.items() if key not in active}
    return {**env, "LOG_FORMAT": "text"}


@pytest.mark.timeout(600)
def test_a_new_service_is_served_directly_and_through_the_edge(repo: Path, tmp_path: Path) -> None:
    acmectl = [str(repo / ".venv" / "bin" / "python"), "-m", "acmectl"]
    stack = stack_process.start(
        acmectl, ["--base-port", "0"], tmp_path / "stack.log", environment(), repo
    )
    try:
        addresses = stack.addresses()
        assert NAME in addresses, stack.text()
        overview = stack.text().partition("the stack:\n")[2]
        # The lines the stack printed for the new service, run as a person pastes them.
        hinted = re.search(rf"^  (uv run acmectl call --address \S+ {SERVICE}/.*)$", overview, re.M)
        curl = re.search(rf"^  curl .* (http://\S+/{SERVICE}/\S+)$", overview, re.MULTILINE)
        assert hinted is not None, overview
        assert curl is not None, overview
        pasted = subprocess.run(  # noqa: S602 - run by a shell, as a person pastes it
            hinted[1], shell=True, cwd=repo, env=environment(), capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert pasted.returncode == 0, pasted.stdout + pasted.stderr
        direct = json.loads(pasted.stdout.splitlines()[-1])
        assert direct["servedBy"] == f"{NAME}-local"
        body = shlex.split(hinted[1])[-1]  # the request the hint sends
        # The same reply, from the new service, as JSON through the edge.
        status, answer = post_json(curl[1], body)
        assert (status, json.loads(answer)) == (200, direct)
    finally:
        code = stack.interrupt()
    assert code == 0, stack.text()[-6000:]
    assert stack_process.problems(stack.text()) == []
    assert re.search(rf"^stopped: .*{NAME} exit 0", stack.text(), re.MULTILINE)

"""`nox -s new_service -- <name>` (tools/scaffold/new_service.py) on temporary copies of the repo.

A copy holds the repository's tracked and untracked-but-not-ignored files (`git ls-files`), so
the real tree is never touched. One copy gets a new service, `demo_svc`, then its own locked
virtualenv (`uv sync --locked`, fast from uv's cache); in it the generated service's own tests
run (a unit test, and a real process called over gRPC) and ruff, mypy --strict, buf, the codegen
check and hadolint must pass. Bad names, and a failure half-way, must leave a copy unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml

pytestmark = pytest.mark.integration  # runs tools (buf, kubectl, uv, ...) as processes

ROOT = Path(__file__).resolve().parents[2]
SCAFFOLD = Path("tools") / "scaffold" / "new_service.py"
NAME = "demo_svc"
SKIPPED_PARTS = {".git", ".venv", ".nox", "__pycache__", ".mypy_cache", ".ruff_cache"}
SKIPPED_PARTS |= {".pytest_cache", ".hypothesis", "node_modules"}
TIMEOUT = 180


def repository_files() -> list[str]:
    """Tracked files and untracked files that are not ignored, relative to ROOT."""
    result = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"`git ls-files` failed in {ROOT}: {result.stderr.decode()}")
    names = {name for name in result.stdout.decode().split("\0") if name}
    return sorted(
        name
        for name in names
        if not SKIPPED_PARTS.intersection(Path(name).parts) and (ROOT / name).is_file()
    )


def copy_repository(destination: Path) -> Path:
    for name in repository_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target, follow_symlinks=False)
    return destination


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file below root (caches and virtualenvs left out)."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not SKIPPED_PARTS.intersection(path.relative_to(root).parts)
    }


def scaffold(
    repo: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The scaffold of the copy (it works on the tree it lives in), run by this Python, which
    has the dev tools (buf, ruff, grpcio-tools) like the nox session."""
    return subprocess.run(
        [sys.executable, str(repo / SCAFFOLD), *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env=env,
    )


def run_ok(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False, env=env
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"`{' '.join(command)}` exited {result.returncode}:\n{output}"
    return output


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy for the refusals, which must leave it exactly as it is."""
    return copy_repository(tmp_path_factory.mktemp("pristine"))


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy with demo_svc scaffolded and the copy's own locked virtualenv synced."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH (README prerequisites: pip install uv)")
    repo = copy_repository(tmp_path_factory.mktemp("scaffolded"))
    result = scaffold(repo, NAME)
    assert result.returncode == 0, result.stdout + result.stderr
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["UV_PROJECT_ENVIRONMENT"] = str(repo / ".venv")
    run_ok([uv, "sync", "--locked", "--quiet", "--python", sys.executable], repo, env)
    return repo


def venv_tool(repo: Path, name: str) -> str:
    return str(repo / ".venv" / "bin" / name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("greeter", "services/greeter already exists"),
        ("Bad-Name", "is not a lowercase identifier"),
        ("class", "is a Python keyword"),
        ("os", "is a standard-library module"),
        ("", "the name is empty"),
        ("grpc", "is reserved"),
        ("demo__svc", "double or trailing underscore"),
    ],
)
def test_bad_names_are_refused_and_nothing_is_written(
    pristine: Path, name: str, reason: str
) -> None:
    before = snapshot(pristine)
    result = scaffold(pristine, name)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"refused {name!r}, nothing was written" in result.stderr
    assert reason in result.stderr
    assert snapshot(pristine) == before


def test_a_failing_step_rolls_everything_back(tmp_path: Path) -> None:
    repo = copy_repository(tmp_path / "repo")
    before = snapshot(repo)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake_uv = fake_bin / "uv"
    fake_uv.write_text("#!/bin/sh\necho 'simulated uv failure' >&2\nexit 1\n")
    fake_uv.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = scaffold(repo, NAME, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "uv lock failed" in result.stderr
    assert "simulated uv failure" in result.stderr
    assert "rolled back" in result.stderr
    assert snapshot(repo) == before


def test_dry_run_writes_nothing(pristine: Path) -> None:
    before = snapshot(pristine)
    result = scaffold(pristine, NAME, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"would create {NAME}: acme.{NAME}.v1.DemoSvcService on port 50053" in result.stdout
    assert snapshot(pristine) == before


def test_the_service_is_complete_and_registered(scaffolded: Path) -> None:
    service = scaffolded / "services" / NAME
    for relative in [
        "pyproject.toml",
        "Dockerfile",
        f"src/{NAME}/__init__.py",
        f"src/{NAME}/__main__.py",
        f"src/{NAME}/rules.py",
        f"src/{NAME}/service.py",
        "tests/test_rules.py",
        "tests/test_process.py",
    ]:
        assert (service / relative).is_file(), relative
    proto = (scaffolded / "proto" / "acme" / NAME / "v1" / f"{NAME}.proto").read_text()
    assert f"package acme.{NAME}.v1;" in proto
    assert "service DemoSvcService {" in proto
    assert (scaffolded / "libs/protos/src/acme" / NAME / "v1" / f"{NAME}_pb2_grpc.pyi").is_file()

    member = tomllib.loads((service / "pyproject.toml").read_text())
    assert member["project"]["dependencies"] == ["acme-protos", "acme-common"]
    assert member["project"]["scripts"] == {NAME: f"{NAME}.__main__:main"}
    assert member["tool"]["uv"]["sources"]["acme-common"] == {"workspace": True}
    root = tomllib.loads((scaffolded / "pyproject.toml").read_text())
    assert "demo-svc" in root["project"]["dependencies"]
    assert root["tool"]["uv"]["sources"]["demo-svc"] == {"workspace": True}
    assert NAME in root["tool"]["ruff"]["lint"]["isort"]["known-first-party"]
    assert root["tool"]["mypy"]["mypy_path"].endswith(f":services/{NAME}/src")
    assert 'name = "demo-svc"' in (scaffolded / "uv.lock").read_text()

    # The next free port after greeter (50051) and caller (50052), used everywhere.
    assert "default=50053" in (service / "src" / NAME / "__main__.py").read_text()
    dockerfile = (service / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.12-slim" in dockerfile
    assert "uv sync --locked --no-dev --no-editable --package demo-svc" in dockerfile
    assert "USER 10001:10001" in dockerfile
    assert 'ENTRYPOINT ["demo_svc"]' in dockerfile
    assert '"grpc-health-probe", "--addr", "127.0.0.1:50053"' in dockerfile
    compose = yaml.safe_load((scaffolded / "docker-compose.yml").read_text())
    block = compose["services"]["demo-svc"]
    assert block["build"]["dockerfile"] == f"services/{NAME}/Dockerfile"
    assert str(block["environment"]["GRPC_PORT"]) == "50053"
    assert {"greeter", "caller"} <= set(compose["services"])
    # Every other image's `uv sync --locked` needs the new member's manifest.
    for other in ("greeter", "caller"):
        text = (scaffolded / "services" / other / "Dockerfile").read_text()
        assert f"COPY services/{NAME}/pyproject.toml services/{NAME}/" in text


def test_the_generated_tests_pass(scaffolded: Path) -> None:
    output = run_ok(
        [venv_tool(scaffolded, "python"), "-m", "pytest", f"services/{NAME}", "-q"],
        scaffolded,
    )
    assert "6 passed" in output


def test_the_generated_code_passes_the_linters(scaffolded: Path) -> None:
    service = f"services/{NAME}"
    run_ok([venv_tool(scaffolded, "ruff"), "check", service], scaffolded)
    run_ok([venv_tool(scaffolded, "ruff"), "format", "--check", service], scaffolded)
    run_ok([venv_tool(scaffolded, "mypy"), service], scaffolded)
    run_ok([venv_tool(scaffolded, "buf"), "lint"], scaffolded)
    run_ok([venv_tool(scaffolded, "buf"), "format", "--diff", "--exit-code"], scaffolded)
    run_ok([venv_tool(scaffolded, "python"), "tools/codegen.py", "--check"], scaffolded)
    run_ok([venv_tool(scaffolded, "hadolint"), f"{service}/Dockerfile"], scaffolded)


def test_the_same_name_again_is_refused(scaffolded: Path) -> None:
    before = snapshot(scaffolded)
    result = scaffold(scaffolded, NAME)
    assert result.returncode == 2
    assert f"services/{NAME} already exists" in result.stderr
    assert snapshot(scaffolded) == before


def load_scaffold() -> ModuleType:
    """tools/scaffold/new_service.py as a module (it is a script, not an installed package)."""
    name = "scaffold_new_service"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / SCAFFOLD)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


COMPOSE_WITH_ANCHORS = """\
x-service: &service
  restart: unless-stopped
  healthcheck: &healthcheck
    interval: 3s
x-environment: &environment
  LOG_FORMAT: json
services:
  greeter:
    <<: *service
    image: acme/greeter:dev
"""


@pytest.mark.parametrize(
    ("before", "anchored"),
    [
        (COMPOSE_WITH_ANCHORS, True),  # services: is the last top-level key
        (COMPOSE_WITH_ANCHORS + "volumes:\n  data: {}\n", True),  # a key follows services:
        ("services:\n  greeter:\n    image: acme/greeter:dev\n", False),  # no anchors
        (None, False),  # no compose file yet
    ],
)
def test_compose_block_goes_into_whatever_compose_file_exists(
    before: str | None, anchored: bool
) -> None:
    scaffold_module = load_scaffold()
    names = scaffold_module.Names(NAME, 50060)
    after = scaffold_module.edited_compose(before, names)
    scaffold_module.check_compose(after, names, before)  # raises when a service was lost
    data = yaml.safe_load(after)
    block = data["services"]["demo-svc"]
    assert str(block["environment"]["GRPC_PORT"]) == "50060"
    assert block["healthcheck"]["test"][-1] == "127.0.0.1:50060"
    assert ("<<: *service" in after) == anchored
    if before is not None:
        assert data["services"]["greeter"]["image"] == "acme/greeter:dev"
        assert after.startswith(before.split("services:")[0])
    if before is not None and "volumes:" in before:
        assert data["volumes"] == {"data": {}}

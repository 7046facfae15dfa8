"""`nox -s new_service -- <name>` (tools/scaffold/new_service.py) on temporary copies of the repo.

A copy holds the repository's tracked and untracked-but-not-ignored files (`git ls-files`), so
the real tree is never touched. One copy gets two new services in sequence, then its own
locked virtualenv (`uv sync --locked`, fast from uv's cache); in it the new services' own tests
(a unit test, and a real process called over gRPC), the Kubernetes invariants and ruff, mypy
--strict, buf, the codegen check, hadolint and the manifest validation must pass, and no file
of the services that were there before may change. Nothing here assumes which services or
ports the repository has. Bad names, and a failure half-way, must leave a copy unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from glob import glob
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration  # runs tools (buf, kubectl, uv, ...) as processes

ROOT = Path(__file__).resolve().parents[2]
SCAFFOLD = Path("tools") / "scaffold" / "new_service.py"
# Two names no service of the repository has (it may hold billing already: the README's
# example), scaffolded in this order; the second has an underscore.
NAMES = next(
    pair
    for pair in ((f"billing{n}", f"order_history{n}") for n in ["", *range(2, 1000)])
    if not any((ROOT / "services" / name).exists() for name in pair)
)
NAME = NAMES[0]
CAMEL = "".join(part[:1].upper() + part[1:] for part in NAME.split("_"))
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


def compose_ports(root: Path) -> dict[str, int]:
    """Each compose service's gRPC port (its PORT build argument; a replica in another language,
    greeter-go, has none: it serves on its twin's port)."""
    services = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    return {
        name: int(block["build"]["args"]["PORT"])
        for name, block in services.items()
        if "PORT" in block.get("build", {}).get("args", {})
    }


@pytest.fixture(scope="module")
def before_scaffolding(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untouched copy, to compare the scaffolded one with."""
    return copy_repository(tmp_path_factory.mktemp("before"))


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy with NAMES scaffolded one after the other and its own locked virtualenv."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH (README prerequisites: pip install uv)")
    repo = copy_repository(tmp_path_factory.mktemp("scaffolded"))
    for name in NAMES:
        result = scaffold(repo, name)
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
        ("", "is not a lowercase identifier"),
        ("class", "is a Python keyword"),
        ("os", "is a standard-library module"),
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


def failing_tool(tmp_path: Path, tool: str) -> dict[str, str]:
    """An environment whose `tool` fails at once (a step of the scaffold that goes wrong)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / tool
    fake.write_text(f"#!/bin/sh\necho 'simulated {tool} failure' >&2\nexit 1\n")
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_a_failing_step_rolls_everything_back(tmp_path: Path) -> None:
    repo = copy_repository(tmp_path / "repo")
    before = snapshot(repo)
    env = failing_tool(tmp_path, "uv")
    result = scaffold(repo, NAME, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "uv add failed" in result.stderr
    assert "simulated uv failure" in result.stderr
    assert "rolled back" in result.stderr
    assert snapshot(repo) == before


def test_dry_run_writes_nothing(pristine: Path) -> None:
    before = snapshot(pristine)
    port = max(compose_ports(pristine).values()) + 1
    result = scaffold(pristine, NAME, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"would create acme.{NAME}.v1.{CAMEL}Service on port {port}" in result.stdout
    assert snapshot(pristine) == before


def test_the_longest_name_allowed_renders_and_passes_the_checks(pristine: Path) -> None:
    longest = "a_very_long_service_name_of_30"
    assert len(longest) == 30
    result = scaffold(pristine, longest, "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "reason"),
    [("yaml", "an installed module"), ("settings", "reserved"), ("a" * 31, "longer than 30")],
)
def test_names_that_would_shadow_or_overflow_are_refused(
    pristine: Path, name: str, reason: str
) -> None:
    result = scaffold(pristine, name, "--dry-run")
    assert result.returncode == 2, result.stdout + result.stderr
    assert reason in result.stderr


def test_the_services_are_complete_and_registered(
    scaffolded: Path, before_scaffolding: Path
) -> None:
    ports = compose_ports(before_scaffolding)
    after = compose_ports(scaffolded)
    for offset, name in enumerate(NAMES, start=1):
        image = name.replace("_", "-")
        service = scaffolded / "services" / name
        for relative in [
            "pyproject.toml",
            *(f"src/{name}/{module}.py" for module in ("__init__", "__main__", "settings")),
            *(f"src/{name}/{module}.py" for module in ("rules", "service")),
            "tests/test_rules.py",
            "tests/test_process.py",
        ]:
            assert (service / relative).is_file(), relative
        assert len((service / "src" / name / "__main__.py").read_text().splitlines()) < 16
        proto = (scaffolded / "proto" / "acme" / name / "v1" / f"{name}.proto").read_text()
        assert f"package acme.{name}.v1;" in proto
        # The naming rules' note is in the proto, and (last, apart) in no generated file.
        assert "RPC_RESPONSE_STANDARD_NAME" in proto
        stubs = [*(scaffolded / "libs/protos/src/acme" / name).rglob("*.py")]
        stubs += (scaffolded / "libs/protos/src/acme" / name).rglob("*.pyi")
        stubs += (scaffolded / "libs/protos-go/acme" / name).rglob("*.go")
        assert stubs
        assert not [s for s in stubs if "RPC_RESPONSE_STANDARD_NAME" in s.read_text()]
        assert (
            scaffolded / "libs/protos/src/acme" / name / "v1" / f"{name}_pb2_grpc.pyi"
        ).is_file()
        member = tomllib.loads((service / "pyproject.toml").read_text())
        assert member["project"]["scripts"] == {name: f"{name}.__main__:main"}
        root = tomllib.loads((scaffolded / "pyproject.toml").read_text())
        assert image in root["project"]["dependencies"]
        assert root["tool"]["uv"]["sources"][image] == {"workspace": True}
        assert f"services/{name}/src" in root["tool"]["mypy"]["mypy_path"]
        assert f'name = "{image}"' in (scaffolded / "uv.lock").read_text()
        # The next port after every service that was there, in compose, settings and k8s.
        port = max(ports.values()) + offset
        assert after[image] == port
        assert f"default={port}" in (service / "src" / name / "settings.py").read_text()
        camel = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
        settings_tables = (scaffolded / "docs" / "configuration.md").read_text()
        assert f"### {name}: `{camel}Settings`" in settings_tables
        compose = yaml.safe_load((scaffolded / "docker-compose.yml").read_text())["services"]
        assert compose[image]["build"]["args"] == {"SERVICE": name, "PORT": str(port)}
        assert compose[image]["build"]["dockerfile"] == "services/Dockerfile"
        base = yaml.safe_load((scaffolded / "deploy/k8s/base/kustomization.yaml").read_text())
        assert image in base["resources"]
        # One short file: what every server pod shares comes from components/server-pod.
        deployment = (scaffolded / f"deploy/k8s/base/{image}/deployment.yaml").read_text()
        assert len(deployment.splitlines()) <= 45
        for overlay in ("dev", "prod"):
            text = (scaffolded / f"deploy/k8s/overlays/{overlay}/kustomization.yaml").read_text()
            assert f"acme/{image}" in [i["name"] for i in yaml.safe_load(text)["images"]]
    assert {name: port for name, port in after.items() if name in ports} == ports
    # Growth is O(1): no file of a service that was already there changed.
    for existing in glob("services/*/**", root_dir=before_scaffolding, recursive=True):
        path = before_scaffolding / existing
        if path.is_file():
            assert (scaffolded / existing).read_bytes() == path.read_bytes(), existing
    # A Python service's image comes from services/Dockerfile (only Go services have their own).
    assert not [name for name in NAMES if (scaffolded / "services" / name / "Dockerfile").exists()]


def test_the_generated_tests_and_the_manifest_invariants_pass(scaffolded: Path) -> None:
    services = [f"services/{name}" for name in NAMES]
    output = run_ok(
        [venv_tool(scaffolded, "python"), "-m", "pytest", *services, "tests/k8s", "-q"],
        scaffolded,
    )
    assert " passed" in output
    assert "failed" not in output


def test_the_generated_code_passes_the_linters(scaffolded: Path) -> None:
    sources = ["libs", "services", "tools", "tests", "bench"]
    run_ok([venv_tool(scaffolded, "ruff"), "check", *sources], scaffolded)
    run_ok([venv_tool(scaffolded, "ruff"), "format", "--check", *sources], scaffolded)
    run_ok([venv_tool(scaffolded, "python"), "tools/mypy_path.py", "--check"], scaffolded)
    run_ok([venv_tool(scaffolded, "buf"), "lint"], scaffolded)
    run_ok([venv_tool(scaffolded, "buf"), "format", "--diff", "--exit-code"], scaffolded)
    run_ok([venv_tool(scaffolded, "python"), "tools/codegen.py", "--check"], scaffolded)
    run_ok([venv_tool(scaffolded, "python"), "tools/docs_config.py", "--check"], scaffolded)
    run_ok([venv_tool(scaffolded, "python"), "tools/validate_k8s.py"], scaffolded)
    run_ok([venv_tool(scaffolded, "hadolint"), "services/Dockerfile"], scaffolded)


def test_mypy_by_hand_checks_a_part_or_the_whole_in_either_order(scaffolded: Path) -> None:
    """`mypy` alone checks the whole repository (pyproject.toml's [tool.mypy], as `nox -s
    lint`), `mypy services/<name>` a part; on one cache (the default .mypy_cache), a part then
    the whole, the whole then a part: each passes (no import-untyped, no stale module)."""
    mypy = venv_tool(scaffolded, "mypy")
    shutil.rmtree(scaffolded / ".mypy_cache", ignore_errors=True)
    for target in [[f"services/{NAMES[0]}"], [], [f"services/{NAMES[1]}"], []]:
        output = run_ok([mypy, *target], scaffolded)
        assert "Success: no issues found" in output


def test_the_same_name_again_is_refused(scaffolded: Path) -> None:
    before = snapshot(scaffolded)
    result = scaffold(scaffolded, NAME)
    assert result.returncode == 2
    assert f"services/{NAME} already exists" in result.stderr
    assert snapshot(scaffolded) == before


# --lang go: NAME in Go, on a copy of its own (nothing Python is added, so no virtualenv).
GO_IMAGE = NAME.replace("_", "-")


def go_tool(name: str) -> str:
    """A Go tool on PATH; without it the Go cases are skipped loudly (ACME_REQUIRE_GO_TOOLS=1,
    as CI sets: they fail)."""
    found = shutil.which(name)
    if found is None:
        message = f"NOT RUN: `{name}` is not on PATH, so a scaffolded Go service cannot be built"
        if os.environ.get("ACME_REQUIRE_GO_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def go_scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy with NAME scaffolded in Go."""
    go_tool("go")
    repo = copy_repository(tmp_path_factory.mktemp("go-scaffolded"))
    result = scaffold(repo, NAME, "--lang", "go")
    assert result.returncode == 0, result.stdout + result.stderr
    return repo


def test_go_dry_run_writes_nothing(pristine: Path) -> None:
    before = snapshot(pristine)
    result = scaffold(pristine, NAME, "--lang", "go", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"  + services/{GO_IMAGE}/main.go" in result.stdout
    assert snapshot(pristine) == before


def test_go_a_failing_step_rolls_everything_back(tmp_path: Path) -> None:
    repo = copy_repository(tmp_path / "repo")
    before = snapshot(repo)
    env = failing_tool(tmp_path, "go")
    result = scaffold(repo, NAME, "--lang", "go", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "simulated go failure" in result.stderr
    assert "rolled back" in result.stderr
    assert snapshot(repo) == before


def test_go_service_is_complete_and_registered(
    go_scaffolded: Path, before_scaffolding: Path
) -> None:
    service = go_scaffolded / "services" / GO_IMAGE
    for relative in ["go.mod", "go.sum", "main.go", "Dockerfile", "README.md", "service.toml"]:
        assert (service / relative).is_file(), relative
    package = NAME.replace("_", "")
    for relative in ["rules.go", "rules_test.go", "service.go"]:
        assert (service / "internal" / package / relative).is_file(), relative
    assert (go_scaffolded / "libs/protos-go/acme" / NAME / "v1" / f"{NAME}_grpc.pb.go").is_file()
    assert f"./services/{GO_IMAGE}" in (go_scaffolded / "go.work").read_text()
    port = max(compose_ports(before_scaffolding).values()) + 1
    block = yaml.safe_load((go_scaffolded / "docker-compose.yml").read_text())["services"][GO_IMAGE]
    assert block["build"] == {
        "context": ".",
        "dockerfile": f"services/{GO_IMAGE}/Dockerfile",
        "args": {"PORT": str(port)},
    }
    workspace = tomllib.loads((go_scaffolded / "pyproject.toml").read_text())["tool"]["uv"]
    assert f"services/{GO_IMAGE}" in workspace["workspace"]["exclude"]
    uv = shutil.which("uv")
    if uv is not None:  # the workspace still resolves, and its lock is unchanged
        run_ok([uv, "lock", "--check"], go_scaffolded)
    declared = tomllib.loads((service / "service.toml").read_text())
    assert declared["language"] == "go"
    assert declared["deploy"]["port"] == port
    assert declared["implements"] == [f"acme.{NAME}.v1.{CAMEL}Service"]
    for existing in glob("services/*/**", root_dir=before_scaffolding, recursive=True):
        path = before_scaffolding / existing
        if path.is_file():
            assert (go_scaffolded / existing).read_bytes() == path.read_bytes(), existing


def test_go_service_builds_vets_and_its_own_test_passes(go_scaffolded: Path) -> None:
    go = go_tool("go")
    service = go_scaffolded / "services" / GO_IMAGE
    run_ok([go, "build", "-o", os.devnull, "."], service)
    run_ok([go, "vet", "./..."], service)
    run_ok([go, "mod", "tidy", "-diff"], service)
    output = run_ok([go, "test", "-race", "./..."], service)
    assert f"ok  \tacme.example/{GO_IMAGE}/internal/" in output
    gobin = run_ok([go, "env", "GOPATH"], service).strip() + "/bin/golangci-lint"
    if Path(gobin).is_file():  # installed by nox -s lint (tools/go/golangci-lint pins it)
        config = str(go_scaffolded / ".golangci.yml")
        run_ok([gobin, "run", f"--config={config}", "./..."], service)


def test_go_service_passes_the_repository_checks(go_scaffolded: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(go_scaffolded)}
    python = sys.executable
    run_ok([python, "tools/codegen.py", "--check"], go_scaffolded, env)
    # A Go service reads the shared ServerSettings: their table already documents it.
    run_ok([python, "tools/docs_config.py", "--check"], go_scaffolded, env)
    run_ok([python, "tools/docs_links.py"], go_scaffolded, env)
    run_ok([python, "tools/validate_k8s.py"], go_scaffolded, env)
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    run_ok([hadolint, f"services/{GO_IMAGE}/Dockerfile"], go_scaffolded)
    output = run_ok(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/k8s"], go_scaffolded, env
    )
    assert " passed" in output
    assert "failed" not in output

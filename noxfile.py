"""The single entry point for developers and CI: `nox` runs lint and every test suite.

`nox` (no arguments) = lint, tests (on the default event loop and on the other one) and the
Docker Compose end-to-end tests (loudly skipped where Docker cannot run). Every session
installs the locked workspace (uv.lock) into its own virtualenv with uv.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import time
import uuid

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "tests", "tests_other_loop", "bench_smoke", "compose"]

PYTHON = "3.11"
SOURCES = ["libs", "services", "tools", "tests", "bench", "noxfile.py", "conftest.py"]


# Dependency groups a session installs besides `dev` (pyproject.toml [dependency-groups]): the
# bench's own tools (matplotlib, py-spy, grpclib) only where bench/ runs or is type-checked.
EXTRA_GROUPS = {"bench": ["bench"], "bench_smoke": ["bench"], "lint": ["bench"]}


def install(session: nox.Session) -> None:
    """Sync the locked workspace (every library, service and the dev tools, plus the session's
    EXTRA_GROUPS) into the session; `uv sync` removes whatever else the virtualenv holds."""
    groups = [f"--group={group}" for group in EXTRA_GROUPS.get(session.name, [])]
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--quiet",
        *groups,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


@nox.session(python=PYTHON)
def codegen(session: nox.Session) -> None:
    """Regenerate libs/protos and the gateway's web page from proto/; `-- --check` only
    reports drift (non-zero exit)."""
    install(session)
    install_web_tools(session)
    session.run("python", "tools/codegen.py", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, mypy --strict, buf lint/format/breaking, codegen drift (Python and Go), the docs'
    settings tables and links, Kubernetes manifests, go mod tidy/vet/golangci-lint/test -race
    for every Go module of go.work, hadolint and `docker compose config`."""
    install(session)
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)
    # What to check and how is pyproject.toml's [tool.mypy], so `uv run mypy` does the same.
    session.run("python", "tools/mypy_path.py", "--check")  # its list of */*/src
    session.run("mypy")
    session.run("python", "tools/proto_deps.py", "--check")  # third_party/ vs pinned artifacts
    session.run("buf", "lint")
    session.run("buf", "format", "--diff", "--exit-code")
    install_web_tools(session)
    session.run("python", "tools/codegen.py", "--check")
    session.run("python", "tools/docs_config.py", "--check")  # settings tables vs the models
    session.run("python", "tools/docs_links.py")  # relative links of README.md and docs/
    session.run("python", "tools/breaking.py")  # buf breaking vs main / HEAD~1
    session.run("python", "tools/validate_k8s.py")  # schemas, code-derived invariants, kube-score
    go_checks(session)
    session.run("hadolint", *DOCKERFILES)
    compose_problem = docker_problem(engine=False)
    if compose_problem is None:
        session.run("docker", "compose", "-f", COMPOSE_FILE, "config", "--quiet", external=True)
    else:
        message = loud_skip(f"`docker compose -f {COMPOSE_FILE} config --quiet`", compose_problem)
        if os.environ.get("ACME_REQUIRE_DOCKER") == "1":
            session.error(message)
        session.warn(message)


GOLANGCI_LINT_MODULE = "tools/go/golangci-lint"  # pins golangci-lint, apart from tools/go


def go_modules() -> list[str]:
    """The Go modules of the repository: the `use` lines of go.work (so a new one is checked
    once it is listed there)."""
    listed = subprocess.run(
        ["go", "work", "edit", "-json"], capture_output=True, text=True, check=True, cwd=HERE
    )
    return sorted(use["DiskPath"] for use in json.loads(listed.stdout).get("Use") or [])


def go_checks(session: nox.Session) -> None:
    """For every module of go.work: go.mod tidy, go vet, golangci-lint (.golangci.yml, the
    version tools/go/golangci-lint pins, installed by go install) and go test -race. Without
    Go: a warning (ACME_REQUIRE_GO_TOOLS=1: an error)."""
    if shutil.which("go") is None:
        message = "`go` is not on PATH: the Go modules are not vetted, linted or tested"
        if os.environ.get("ACME_REQUIRE_GO_TOOLS") == "1":
            session.error(message)
        session.warn(message)
        return
    gopath = session.run("go", "env", "GOPATH", silent=True, external=True)
    gobin = os.path.join(str(gopath).strip().split(os.pathsep)[0], "bin")
    session.run(  # a module of its own, outside go.work: its dependencies stay apart
        "go",
        "-C",
        GOLANGCI_LINT_MODULE,
        "install",
        "tool",
        env={"GOBIN": gobin, "GOWORK": "off"},
        external=True,
    )
    config = os.path.join(HERE, ".golangci.yml")
    for module in go_modules():
        session.run("go", "-C", module, "mod", "tidy", "-diff", external=True)
        session.run("go", "-C", module, "vet", "./...", external=True)
        with session.chdir(module):
            lint = os.path.join(gobin, "golangci-lint")
            session.run(lint, "run", f"--config={config}", "./...", external=True)
            session.run("go", "test", "-race", "./...", external=True)


WEB = "services/gateway/web"  # the gateway's page: protoc-gen-es and esbuild (package-lock.json)


def install_web_tools(session: nox.Session) -> None:
    """`npm ci` for the web page's generators, when stale, so that `codegen --check`
    regenerates the page instead of comparing recorded hashes (tools/webgen.py). Without npm:
    a warning (ACME_REQUIRE_NODE=1: an error)."""
    if shutil.which("npm") is None:
        message = "npm is not on PATH: the web page's drift is checked by its recorded hashes"
        if os.environ.get("ACME_REQUIRE_NODE") == "1":
            session.error(message)
        session.warn(message)
        return
    installed = os.path.join(WEB, "node_modules", ".package-lock.json")
    lock = os.path.join(WEB, "package-lock.json")
    if not os.path.exists(installed) or os.path.getmtime(installed) < os.path.getmtime(lock):
        npm_ci = ["npm", "ci", "--prefix", WEB, "--ignore-scripts", "--no-audit", "--no-fund"]
        session.run(*npm_ci, "--loglevel=error", external=True)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit tests and integration tests over real loopback sockets."""
    install(session)
    session.run("pytest", "--ignore=tests/e2e", *session.posargs)


@nox.session(python=PYTHON)
def tests_other_loop(session: nox.Session) -> None:
    """`tests` on the event loop that is not EVENT_LOOP's default: pytest --event-loop runs
    the in-process tests on it and starts every service process with EVENT_LOOP set to it.
    Only what the loop can change: tests marked loop_independent (conftest.py says which) run
    once, in `tests`."""
    install(session)
    default = session.run(
        "python",
        "-c",
        "from acme_common import ServerSettings as S; print(S.model_fields['event_loop'].default)",
        silent=True,
    )
    other = "asyncio" if str(default).strip() == "uvloop" else "uvloop"
    session.run(
        "pytest",
        "--ignore=tests/e2e",
        f"--event-loop={other}",
        "-m",
        "not loop_independent",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """The fast loop: tests that start no process (libs/common's and each service's rules)."""
    install(session)
    session.run("pytest", "-m", "not integration", "--ignore=tests/e2e", *session.posargs)


@nox.session(python=PYTHON)
def new_service(session: nox.Session) -> None:
    """Scaffold a service: `nox -s new_service -- <name>` writes proto/acme/<name>/v1,
    services/<name> and its Kubernetes manifests, adds it to docker-compose.yml and (uv add) the
    workspace, and regenerates the stubs. `-- <name> --dry-run` checks and renders only."""
    if not session.posargs:
        session.error("usage: nox -s new_service -- <name>  (a lowercase identifier: billing)")
    install(session)
    session.run("python", "tools/scaffold/new_service.py", *session.posargs)


@nox.session(python=PYTHON)
def breaking(session: nox.Session) -> None:
    """buf breaking: proto/ against main (its merge base), or HEAD~1 on main; loud skip without
    history (ACME_REQUIRE_BREAKING=1: fail instead). Also run by `lint`."""
    install(session)
    session.run("python", "tools/breaking.py", *session.posargs)


@nox.session(python=PYTHON)
def up(session: nox.Session) -> None:
    """Run every service under services/ and the HTTP edge as local processes (no Docker),
    wired and exposed, make a demo call, wait for Ctrl-C. `-- --help`: ports, --with
    greeter-go, --expose; per-service settings <SERVICE>__<VARIABLE> (docs/running.md)."""
    install(session)
    try:
        # interrupt_timeout=None: after Ctrl-C, nox waits for the services' drain.
        session.run("acmectl", "stack", *session.posargs, interrupt_timeout=None)
    except nox.command.CommandFailed as failed:
        if failed.return_code == 2:  # refused, naming the variable: nox keeps acmectl's code
            raise SystemExit(2) from None
        raise


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks (bench/README.md): each server in its own process under h2load / a Python
    client; one table in .bench/results.{json,md}. `-- --quick`; `-- --help` for options."""
    install(session)
    session.run("python", "-m", "bench", *session.posargs)


@nox.session(python=PYTHON)
def bench_smoke(session: nox.Session) -> None:
    """The bench harness still runs end to end (bench/tests: a short run of the Python rows);
    it needs the bench group, which `tests` does not install."""
    install(session)
    session.run("pytest", "bench/tests", *session.posargs)


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """The production soak (tests/reliability/soak.py): caller -> two greeters for
    `-- --minutes N` (default 10) of mixed load and idle periods, one greeter restarted under
    load; RSS, GOAWAYs, error lines and lost calls in .soak/soak.md."""
    install(session)
    session.run("python", "-m", "tests.reliability.soak", *session.posargs)


# ------------------------------------------------------------------------------ Docker Compose
HERE = os.path.dirname(os.path.abspath(__file__))
# One recipe for every Python service (SERVICE build arg); a Go service has its own.
DOCKERFILES = ["services/Dockerfile", *sorted(glob.glob("services/*/Dockerfile", root_dir=HERE))]
COMPOSE_FILE = "docker-compose.yml"
IMAGES = "acme/*:dev"  # what docker-compose.yml builds
ANY_EXIT = range(256)  # diagnostics that must not mask the real failure


def docker_problem(*, engine: bool) -> str | None:
    """Why `docker compose` (and, if engine, a running Docker engine) cannot be used, or None."""
    if shutil.which("docker") is None:
        return "the `docker` command is not on PATH"
    checks = [(["docker", "compose", "version"], "the Docker Compose v2 plugin is missing")]
    if engine:
        checks.append((["docker", "info"], "the Docker engine is not reachable"))
    for command, problem in checks:
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{problem} (`{' '.join(command)}`: {error})"
        if result.returncode != 0:
            said = (result.stderr.strip().splitlines() or ["no output"])[0]
            return f"{problem} (`{' '.join(command)}` exited {result.returncode}: {said})"
    return None


def loud_skip(what: str, problem: str) -> str:
    """A banner that nobody scrolls past: what was not run and why."""
    bar = "!" * 78
    return "\n".join(
        [
            "",
            bar,
            f"!!! NOT RUN: {what}",
            f"!!! because {problem}.",
            "!!! Needs Docker Engine >= 20.10 with the Compose v2 plugin; on a Debian CI",
            "!!! machine `bash .ci/docker-setup.sh` installs and starts both.",
            "!!! ACME_REQUIRE_DOCKER=1 (set by .ci/run) makes this an error, not a skip.",
            bar,
        ]
    )


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@nox.session(python=PYTHON)
def compose(session: nox.Session) -> None:
    """Build the images, start docker-compose.yml under a unique project name on free host
    ports (`up --wait`: until every container is healthy), run tests/e2e against it (the
    documented compose commands last: they end with `docker compose down`), and always
    `down -v`. Prints the image sizes and the seconds from `up` to all-healthy.
    Skipped, loudly, without Docker (ACME_REQUIRE_DOCKER=1: fail instead)."""
    problem = docker_problem(engine=True)
    if problem is not None:
        message = loud_skip("the Docker Compose end-to-end tests (`nox -s compose`)", problem)
        if os.environ.get("ACME_REQUIRE_DOCKER") == "1":
            session.error(message)
        session.skip(message)
    install(session)

    project = f"acme-e2e-{uuid.uuid4().hex[:8]}"
    port, gateway_port, greeter_port = free_port(), free_port(), free_port()
    env = {
        "CALLER_PORT": str(port),
        "GATEWAY_PUBLISHED_PORT": str(gateway_port),
        "GREETER_PUBLISHED_PORT": str(greeter_port),
    }
    docker_compose = ["docker", "compose", "-f", COMPOSE_FILE, "-p", project]
    passed = False
    try:
        session.run(*docker_compose, "build", env=env, external=True)
        session.run("docker", "image", "ls", f"--filter=reference={IMAGES}", external=True)
        started = time.monotonic()
        session.run(
            *docker_compose, "up", "--wait", "--wait-timeout", "120", env=env, external=True
        )
        session.log(
            f"docker compose up -> all containers healthy in {time.monotonic() - started:.1f} s"
        )
        session.run(
            "pytest",
            "tests/e2e",
            *session.posargs,
            env={
                "ACME_E2E_PROJECT": project,
                "ACME_E2E_CALLER_ADDRESS": f"127.0.0.1:{port}",
                "ACME_E2E_GATEWAY_ADDRESS": f"127.0.0.1:{gateway_port}",
                "ACME_E2E_GREETER_ADDRESS": f"127.0.0.1:{greeter_port}",
            },
        )
        passed = True
    finally:
        if not passed:
            session.run(
                *docker_compose, "ps", "--all", env=env, external=True, success_codes=ANY_EXIT
            )
            session.run(
                *docker_compose,
                "logs",
                "--no-color",
                "--tail=60",
                env=env,
                external=True,
                success_codes=ANY_EXIT,
            )
        session.run(
            *docker_compose, "down", "--volumes", "--remove-orphans", env=env, external=True
        )

"""The single entry point for developers and CI: `nox` runs lint and every test suite.

Every session installs the locked workspace (uv.lock) into its own virtualenv with uv.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "tests"]

PYTHON = "3.11"
SOURCES = ["libs", "services", "tools", "tests", "noxfile.py"]
TYPED = ["libs/common", "services", "tools", "tests"]


def install(session: nox.Session) -> None:
    """Sync the locked workspace (every library, service and the dev tools) into the session."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--quiet",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


@nox.session(python=PYTHON)
def codegen(session: nox.Session) -> None:
    """Regenerate libs/protos from proto/; `-- --check` only reports drift (non-zero exit)."""
    install(session)
    session.run("python", "tools/codegen.py", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, mypy --strict, buf lint/format and the codegen drift check."""
    install(session)
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)
    session.run("mypy", *TYPED)
    session.run("buf", "lint")
    session.run("buf", "format", "--diff", "--exit-code")
    session.run("python", "tools/codegen.py", "--check")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit tests and integration tests over real loopback sockets."""
    install(session)
    session.run("pytest", "--ignore=tests/e2e", *session.posargs)


@nox.session(python=PYTHON)
def up(session: nox.Session) -> None:
    """Run greeter and caller as local processes (no Docker), make a demo call, wait for Ctrl-C."""
    install(session)
    session.run("acmectl", "stack", *session.posargs)

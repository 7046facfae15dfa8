"""Contract safety: tools/breaking.py (`nox -s breaking`, part of `nox -s lint`).

Each test builds a throwaway git repository holding copies of proto/ and buf.yaml, changes a
contract the way a developer would, and runs the check there: removing a field, changing a field
number and renaming an RPC are reported (exit 1, buf naming the element); adding a field is
accepted. The baseline choice is covered too: a branch is compared with where it left main, main
with HEAD~1, and a clone without that history (one commit, shallow) is skipped loudly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs tools (buf, kubectl, uv, ...) as processes

ROOT = Path(__file__).resolve().parents[2]
BREAKING = ROOT / "tools" / "breaking.py"
GREETER = Path("proto/acme/greeter/v1/greeter.proto")

# A reproducible git: no user or system configuration, a fixed identity.
GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}
CHANGES = {
    "remove a field": ("  string served_by = 2;\n", ""),
    "change a field number": ("string served_by = 2;", "string served_by = 3;"),
    "rename an RPC": ("rpc SayHello(SayHelloRequest)", "rpc SayHi(SayHelloRequest)"),
}
REPORTED = {
    "remove a field": 'field "2" with name "served_by" on message "SayHelloResponse" was deleted',
    "change a field number": 'field "2" with name "served_by" on message "SayHelloResponse"',
    "rename an RPC": 'RPC "SayHello" on service "GreeterService" was deleted',
}
ADD_FIELD = (
    "  string served_by = 2;\n",
    "  string served_by = 2;\n  // A new field: compatible.\n  string region = 3;\n",
)


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--no-gpg-sign", "--message", message)


def edit(repo: Path, old: str, new: str) -> None:
    path = repo / GREETER
    text = path.read_text()
    assert old in text, f"{old!r} not in {GREETER}"
    path.write_text(text.replace(old, new, 1))


def check(repo: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BREAKING)],
        cwd=repo,
        env={**GIT_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository on main with one commit: buf.yaml and a copy of proto/ and of the
    third-party protos it imports."""
    repo = tmp_path / "contracts"
    repo.mkdir()
    shutil.copy(ROOT / "buf.yaml", repo / "buf.yaml")
    shutil.copytree(ROOT / "proto", repo / "proto")
    shutil.copytree(ROOT / "third_party", repo / "third_party")
    git(repo, "init", "--quiet", "--initial-branch=main")
    commit_all(repo, "contracts")
    return repo


@pytest.fixture
def branch(repo: Path) -> Path:
    """repo with a second commit on main and a feature branch checked out."""
    (repo / "proto" / "README").write_text("second commit, so main has history\n")
    commit_all(repo, "second")
    git(repo, "switch", "--quiet", "--create", "feature")
    return repo


@pytest.mark.parametrize("change", list(CHANGES))
def test_breaking_changes_on_a_branch_are_reported(branch: Path, change: str) -> None:
    edit(branch, *CHANGES[change])
    result = check(branch)
    assert result.returncode == 1, result.stdout + result.stderr
    assert REPORTED[change] in result.stdout + result.stderr
    assert "BREAKING CHANGES in proto/" in result.stderr
    assert "where it left main" in result.stdout


def test_adding_a_field_is_accepted(branch: Path) -> None:
    edit(branch, *ADD_FIELD)
    commit_all(branch, "add a field")  # committed or not, the work tree is what is checked
    result = check(branch)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no breaking change in proto/" in result.stdout


def test_a_branch_is_compared_with_where_it_left_main(branch: Path) -> None:
    """A field added on main after the branch started is not a deletion by the branch."""
    git(branch, "switch", "--quiet", "main")
    edit(branch, *ADD_FIELD)
    commit_all(branch, "main moves on")
    git(branch, "switch", "--quiet", "feature")
    result = check(branch)
    assert result.returncode == 0, result.stdout + result.stderr


def test_on_main_the_last_commit_is_checked_against_the_previous_one(repo: Path) -> None:
    edit(repo, *CHANGES["rename an RPC"])
    commit_all(repo, "rename an RPC on main")
    result = check(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "previous commit (HEAD~1)" in result.stdout
    assert REPORTED["rename an RPC"] in result.stdout + result.stderr


def test_a_single_commit_is_skipped_loudly(repo: Path) -> None:
    result = check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NOT RUN: buf breaking" in result.stderr
    assert "HEAD has no parent commit" in result.stderr
    required = check(repo, ACME_REQUIRE_BREAKING="1")
    assert required.returncode == 1
    assert "NOT RUN: buf breaking" in required.stderr


def test_shallow_clones_of_main(repo: Path, tmp_path: Path) -> None:
    edit(repo, *CHANGES["remove a field"])
    commit_all(repo, "remove a field on main")
    one = tmp_path / "depth1"
    git(tmp_path, "clone", "--quiet", "--depth=1", repo.as_uri(), str(one))
    skipped = check(one)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "shallow clone" in skipped.stderr
    two = tmp_path / "depth2"
    git(tmp_path, "clone", "--quiet", "--depth=2", repo.as_uri(), str(two))
    result = check(two)
    assert result.returncode == 1, result.stdout + result.stderr
    assert REPORTED["remove a field"] in result.stdout + result.stderr


def test_a_detached_head_at_mains_tip_is_checked_against_the_previous_commit(repo: Path) -> None:
    """CI checks out main's tip, possibly detached: the last commit is what is checked."""
    edit(repo, *CHANGES["change a field number"])
    commit_all(repo, "renumber a field on main")
    git(repo, "checkout", "--quiet", "--detach", "main")
    result = check(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "previous commit (HEAD~1)" in result.stdout

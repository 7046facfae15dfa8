"""`buf breaking` for proto/: do the contracts in the work tree break what was there before?

Usage: python tools/breaking.py [--main-branch main] [--buf PATH]
Run from anywhere inside the repository (nox -s breaking, part of nox -s lint).

"Before" is, as a buf git input (`buf breaking --against '.git#...'`):

* on any branch other than main: the commit where it left main (`git merge-base HEAD main`;
  `origin/main` when there is no local main), so changes that landed on main since then are
  not mistaken for deletions made on the branch (a new branch without commits: main itself);
* on main itself (or a detached HEAD at main's tip, as in CI's fresh clone of main): the
  previous commit, `HEAD~1`; with no main branch at all, `HEAD~1` too;
* no history to compare with (a single commit, or a shallow clone that lacks HEAD's parent):
  nothing is run, a loud banner says so and the exit code is 0, unless
  ACME_REQUIRE_BREAKING=1 (then 1). `git fetch --deepen=1` (or `--unshallow`) fixes a shallow
  clone.

Exit codes: 0 compatible (or skipped), 1 breaking changes (buf names every one), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

REQUIRE_VARIABLE = "ACME_REQUIRE_BREAKING"
BUF_FOUND_PROBLEMS = 100  # buf's exit code when it reports file annotations


@dataclass(frozen=True)
class Baseline:
    """What to compare with: a buf input (`.git#ref=...`) and a sentence saying why."""

    against: str
    reason: str


def git(*args: str, cwd: Path) -> str | None:
    """stdout of `git ARGS` (stripped), or None when git fails."""
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", *args],  # noqa: S607 - git from PATH, like a developer's shell
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def commit_of(ref: str, cwd: Path) -> str | None:
    """The full hash of the commit ref names, or None when it is not in this clone."""
    return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=cwd)


def previous_commit(cwd: Path, why: str) -> Baseline | str:
    """HEAD~1 as the baseline, or why it cannot be (single commit, shallow clone)."""
    if commit_of("HEAD~1", cwd) is None:
        shallow = git("rev-parse", "--is-shallow-repository", cwd=cwd) == "true"
        if shallow:
            return (
                "this is a shallow clone without HEAD's parent commit "
                "(`git fetch --deepen=1` or `git fetch --unshallow` fixes that)"
            )
        return "HEAD has no parent commit: there is no earlier version of the contracts"
    return Baseline(".git#ref=HEAD~1", f"{why}: comparing with the previous commit (HEAD~1)")


def choose_baseline(cwd: Path, main_branch: str = "main") -> Baseline | str:
    """The buf input to compare the work tree with, or why there is none (a sentence)."""
    head = commit_of("HEAD", cwd)
    if head is None:
        return "there is no commit yet (or this is not a git work tree)"
    branch = git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=cwd)
    if branch == main_branch:
        return previous_commit(cwd, f"on {main_branch}")
    main_ref = next(
        (
            ref
            for ref in (f"refs/heads/{main_branch}", f"refs/remotes/origin/{main_branch}")
            if commit_of(ref, cwd) is not None
        ),
        None,
    )
    if main_ref is None:
        return previous_commit(cwd, f"no `{main_branch}` branch in this clone")
    if branch is None and commit_of(main_ref, cwd) == head:  # CI: main's tip, detached
        return previous_commit(cwd, f"a detached HEAD at {main_branch}'s tip")
    base = git("merge-base", "HEAD", main_ref, cwd=cwd)
    if base is None:
        return previous_commit(cwd, f"HEAD shares no history with {main_branch}")
    short_ref = main_ref.removeprefix("refs/heads/").removeprefix("refs/remotes/")
    return Baseline(
        f".git#ref={base}",
        f"on {branch or 'a detached HEAD'}: comparing with {base[:12]}, "
        f"where it left {short_ref} (git merge-base HEAD {short_ref})",
    )


def find_buf(explicit: str | None) -> str | None:
    """buf given on the command line, else the one beside this Python (uv's buf-bin), else PATH."""
    if explicit:
        return explicit
    beside = Path(sysconfig.get_path("scripts")) / "buf"
    if beside.is_file():
        return str(beside)
    return shutil.which("buf")


def banner(lines: list[str]) -> str:
    bar = "!" * 78
    return "\n".join(["", bar, *(f"!!! {line}" for line in lines), bar, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--main-branch", default="main", help="the trunk branch (default: main)")
    parser.add_argument("--buf", help="the buf executable (default: the environment's)")
    args = parser.parse_args(argv)

    root_text = git("rev-parse", "--show-toplevel", cwd=Path.cwd())
    if root_text is None:
        print("breaking: not inside a git work tree", file=sys.stderr)
        return 2
    root = Path(root_text)
    buf = find_buf(args.buf)
    if buf is None:
        print("breaking: buf not found (install the dev dependencies: `uv sync`)", file=sys.stderr)
        return 2

    baseline = choose_baseline(root, args.main_branch)
    if isinstance(baseline, str):
        required = os.environ.get(REQUIRE_VARIABLE) == "1"
        print(
            banner(
                [
                    "NOT RUN: buf breaking (contract compatibility of proto/)",
                    f"because {baseline}.",
                    f"{'FAILING' if required else 'Skipping'}: {REQUIRE_VARIABLE}=1 makes "
                    "this an error instead of a skip.",
                ]
            ),
            file=sys.stderr,
        )
        return 1 if required else 0

    print(f"breaking: {baseline.reason}")
    # Only the proto/ module of the workspace: third_party/ holds other people's protos
    # (buf.yaml), and older commits may not have that module at all.
    command = [buf, "breaking", "proto", "--against", f"{baseline.against},subdir=proto"]
    print(f"breaking: {' '.join(command)}")
    result = subprocess.run(command, cwd=root, check=False)  # noqa: S603 - fixed argv
    if result.returncode == 0:
        print("breaking: no breaking change in proto/")
        return 0
    if result.returncode != BUF_FOUND_PROBLEMS:
        print(f"breaking: buf failed (exit {result.returncode}; see above)", file=sys.stderr)
        return 1
    print(
        banner(
            [
                "BREAKING CHANGES in proto/ (buf listed each one above).",
                "Clients built from the old contract would break. Instead: add new fields",
                "(new numbers), deprecate old ones ([deprecated = true]) and `reserved` removed",
                "numbers and names; for a real redesign add a new version package",
                "(acme.<service>.v2) next to v1.",
            ]
        ),
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""The fenced code blocks of the repository's Markdown pages, each classified by its info string
(the words after the opening fence), so that every command a reader is meant to paste is run
by a test against the stack it describes (docs/testing.md, "Documented commands").

    ```text                 output, a tree, a diagram: not commands
    ```sh local compose     commands run against the local stack (`nox -s tests`) and the
                            Docker Compose stack (`nox -s compose`), in order, as written
    ```sh long-running      commands not run, because of what the word says (ELSEWHERE)

Code in one of the repository's languages (`yaml`, `python`, ... NOT_COMMANDS) is not run
either. A block the rules cannot place is refused with its page and line (read_page raises
FenceError): no info string, another language, a shell fence without a context, an unknown
context word, an indented code block (it cannot carry a marker). So a command added to the
docs is run, or says why not; it cannot go unnoticed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

# Contexts a test runs a fence in: the stack of `nox -s up` (acmectl stack), and compose's.
RUN = frozenset({"local", "compose"})
# Contexts no test provides, and what each means: the marker is the docs saying so.
ELSEWHERE = {
    "long-running": "runs for minutes or until Ctrl-C (nox itself, a nox session, a server)",
    "kubernetes": "needs a Kubernetes cluster or an image registry",
}
SHELLS = frozenset({"sh", "shell", "bash"})  # languages whose fences hold commands
# Languages whose fences hold no command (output, diagrams; the repository's file types).
# Any other is refused: `console`, `zsh`, ... could hide commands.
NOT_COMMANDS = frozenset({"text", "yaml", "toml", "json", "python", "go", "proto"})
SKIPPED_DIRECTORIES = frozenset({"node_modules"})  # besides hidden ones (.venv, .nox, .git)
# A full-line comment right after a command that documents an HTTP error answer:
# `# HTTP 400 {...}`. Without one, a curl answer of 400 or more fails the command.
DOCUMENTED_STATUS = re.compile(r"#\s*HTTP\s+(\d{3})\b")


class FenceError(ValueError):
    """A fenced (or indented) code block that the marker rules cannot classify."""


@dataclass(frozen=True)
class Command:
    """One command of a fence as written (continuation lines joined by their backslash and
    newline, for bash to read as one), and the HTTP status its documentation shows, if any."""

    line: int  # 1-based line of the page where it starts
    text: str
    documented_status: int | None = None


@dataclass(frozen=True)
class Fence:
    """A shell fence of a page: where it is, where it runs, and its commands."""

    page: str  # path relative to the repository root, with `/`
    line: int  # 1-based line of the opening fence
    contexts: frozenset[str]
    commands: tuple[Command, ...]

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def markdown_pages(root: Path) -> list[Path]:
    """Every `*.md` file of the tree under root, outside hidden directories and node_modules,
    sorted: README.md, docs/, each service's and tool's README, and any page added later."""
    pages: list[Path] = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [
            name
            for name in subdirectories
            if not name.startswith(".") and name not in SKIPPED_DIRECTORIES
        ]
        pages += [Path(directory) / name for name in files if name.endswith(".md")]
    return sorted(pages)


def commands_of(content: str, first_line: int) -> tuple[Command, ...]:
    """The commands of a fence's content whose first line is page line first_line: blank lines
    and full-line comments (documentation, shown output) are not commands; a line ending in a
    backslash continues on the next."""
    commands: list[Command] = []
    pending: list[str] = []
    start = first_line
    for number, line in enumerate(content.splitlines(), start=first_line):
        stripped = line.strip()
        if not pending:
            if not stripped:
                continue
            if stripped.startswith("#"):
                status = DOCUMENTED_STATUS.match(stripped)
                if status is not None and commands and commands[-1].documented_status is None:
                    last = commands[-1]
                    commands[-1] = Command(last.line, last.text, int(status.group(1)))
                continue
            start = number
        pending.append(line)
        if not line.rstrip().endswith("\\"):
            commands.append(Command(start, "\n".join(pending)))
            pending = []
    if pending:
        raise FenceError(f"line {start}: the last command ends with a line continuation")
    return tuple(commands)


def read_page(page: Path, root: Path) -> list[Fence]:
    """The shell fences of page, each with its contexts; FenceError names the first block the
    rules cannot classify (page:line and why)."""
    relative = page.relative_to(root).as_posix()
    fences: list[Fence] = []
    for token in MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8")):
        if token.type not in ("fence", "code_block") or token.map is None:
            continue
        line = token.map[0] + 1
        where = f"{relative}:{line}"
        if token.type == "code_block":
            raise FenceError(
                f"{where}: an indented code block cannot carry a marker: use a fence "
                "(```text, or ```sh with where its commands run)"
            )
        words = token.info.split()
        if not words:
            raise FenceError(
                f"{where}: a fence without an info string: say what it is (```text for "
                "output or a diagram, ```sh <context> for commands: docs/testing.md)"
            )
        language, contexts = words[0], frozenset(words[1:])
        if language in NOT_COMMANDS:
            continue
        if language not in SHELLS:
            raise FenceError(
                f"{where}: unknown language {language!r}: ```sh <context> for commands, or "
                f"one of {', '.join(sorted(NOT_COMMANDS))} (NOT_COMMANDS, tests/docs/fences.py)"
            )
        unknown = sorted(contexts - RUN - ELSEWHERE.keys())
        if unknown or not contexts:
            known = ", ".join(sorted(RUN | ELSEWHERE.keys()))
            said = f"unknown context {', '.join(unknown)}" if unknown else "no context"
            raise FenceError(f"{where}: shell fence with {said}; one or more of: {known}")
        if contexts & RUN and contexts & ELSEWHERE.keys():
            raise FenceError(f"{where}: a fence is either run ({', '.join(sorted(RUN))}) or not")
        try:
            commands = commands_of(token.content, line + 1)
        except FenceError as error:
            raise FenceError(f"{relative}: {error}") from None
        fences.append(Fence(relative, line, contexts, commands))
    return fences


def documented_fences(root: Path) -> Iterator[Fence | FenceError]:
    """The shell fences of every page under root, and in their place a FenceError for each
    page that has a block the rules refuse (so one bad page does not hide the others)."""
    for page in markdown_pages(root):
        try:
            yield from read_page(page, root)
        except FenceError as error:
            yield error


def fences_to_run(root: Path, context: str) -> list[Fence]:
    """The fences that run in context (one of RUN), in page order."""
    return [
        fence
        for fence in documented_fences(root)
        if isinstance(fence, Fence) and context in fence.contexts
    ]

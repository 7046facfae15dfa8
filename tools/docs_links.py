"""Check that every relative link of the documentation leads somewhere.

Usage: python tools/docs_links.py [FILE.md ...]

Reads README.md, docs/*.md, bench/README.md and deploy/k8s/README.md (or the files given): each
Markdown link or image whose target is not a URL must name a file or directory of the
repository, relative to the page, and a `#fragment` must be the anchor of a heading of the page
it names (GitHub's rule: lower case, punctuation dropped, spaces to hyphens). Code blocks and
code spans are not read. Exit code 1, with each broken link named, when any is broken (`nox -s
lint` runs it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", "docs/*.md", "bench/README.md", "deploy/k8s/README.md"]
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+).*?\1")
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose(text: str) -> str:
    """The page with fenced code blocks and code spans blanked (line numbers kept)."""
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else CODE_SPAN.sub("", line))
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            anchor = slug(match.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    problems: list[str] = []
    text = prose(page.read_text(encoding="utf-8"))
    for match in LINK.finditer(text):  # link texts may span lines
        target = match.group(1)
        if EXTERNAL.match(target):
            continue
        number = text.count("\n", 0, match.start()) + 1
        path_part, _, fragment = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(ROOT)}:{number}: ({target})"
        if not destination.exists():
            problems.append(f"{where}: no such file")
        elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            problems.append(f"{where}: no heading with anchor #{fragment}")
        elif ROOT not in destination.parents and destination != ROOT:
            problems.append(f"{where}: outside the repository")
    return problems


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    pages = [Path(name).resolve() for name in names] or sorted(
        {path for pattern in PAGES for path in ROOT.glob(pattern)}
    )
    problems = [problem for page in pages for problem in broken_links(page)]
    for problem in problems:
        print(f"docs_links: {problem}", file=sys.stderr)
    if problems:
        print(f"docs_links check FAILED: {len(problems)} broken link(s)", file=sys.stderr)
        return 1
    print(f"docs_links check passed: every relative link of {len(pages)} pages resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write `mypy_path` of pyproject.toml's [tool.mypy]: every workspace member's src/ (`*/*/src`).

Usage: python tools/mypy_path.py [--check]

mypy names a file it checks after the nearest of its package bases (explicit_package_bases:
`mypy_path` and the working directory), so `services/greeter/src/greeter/rules.py` is
`greeter.rules` only while services/greeter/src is listed; otherwise it is
`services.greeter.src.greeter.rules` beside the installed `greeter.rules`, and the cache of one
run misleads the next. mypy's configuration has no glob for this list, so this script keeps it:
`nox -s new_service` runs it, and with --check (`nox -s lint`) nothing is written and the exit
code is 1 when the list differs from the directories, each of which is named.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
# The one `mypy_path = [...]` array (strings without brackets), wherever its lines break.
SETTING = re.compile(r"(?m)^mypy_path = \[[^\]]*\]")


def source_roots(root: Path) -> list[str]:
    """Every `*/*/src` directory below root, relative to it, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/*/src") if p.is_dir())


def configured(text: str) -> list[str]:
    """The mypy_path of a pyproject.toml's text ([] when it has none)."""
    paths: list[str] = tomllib.loads(text).get("tool", {}).get("mypy", {}).get("mypy_path", [])
    return paths


def with_paths(text: str, paths: list[str]) -> str:
    """text with its `mypy_path = [...]` holding paths, one a line; ValueError without one."""
    lines = "".join(f'    "{path}",\n' for path in paths)
    new, count = SETTING.subn(lambda _: f"mypy_path = [\n{lines}]", text, count=1)
    if count == 0:
        raise ValueError("pyproject.toml has no `mypy_path = [...]` in [tool.mypy]")
    if configured(new) != paths:
        raise ValueError("the `mypy_path = [...]` found is not [tool.mypy]'s")
    return new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the list is out of date")
    args = parser.parse_args(argv)
    text = PYPROJECT.read_text(encoding="utf-8")
    wanted, current = source_roots(ROOT), configured(text)
    if args.check:
        if current != wanted:
            missing = [p for p in wanted if p not in current]
            extra = [p for p in current if p not in wanted]
            print(
                "mypy_path check FAILED: pyproject.toml [tool.mypy] mypy_path should list every"
                f" */*/src; missing: {missing or 'none'}, not a directory: {extra or 'none'}"
                " (or out of order); run `python tools/mypy_path.py` and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"mypy_path check passed: [tool.mypy] lists all {len(wanted)} */*/src directories")
        return 0
    if current != wanted:
        try:
            PYPROJECT.write_text(with_paths(text, wanted), encoding="utf-8")
        except ValueError as error:
            print(f"mypy_path: {error}", file=sys.stderr)
            return 1
        print("mypy_path: wrote [tool.mypy] mypy_path of pyproject.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main())

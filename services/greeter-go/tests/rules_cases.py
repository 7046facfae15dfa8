"""The rule cases both greeters must agree on, answered by the Python rules (greeter.rules):
`python tests/rules_cases.py` rewrites internal/greeter/testdata/rules_cases.json, which the
Go tests (internal/greeter/rules_test.go) check the Go rules against; test_rules_cases.py
fails when the file no longer says what the Python rules answer."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from acme_common import InvalidArgument
from greeter import rules

CASES_FILE = Path(__file__).resolve().parent.parent / "internal/greeter/testdata/rules_cases.json"

NAMES = [
    "Ada",
    "  Ada  ",
    "",
    "   ",
    "\t\n",
    "\x1c Ada \x1f",
    "\u3000Ada\u00a0",
    "Ada\x00",
    "Ada\u200b",
    "A" * 100,
    "A" * 101,
    " " + "é" * 100 + " ",
    "😀" * 101,
    "Zoë",
    "Ada\nLovelace",
    "Ada Lovelace",
    "{name}",
    "%s",
    "\u00adAda",
    "x\u2028y",
]
LANGUAGES = [
    "",
    "en",
    "FR",
    " de ",
    "xx",
    "İ",
    "ΑΣ",
    "x" * 40,
    "'",
    "\"'",
    "\\",
    "\x00",
    "\u00a0x\u00a0",
    "😀",
    "pt-BR",
    "\u0130stanbul",
]
LANGUAGE_LISTS: list[list[str]] = [
    [],
    ["fr", "EN"],
    ["en", "xx", "yy"],
    ["de"] * 3,
    ["de"] * 1001,
    ["x" * 300],
]
NAME_STREAMS: list[list[str]] = [[], ["Ada"], ["Ada", "Alan"], ["A", "B", "C"]]


def outcome(rule: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """What rule(*args) answers: {"ok": result} or the InvalidArgument's message and
    violations."""
    try:
        return {"ok": rule(*args)}
    except InvalidArgument as error:
        return {
            "message": error.message,
            "violations": [[v.field, v.description] for v in error.violations],
        }


def cases() -> dict[str, Any]:
    return {
        "greet": [
            {"name": name, "language": language, **outcome(rules.greet, name, language)}
            for name in NAMES[:6]
            for language in LANGUAGES
        ]
        + [{"name": name, "language": "", **outcome(rules.greet, name, "")} for name in NAMES[6:]],
        "greet_in_languages": [
            {
                "name": name,
                "languages": languages,
                **outcome(rules.greet_in_languages, name, languages),
            }
            for name in ("Ada", "")
            for languages in LANGUAGE_LISTS
        ],
        "greet_everyone": [
            {"names": names, **outcome(rules.greet_everyone, names)} for names in NAME_STREAMS
        ],
    }


def render() -> str:
    """The cases as JSON, one case per line (reviewable diffs)."""
    groups = []
    for group, items in cases().items():
        rows = ",\n".join(f"  {json.dumps(item, ensure_ascii=False)}" for item in items)
        groups.append(f"{json.dumps(group)}: [\n{rows}\n ]")
    return "{\n " + ",\n ".join(groups) + "\n}\n"


if __name__ == "__main__":
    CASES_FILE.write_text(render(), encoding="utf-8")
    sys.exit(0)

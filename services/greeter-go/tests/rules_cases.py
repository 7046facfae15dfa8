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

# Inputs the contract accepts (proto/acme/greeter/v1/greeter.proto; rules_test.go checks
# that it does): the rules see no other, libs/common and libs/common-go refuse the rest.
NAMES = [
    "Ada",
    "  Ada  ",
    " \t\n\v\f\rAda\r\f\v\n\t ",
    "\u3000Ada\u00a0",  # not the contract's whitespace: part of the name
    "Ada\u200b",
    "A" * 100,
    " " + "é" * 98 + " ",
    "😀" * 100,
    "Zoë",
    "Ada\u00a0Lovelace",
    "Ada Lovelace",
    "{name}",
    "%s",
    "\u00adAda",
    "x\u2028y",
]
LANGUAGES = ["", "  ", "en", "FR", " de ", "\tEs\n", "pT", "\v\fiT\r"]
LANGUAGE_LISTS: list[list[str]] = [
    [],
    ["fr", "EN"],
    [" it ", ""],
    ["de"] * 3,
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
            for name in NAMES[:4]
            for language in LANGUAGES
        ]
        + [{"name": name, "language": "", **outcome(rules.greet, name, "")} for name in NAMES[4:]],
        "greet_in_languages": [
            {
                "name": name,
                "languages": languages,
                **outcome(rules.greet_in_languages, name, languages),
            }
            for name in ("Ada", " Alan\t")
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

"""The Go greeter's rule cases (internal/greeter/testdata/rules_cases.json, checked against
the Go rules by `go test`) are what the Python rules answer: the two greeters' rules agree."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def _cases_module() -> ModuleType:
    path = Path(__file__).resolve().parent / "rules_cases.py"
    spec = importlib.util.spec_from_file_location("greeter_go_rules_cases", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_go_rule_cases_are_the_python_rules_answers() -> None:
    cases = _cases_module()
    committed = cases.CASES_FILE.read_text(encoding="utf-8")
    assert committed == cases.render(), (
        "the Python rules answer differently: run `python services/greeter-go/tests/"
        "rules_cases.py`, then `go test ./...` in services/greeter-go"
    )

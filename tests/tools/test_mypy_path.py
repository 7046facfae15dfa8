"""tools/mypy_path.py keeps [tool.mypy] mypy_path equal to the `*/*/src` directories: --check
fails naming what is missing or gone, a run writes the list (nothing else of the file changes)."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from tools import mypy_path

PYPROJECT = """[project]
name = "probe"

[tool.mypy]
strict = true
# kept
mypy_path = [
    "libs/a/src",
]
files = ["services"]
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository of its own, which the script works on: a pyproject.toml and three
    members' src/ (and a directory without one, as a Go service is)."""
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    for member in ("libs/a", "services/b", "tools/c"):
        (tmp_path / member / "src").mkdir(parents=True)
    (tmp_path / "services" / "go-only").mkdir()
    monkeypatch.setattr(mypy_path, "ROOT", tmp_path)
    monkeypatch.setattr(mypy_path, "PYPROJECT", tmp_path / "pyproject.toml")
    return tmp_path


def test_check_names_what_is_missing_and_a_run_writes_the_list(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert mypy_path.main(["--check"]) == 1
    assert "missing: ['services/b/src', 'tools/c/src']" in capsys.readouterr().err
    assert (repo / "pyproject.toml").read_text() == PYPROJECT  # --check writes nothing

    assert mypy_path.main([]) == 0
    text = (repo / "pyproject.toml").read_text()
    wanted = ["libs/a/src", "services/b/src", "tools/c/src"]
    assert tomllib.loads(text)["tool"]["mypy"]["mypy_path"] == wanted
    assert text.replace('    "services/b/src",\n    "tools/c/src",\n', "") == PYPROJECT
    assert mypy_path.main(["--check"]) == 0


def test_a_listed_directory_that_is_gone_fails_the_check(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert mypy_path.main([]) == 0
    shutil.rmtree(repo / "tools" / "c")
    assert mypy_path.main(["--check"]) == 1
    assert "not a directory: ['tools/c/src']" in capsys.readouterr().err


def test_a_pyproject_without_the_setting_is_refused(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "pyproject.toml").write_text(
        PYPROJECT.replace('mypy_path = [\n    "libs/a/src",\n]\n', "")
    )
    assert mypy_path.main([]) == 1
    assert "has no `mypy_path = [...]` in [tool.mypy]" in capsys.readouterr().err

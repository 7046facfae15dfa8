"""Every code block of the repository's Markdown pages is classified (run where, or why not),
and the rules read fences, commands and markers as docs/testing.md says; no process starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.fences import Command, Fence, FenceError, documented_fences, read_page
from tests.docs.running import DOCUMENTED_ADDRESSES, Target, as_run, judge

ROOT = Path(__file__).resolve().parents[2]


def page(tmp_path: Path, text: str) -> list[Fence]:
    path = tmp_path / "docs" / "page.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return read_page(path, tmp_path)


def test_every_code_block_of_the_repository_is_classified() -> None:
    refused = [str(item) for item in documented_fences(ROOT) if isinstance(item, FenceError)]

    assert refused == []


def test_the_pages_the_scaffold_writes_are_classified() -> None:
    """`nox -s new_service` adds pages (services/<name>/README.md): theirs classify too."""
    templates = sorted((ROOT / "tools" / "scaffold" / "templates").rglob("*.md.tmpl"))

    assert templates
    for template in templates:
        read_page(template, ROOT)  # FenceError fails the test, naming the block


def test_the_repository_documents_commands_for_both_stacks() -> None:
    fences = [item for item in documented_fences(ROOT) if isinstance(item, Fence)]

    assert any("local" in fence.contexts for fence in fences)
    assert any("compose" in fence.contexts for fence in fences)


def test_a_fence_names_where_its_commands_run(tmp_path: Path) -> None:
    fences = page(
        tmp_path,
        "# t\n\n```text\nnot a command\n```\n\n```sh local compose\nacmectl hello Ada\n```\n"
        "\n```yaml\nkey: value\n```\n\n```bash long-running\nnox -s up\n```\n",
    )

    assert [(fence.where, fence.contexts) for fence in fences] == [
        ("docs/page.md:7", frozenset({"local", "compose"})),
        ("docs/page.md:15", frozenset({"long-running"})),
    ]


@pytest.mark.parametrize(
    ("block", "refusal"),
    [
        ("```\nacmectl hello Ada\n```", "without an info string"),
        ("```sh\nacmectl hello Ada\n```", "no context"),
        ("```sh locl\nacmectl hello Ada\n```", "unknown context locl"),
        ("```console\n$ acmectl hello Ada\n```", "unknown language 'console'"),
        ("```sh local kubernetes\nkubectl get pods\n```", "either run"),
        ("    acmectl hello Ada", "indented code block"),
        ("```sh local\ncurl \\\n```", "ends with a line continuation"),
    ],
)
def test_a_block_the_rules_cannot_classify_is_refused_with_its_place(
    tmp_path: Path, block: str, refusal: str
) -> None:
    with pytest.raises(FenceError, match=refusal) as refused:
        page(tmp_path, f"# t\n\ntext\n\n{block}\n")

    assert str(refused.value).startswith("docs/page.md:")


def test_commands_are_lines_joined_by_continuations_and_comments_are_not_run(
    tmp_path: Path,
) -> None:
    (fence,) = page(
        tmp_path,
        "```sh local\n"
        "# a comment\n"
        "uv run acmectl introduce Ada   # trailing comment\n"
        "\n"
        "curl -d '{}' \\\n"
        "    http://127.0.0.1:8080/x\n"
        '# HTTP 400 {"code": "invalid_argument"}\n'
        "curl http://127.0.0.1:8080/y\n"
        '# {"message": "shown output"}\n'
        "```\n",
    )

    assert fence.commands == (
        Command(3, "uv run acmectl introduce Ada   # trailing comment"),
        Command(5, "curl -d '{}' \\\n    http://127.0.0.1:8080/x", documented_status=400),
        Command(8, "curl http://127.0.0.1:8080/y"),
    )


def test_a_fence_inside_a_list_item_is_read(tmp_path: Path) -> None:
    (fence,) = page(tmp_path, "- item:\n\n  ```sh compose\n  docker compose down\n  ```\n")

    assert fence.contexts == {"compose"}
    assert [command.text.strip() for command in fence.commands] == ["docker compose down"]


TARGET = Target(
    {"greeter": "127.0.0.1:1001", "caller": "127.0.0.1:1002", "gateway": "127.0.0.1:1003"}
)


def test_documented_addresses_and_acmectl_defaults_point_at_the_stack() -> None:
    assert set(TARGET.addresses) == set(DOCUMENTED_ADDRESSES)

    assert as_run("uv run buf curl --list-methods http://127.0.0.1:50051", TARGET) == (
        "uv run buf curl --list-methods http://127.0.0.1:1001"
    )
    assert as_run("curl http://127.0.0.1:8080/a # at 127.0.0.1:8080", TARGET) == (
        "curl http://127.0.0.1:1003/a # at 127.0.0.1:1003"
    )
    assert as_run("uv run acmectl introduce Ada", TARGET) == (
        "uv run acmectl --greeter 127.0.0.1:1001 --caller 127.0.0.1:1002 introduce Ada"
    )
    assert as_run("uv run acmectl call greeter/SayHello '{}'", TARGET) == (
        "uv run acmectl --greeter 127.0.0.1:1001 --caller 127.0.0.1:1002 call "
        "--address 127.0.0.1:1001 greeter/SayHello '{}'"
    )
    assert as_run("acmectl call acme.caller.v1.CallerService/Introduce", TARGET) == (
        "acmectl --greeter 127.0.0.1:1001 --caller 127.0.0.1:1002 call "
        "--address 127.0.0.1:1002 acme.caller.v1.CallerService/Introduce"
    )
    assert as_run("ls tools/acmectl/src", TARGET) == "ls tools/acmectl/src"


def test_a_loopback_address_the_stack_does_not_serve_fails_the_test() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"127\.0\.0\.1:50053 is no address"):
        as_run("uv run buf curl --list-methods http://127.0.0.1:50053", TARGET)


@pytest.mark.parametrize(
    ("code", "statuses", "documented", "problem"),
    [
        (0, [], None, None),
        (0, [200], None, None),
        (0, [400], 400, None),
        (1, [], None, "exit code 1"),
        (0, [404], None, "HTTP 404 (the docs show no error)"),
        (0, [500], 400, "HTTP 500 (the docs show HTTP 400)"),
        (0, [200], 400, "HTTP 200, the docs show HTTP 400"),
        (0, [], 400, "the docs show HTTP 400, and curl got no answer"),
    ],
)
def test_a_command_passes_on_exit_0_and_the_documented_http_status(
    code: int, statuses: list[int], documented: int | None, problem: str | None
) -> None:
    assert judge(Command(1, "curl", documented), code, statuses) == problem

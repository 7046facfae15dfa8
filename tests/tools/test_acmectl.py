"""acmectl against real servers: `call` reaches any method through server reflection (unary,
server, client and bidirectional streams, errors with their details, refusals of what cannot
be sent), and the subcommands written for greeter and caller still work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acmectl.__main__ import main, service_address
from acmectl.reflection import NotDescribed
from acmectl.services import discover
from tests.processes import GREETER_INSTANCE, GREETER_SERVICE, ServiceProcess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    """acmectl's exit code, its stdout lines and its stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


@pytest.mark.parametrize(
    ("method", "requests", "replies"),
    [
        (
            "SayHello",
            ['{"name": "Ada", "language": "fr"}'],
            [{"message": "Bonjour, Ada !", "servedBy": GREETER_INSTANCE}],
        ),
        (
            "SayHelloLanguages",
            ['{"name": "Ada", "languages": ["fr", "de"]}'],
            [
                {"language": "fr", "message": "Bonjour, Ada !"},
                {"language": "de", "message": "Hallo, Ada!"},
            ],
        ),
        (
            "GreetMany",
            ['{"name": "Ada"}', '{"name": "Alan"}'],
            [{"message": "Hello, Ada and Alan!", "count": 2}],
        ),
        (
            "Chat",
            ['{"name": "Ada"}', '{"name": "Alan"}'],
            [{"message": "Hello, Ada!", "sequence": 1}, {"message": "Hello, Alan!", "sequence": 2}],
        ),
    ],
    ids=["unary", "server-stream", "client-stream", "bidi-stream"],
)
def test_call_reaches_any_method_through_reflection(
    capsys: pytest.CaptureFixture[str],
    greeter: ServiceProcess,
    method: str,
    requests: list[str],
    replies: list[dict[str, object]],
) -> None:
    code, lines, err = run(
        capsys, "call", "--address", greeter.address, f"{GREETER_SERVICE}/{method}", *requests
    )
    assert code == 0, err
    assert [json.loads(line) for line in lines] == replies


def test_call_takes_a_service_by_its_package_name(
    capsys: pytest.CaptureFixture[str], greeter: ServiceProcess
) -> None:
    short = GREETER_SERVICE.split(".")[1]  # greeter
    code, lines, err = run(
        capsys, "call", "--address", greeter.address, f"{short}/SayHello", '{"name": "Ada"}'
    )
    assert code == 0, err
    assert json.loads(lines[0])["message"] == "Hello, Ada!"


def test_a_failed_call_exits_1_with_its_status_and_details(
    capsys: pytest.CaptureFixture[str], greeter: ServiceProcess
) -> None:
    code, lines, err = run(
        capsys, "call", "--address", greeter.address, f"{GREETER_SERVICE}/SayHello", "{}"
    )
    assert code == 1
    assert lines == []
    said = err.splitlines()
    assert said[0] == "error: INVALID_ARGUMENT: name: must not be empty"
    detail = json.loads(said[1])
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["fieldViolations"] == [
        {"field": "name", "description": "must not be empty", "reason": "name.not_blank"}
    ]


@pytest.mark.parametrize(
    ("method", "requests", "said"),
    [
        (f"{GREETER_SERVICE}/Nope", [], "has no method 'Nope'; its methods: SayHello"),
        ("acme.nope.v1.NopeService/X", [], "no service 'acme.nope.v1.NopeService'; it serves"),
        (f"{GREETER_SERVICE}/SayHello", ["{"], "request message 1: Failed to load JSON"),
        (f"{GREETER_SERVICE}/SayHello", ['{"nam": "x"}'], 'has no field named "nam"'),
        (f"{GREETER_SERVICE}/SayHello", ["{}", "{}"], "SayHello takes one request message; 2"),
        (f"{GREETER_SERVICE}/GreetMany", ["{}", "[1]"], "request message 2:"),
    ],
)
def test_what_cannot_be_sent_exits_2_saying_why(
    capsys: pytest.CaptureFixture[str],
    greeter: ServiceProcess,
    method: str,
    requests: list[str],
    said: str,
) -> None:
    code, lines, err = run(capsys, "call", "--address", greeter.address, method, *requests)
    assert code == 2
    assert lines == []
    assert said in err


def test_an_unreachable_server_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "call", "--address", "127.0.0.1:1", f"{GREETER_SERVICE}/SayHello")
    assert code == 1
    assert err.startswith("error: UNAVAILABLE: ")


def test_without_address_call_dials_the_stacks_default_port_of_the_service() -> None:
    for service in discover(ROOT):
        if service.replica_of is None and service.implements:
            expected = f"127.0.0.1:{service.default_port}"
            assert service_address(f"{service.implements[0]}/Any", ROOT) == expected
            assert service_address(f"{service.name}/Any", ROOT) == expected
    with pytest.raises(NotDescribed, match="give its --address"):
        service_address("acme.nope.v1.NopeService/X", ROOT)


def test_the_greeter_and_caller_subcommands_still_work(
    capsys: pytest.CaptureFixture[str], greeter: ServiceProcess, caller: ServiceProcess
) -> None:
    at = ["--greeter", greeter.address, "--caller", caller.address]
    expected = {
        ("hello", "Ada"): [f"Hello, Ada!  (served by: {GREETER_INSTANCE})"],
        ("languages", "Ada", "fr"): ["[fr] Bonjour, Ada !"],
        ("greet-many", "Ada", "Alan"): ["Hello, Ada and Alan!  (2 names)"],
        ("chat", "Ada", "Alan"): ["#1 Hello, Ada!", "#2 Hello, Alan!"],
        ("introduce", "Ada"): [f"Hello, Ada!  (greeter instance: {GREETER_INSTANCE})"],
        ("introduce-all", "Ada"): [
            f"Hello, Ada!  (greeter instance: {GREETER_INSTANCE})",
            "succeeded: 1, failed: 0",
        ],
    }
    for argv, lines in expected.items():
        code, out, err = run(capsys, *at, *argv)
        assert (code, out) == (0, lines), err
    code, out, err = run(capsys, "channelz", caller.address)
    assert code == 0, err
    assert any(line.startswith("server ") and caller.address in line for line in out)
    assert any(f"to dns:///{greeter.address}" in line for line in out)

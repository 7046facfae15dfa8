"""The contract suite's data, without starting anything: which implementations it finds (and
that a new one joins by its service.toml alone), that every service serving GreeterService
declares itself, that cases.toml loads, and that every tolerated difference names a check the
suite makes."""

from __future__ import annotations

from pathlib import Path

from tests.contracts.greeter.cases import SERVICE, contract
from tests.implementations import SERVICES, implementations

# The checks test_contract.py makes besides each case's message and violations.
CHECKS = {
    "metrics/grpc_code",
    "log/serving/event_loop",
    "log/access/trace_id",
    "reflection/services",
}
# How a service's code registers GreeterService, by language.
REGISTRATIONS = {
    "*.py": "add_GreeterServiceServicer_to_server",
    "*.go": "RegisterGreeterServiceServer",
}


def test_finds_the_python_and_the_go_greeter() -> None:
    names = [implementation.name for implementation in implementations(SERVICE)]
    assert {"greeter", "greeter-go"} <= set(names)


def test_a_third_implementation_joins_with_one_file(tmp_path: Path) -> None:
    (tmp_path / "greeter-rust").mkdir()
    (tmp_path / "greeter-rust" / "service.toml").write_text(
        f'implements = ["{SERVICE}"]\n'
        "[build]\n"
        'command = ["cargo", "build", "--release"]\n'
        'tools = ["cargo"]\n'
        'install = "Rust"\n'
        'require_variable = "ACME_REQUIRE_RUST_TOOLS"\n'
        "[run]\n"
        'command = ["target/release/greeter-rust"]\n'
    )
    (tmp_path / "billing").mkdir()
    (tmp_path / "billing" / "service.toml").write_text(
        'implements = ["acme.billing.v1.BillingService"]\n[run]\ncommand = ["x"]\n'
    )
    (found,) = implementations(SERVICE, root=tmp_path)
    assert found.name == "greeter-rust"
    assert found.build is not None
    assert found.build.require_variable == "ACME_REQUIRE_RUST_TOOLS"


def test_every_service_serving_the_greeter_declares_it() -> None:
    declared = {implementation.directory for implementation in implementations(SERVICE)}
    serving = {
        path.relative_to(SERVICES).parts[0]
        for pattern, marker in REGISTRATIONS.items()
        for path in SERVICES.rglob(pattern)
        if "tests" not in path.relative_to(SERVICES).parts
        and marker in path.read_text(encoding="utf-8", errors="replace")
    }
    assert serving, "no service registers GreeterService: the markers are out of date"
    assert {SERVICES / name for name in serving} <= declared, (
        "add a service.toml (implements, run) to each of these services"
    )


def test_the_cases_load_and_cover_every_method() -> None:
    cases = contract().cases
    assert {case.rpc for case in cases} >= {"SayHello", "SayHelloLanguages", "GreetMany", "Chat"}
    assert {case.code for case in cases} >= {
        "OK",
        "INVALID_ARGUMENT",
        "RESOURCE_EXHAUSTED",
        "UNAUTHENTICATED",
        "UNIMPLEMENTED",
    }


def test_every_tolerance_names_a_check_and_gives_a_reason() -> None:
    known = CHECKS | {
        f"case/{case.id}/{part}" for case in contract().cases for part in ("message", "violations")
    }
    for implementation in implementations(SERVICE):
        for check, tolerance in implementation.tolerated.items():
            assert check in known, f"{implementation.name}: no check named {check!r}"
            assert tolerance.reason.strip(), f"{implementation.name}: {check} has no reason"

"""Every buf.validate rule of greeter.proto's request messages has a test vector in cases.toml:
a case answered INVALID_ARGUMENT whose requests break that rule (protovalidate, in process,
says which rules each case's requests break). A rule added to the contract without a case fails
here; a case then holds every implementation to it (test_contract.py, test_edge.py)."""

from __future__ import annotations

from typing import Any

from acme.greeter.v1 import greeter_pb2
from tests.contracts.greeter.cases import SERVICE, Case, contract
from tests.contracts.rules import Rule, broken, stated

DESCRIPTOR = greeter_pb2.DESCRIPTOR.services_by_name[SERVICE.rpartition(".")[2]]


def requests_of(case: Case) -> list[Any]:
    method = DESCRIPTOR.methods_by_name[case.rpc]
    request_class = getattr(greeter_pb2, method.input_type.name)
    return [request_class(**fields) for fields in case.requests]


def exercised() -> set[Rule]:
    found: set[Rule] = set()
    for case in contract().cases:
        if case.code == "INVALID_ARGUMENT" and case.raw is None:
            for request in requests_of(case):
                found |= broken(request)
    return found


def test_the_contract_states_rules() -> None:
    rules = stated(DESCRIPTOR)
    assert {rule.id for rule in rules} >= {"string.max_len", "name.not_blank"}, rules


def test_every_rule_has_a_test_vector() -> None:
    missing = stated(DESCRIPTOR) - exercised()
    assert not missing, "rules without a case in cases.toml that breaks them:\n" + "\n".join(
        sorted(map(str, missing))
    )


def test_every_invalid_case_breaks_a_rule_or_says_what_else_it_tests() -> None:
    """An INVALID_ARGUMENT case whose requests break no rule of the contract tests what only
    the service can say (the stream must carry a name); nothing else may be one."""
    by_service = {"GreetMany/empty-stream"}
    for case in contract().cases:
        if case.code != "INVALID_ARGUMENT" or case.raw is not None:
            continue
        breaks = set().union(*(broken(request) for request in requests_of(case)))
        assert bool(breaks) != (case.id in by_service), case.id

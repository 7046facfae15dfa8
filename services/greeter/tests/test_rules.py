"""The greeting rules, without gRPC, and their agreement with the contract's own rules."""

from __future__ import annotations

import itertools
import string

import protovalidate
import pytest

from acme.greeter.v1 import greeter_pb2
from acme_common import InvalidArgument
from greeter import rules


def test_greet_default_language() -> None:
    assert rules.greet("Ada") == "Hello, Ada!"


def test_greet_trims_the_contracts_whitespace_and_honours_language() -> None:
    assert rules.greet(" \t Ada \r\n", " FR ") == "Bonjour, Ada !"


def test_other_unicode_spaces_belong_to_the_name() -> None:
    # The contract allows (and the server trims) ASCII whitespace only; str.strip() would
    # also take these.
    assert rules.clean_name("\u00a0Ada\u3000") == "\u00a0Ada\u3000"


def test_greet_in_languages_keeps_order_and_defaults_to_all() -> None:
    assert rules.greet_in_languages("Ada", ["fr", " EN"]) == [
        ("fr", "Bonjour, Ada !"),
        ("en", "Hello, Ada!"),
    ]
    assert [tag for tag, _ in rules.greet_in_languages("Ada", [])] == sorted(rules.TEMPLATES)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["Ada"], "Hello, Ada!"),
        (["Ada", "Alan"], "Hello, Ada and Alan!"),
        (["Ada", "Alan", "Grace"], "Hello, Ada, Alan and Grace!"),
    ],
)
def test_greet_everyone(names: list[str], expected: str) -> None:
    assert rules.greet_everyone(names) == expected


def test_greet_everyone_needs_a_name() -> None:
    with pytest.raises(InvalidArgument) as raised:
        rules.greet_everyone([])
    assert raised.value.message == "name: the stream must contain at least one name"


# Every two-letter tag, in both cases, with the contract's surrounding whitespace.
CANDIDATES = ["".join(pair) for pair in itertools.product(string.ascii_lowercase, repeat=2)]


def accepted_by_the_contract(language: str) -> bool:
    return not protovalidate.collect_violations(
        greeter_pb2.SayHelloRequest(name="Ada", language=language)
    )


def test_the_contract_and_the_templates_support_the_same_languages() -> None:
    """The supported tags are stated twice, in greeter.proto's `language.supported` rule and
    in TEMPLATES: a tag the rule accepts without a template would crash a call, a template
    the rule refuses would never be used."""
    accepted = {tag for tag in CANDIDATES if accepted_by_the_contract(tag)}
    assert accepted == set(rules.TEMPLATES)
    for tag in rules.TEMPLATES:
        assert accepted_by_the_contract(f" {tag.upper()}\t")
        assert rules.language_tag(f" {tag.upper()}\t") == tag
    assert accepted_by_the_contract("")
    assert rules.language_tag("") == rules.DEFAULT_LANGUAGE


def test_the_contracts_message_lists_the_supported_languages() -> None:
    [violation] = protovalidate.collect_violations(
        greeter_pb2.SayHelloRequest(name="Ada", language="xx")
    )
    assert violation.proto.message.endswith(": " + ", ".join(sorted(rules.TEMPLATES)))

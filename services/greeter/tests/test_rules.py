"""The greeting rules, without gRPC."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acme_common import InvalidArgument
from greeter import rules


def test_greet_default_language() -> None:
    assert rules.greet("Ada") == "Hello, Ada!"


def test_greet_strips_whitespace_and_honours_language() -> None:
    assert rules.greet("  Ada  ", "FR") == "Bonjour, Ada !"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("x" * 101, "at most 100 characters, got 101"),
        ("Ada\x00", "control characters"),
    ],
)
def test_invalid_names_are_rejected_with_a_reason(name: str, expected: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        rules.greet(name)
    assert raised.value.violations[0].field == "name"
    assert expected in raised.value.violations[0].description


def test_unsupported_language_lists_the_supported_ones() -> None:
    with pytest.raises(InvalidArgument) as raised:
        rules.greet("Ada", "xx")
    assert raised.value.violations[0].field == "language"
    assert "supported: de, en, es, fr, it, pt" in raised.value.message


def test_greet_in_languages_keeps_order_and_defaults_to_all() -> None:
    assert rules.greet_in_languages("Ada", ["fr", "en"]) == [
        ("fr", "Bonjour, Ada !"),
        ("en", "Hello, Ada!"),
    ]
    assert [tag for tag, _ in rules.greet_in_languages("Ada", [])] == sorted(rules.TEMPLATES)


def test_greet_in_languages_names_the_bad_index() -> None:
    with pytest.raises(InvalidArgument) as raised:
        rules.greet_in_languages("Ada", ["en", "klingon"])
    assert raised.value.violations[0].field == "languages[1]"


def test_greet_in_languages_bounds_the_stream_it_asks_for() -> None:
    limit = rules.MAX_LANGUAGES
    assert len(rules.greet_in_languages("Ada", ["en"] * limit)) == limit
    with pytest.raises(InvalidArgument) as raised:
        rules.greet_in_languages("Ada", ["en"] * (limit + 1))
    violation = raised.value.violations[0]
    assert violation.field == "languages"
    assert f"at most {limit} entries, got {limit + 1}" in violation.description


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
    with pytest.raises(InvalidArgument):
        rules.greet_everyone([])


@given(st.text(max_size=300))
def test_validate_name_accepts_exactly_the_valid_names(name: str) -> None:
    cleaned = name.strip()
    valid = 0 < len(cleaned) <= rules.MAX_NAME_LENGTH and cleaned.isprintable()
    if valid:
        assert rules.validate_name(name) == cleaned
        assert rules.greet(name) == f"Hello, {cleaned}!"
    else:
        with pytest.raises(InvalidArgument) as raised:
            rules.validate_name(name)
        assert raised.value.code.name == "INVALID_ARGUMENT"
        assert raised.value.message.startswith("name: ")

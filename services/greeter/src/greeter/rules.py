"""Greeting rules: plain functions, no gRPC.

What a request must satisfy is the contract's (proto/acme/greeter/v1/greeter.proto: a name's
length and characters, the supported language tags, how many languages a request may list),
and libs/common refuses a request that breaks it before the servicer sees it. What stays here
is what those rules cannot say: trimming the surrounding whitespace the contract allows, which
greeting each supported tag gets (the proto's `language.supported` rule lists the same tags:
services/greeter/tests/test_rules.py fails when they differ), and that a GreetMany stream
carries at least one name (a rule over the stream, not over one message). Invalid input raises
InvalidArgument.
"""

from __future__ import annotations

from collections.abc import Sequence

from acme_common import FieldViolation, InvalidArgument

DEFAULT_LANGUAGE = "en"
TEMPLATES: dict[str, str] = {
    "en": "Hello, {name}!",
    "fr": "Bonjour, {name} !",
    "es": "¡Hola, {name}!",
    "de": "Hallo, {name}!",
    "it": "Ciao, {name}!",
    "pt": "Olá, {name}!",
}
# The whitespace the contract allows around a name or a language tag (and trims): ASCII only,
# as its rules say. str.strip() would take other Unicode spaces too (U+00A0, U+3000...), which
# the contract counts as part of the name.
WHITESPACE = " \t\n\v\f\r"


def clean_name(name: str) -> str:
    """The name with the surrounding whitespace the contract allows removed."""
    return name.strip(WHITESPACE)


def language_tag(language: str) -> str:
    """The template key of a language tag the contract accepts: trimmed, lower case, the
    default when empty."""
    return language.strip(WHITESPACE).lower() or DEFAULT_LANGUAGE


def greet(name: str, language: str = "") -> str:
    """One greeting, for example "Hello, Ada!"."""
    return TEMPLATES[language_tag(language)].format(name=clean_name(name))


def greet_in_languages(name: str, languages: Sequence[str]) -> list[tuple[str, str]]:
    """(language, greeting) pairs for each requested language, or every supported one."""
    cleaned = clean_name(name)
    tags = [language_tag(tag) for tag in languages] or sorted(TEMPLATES)
    return [(tag, TEMPLATES[tag].format(name=cleaned)) for tag in tags]


def greet_everyone(names: Sequence[str]) -> str:
    """One greeting for all names: "Hello, Ada!", "Hello, Ada and Alan!", "Hello, A, B and C!";
    InvalidArgument for none (the stream must carry at least one name)."""
    if not names:
        raise InvalidArgument(FieldViolation("name", "the stream must contain at least one name"))
    together = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return TEMPLATES[DEFAULT_LANGUAGE].format(name=together)

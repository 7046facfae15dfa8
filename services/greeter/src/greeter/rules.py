"""Greeting rules: plain functions, no gRPC. Invalid input raises InvalidArgument."""

from __future__ import annotations

from collections.abc import Sequence

from acme_common import FieldViolation, InvalidArgument, echo

MAX_NAME_LENGTH = 100
MAX_LANGUAGES = 1000  # one request may ask for at most this many streamed greetings
DEFAULT_LANGUAGE = "en"
TEMPLATES: dict[str, str] = {
    "en": "Hello, {name}!",
    "fr": "Bonjour, {name} !",
    "es": "¡Hola, {name}!",
    "de": "Hallo, {name}!",
    "it": "Ciao, {name}!",
    "pt": "Olá, {name}!",
}


def validate_name(name: str, field: str = "name") -> str:
    """The name with surrounding whitespace removed; InvalidArgument when empty or too long."""
    cleaned = name.strip()
    if not cleaned:
        raise InvalidArgument(FieldViolation(field, "must not be empty"))
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            FieldViolation(
                field, f"must be at most {MAX_NAME_LENGTH} characters, got {len(cleaned)}"
            )
        )
    if not cleaned.isprintable():
        raise InvalidArgument(FieldViolation(field, "must not contain control characters"))
    return cleaned


def validate_language(language: str, field: str = "language") -> str:
    """The language tag (empty means the default); InvalidArgument when unsupported."""
    tag = language.strip().lower() or DEFAULT_LANGUAGE
    if tag not in TEMPLATES:
        supported = ", ".join(sorted(TEMPLATES))
        raise InvalidArgument(
            FieldViolation(field, f"unsupported {echo(tag)}; supported: {supported}")
        )
    return tag


def greet(name: str, language: str = "") -> str:
    """One greeting, for example "Hello, Ada!"."""
    return TEMPLATES[validate_language(language)].format(name=validate_name(name))


def greet_in_languages(name: str, languages: Sequence[str]) -> list[tuple[str, str]]:
    """(language, greeting) pairs for each requested language, or every supported one."""
    cleaned = validate_name(name)
    if len(languages) > MAX_LANGUAGES:
        raise InvalidArgument(
            FieldViolation(
                "languages", f"must list at most {MAX_LANGUAGES} entries, got {len(languages)}"
            )
        )
    tags = [
        validate_language(tag, f"languages[{index}]") for index, tag in enumerate(languages)
    ] or sorted(TEMPLATES)
    return [(tag, TEMPLATES[tag].format(name=cleaned)) for tag in tags]


def greet_everyone(names: Sequence[str]) -> str:
    """One greeting for all names: "Hello, Ada!", "Hello, Ada and Alan!", "Hello, A, B and C!"."""
    if not names:
        raise InvalidArgument(FieldViolation("name", "the stream must contain at least one name"))
    together = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return TEMPLATES[DEFAULT_LANGUAGE].format(name=together)

"""Property-based tests (hypothesis) of request validation, against the session's real greeter
and against the pure greeting rules it runs.

Over the wire the rules are the oracle: whatever unicode a client sends, the answer is OK with
exactly the greeting rules.py computes, or INVALID_ARGUMENT with the same BadRequest field
violations; never another code. Arbitrary bytes as a request never get more than
INVALID_ARGUMENT. A sync grpc channel is used: hypothesis drives plain functions, and the
channel fixture is module-scoped, so no function-scoped fixture is reused between examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

import grpc
import pytest
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acme_common import FieldViolation, InvalidArgument
from greeter import rules
from tests.processes import CHANNEL_OPTIONS, RPC_TIMEOUT, ServiceProcess

pytestmark = pytest.mark.integration

T = TypeVar("T")

EXAMPLES = 150
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a loaded 2-core machine: latency is not the property under test
    suppress_health_check=[HealthCheck.too_slow],
)
SUPPORTED = sorted(rules.TEMPLATES)

# Names: any unicode (hypothesis leaves out lone surrogates, which protobuf cannot encode),
# plus near-boundary lengths, whitespace padding and control characters.
readable = st.characters(categories=["L", "M", "N", "P", "S", "Zs"])
names = st.one_of(
    st.text(readable, min_size=1, max_size=100),
    st.text(readable, min_size=1, max_size=10),
    st.text(max_size=120),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=95, max_size=105),
    st.builds(
        lambda pad, core: pad + core + pad,
        st.sampled_from(["", " ", "\t", "\n", "\u3000", "\u00a0"]),
        st.text(min_size=1, max_size=20),
    ),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), max_size=5),
)
# Languages: supported tags in any case with whitespace, or arbitrary text.
languages = st.one_of(
    st.builds(
        lambda tag, upper, pad: pad + (tag.upper() if upper else tag) + pad,
        st.sampled_from(SUPPORTED),
        st.booleans(),
        st.sampled_from(["", " ", "\t"]),
    ),
    st.sampled_from(SUPPORTED),
    st.just(""),
    st.text(max_size=8),
)
# Request bytes: anything, or a real request cut short or with bytes appended.
serialized = st.builds(
    lambda name, language: greeter_pb2.SayHelloRequest(
        name=name, language=language
    ).SerializeToString(),
    names,
    languages,
)
payloads = st.one_of(
    st.binary(max_size=64),
    serialized,
    st.builds(lambda data, cut: data[: max(0, len(data) - cut)], serialized, st.integers(1, 8)),
    st.builds(lambda data, tail: data + tail, serialized, st.binary(min_size=1, max_size=8)),
)


@pytest.fixture(scope="module")
def stub(greeter: ServiceProcess) -> Iterator[greeter_pb2_grpc.GreeterServiceStub]:
    with grpc.insecure_channel(greeter.address, options=CHANNEL_OPTIONS) as channel:
        yield greeter_pb2_grpc.GreeterServiceStub(channel)


@pytest.fixture(scope="module")
def raw_say_hello(greeter: ServiceProcess) -> Iterator[grpc.UnaryUnaryMultiCallable[bytes, bytes]]:
    with grpc.insecure_channel(greeter.address, options=CHANNEL_OPTIONS) as channel:
        yield channel.unary_unary(
            "/acme.greeter.v1.GreeterService/SayHello",
            request_serializer=None,
            response_deserializer=None,
        )


def violations_of(error: grpc.RpcError) -> list[FieldViolation]:
    """The BadRequest field violations in the rich status the server attached."""
    call = cast(grpc.Call, error)
    metadata = cast(Sequence[tuple[str, Any]], call.trailing_metadata() or ())
    found: list[FieldViolation] = []
    for key, value in metadata:
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert status.message == call.details()
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            assert detail.Unpack(bad_request), f"unexpected detail {detail.type_url}"
            found.extend(
                FieldViolation(v.field, v.description) for v in bad_request.field_violations
            )
    return found


def outcome(rule: Callable[[], T]) -> T | InvalidArgument:
    """What the pure rules make of an input: their result, or the InvalidArgument they raise."""
    try:
        result = rule()
    except InvalidArgument as invalid:
        event("INVALID_ARGUMENT")
        return invalid
    event("OK")
    return result


def expect_invalid(error: grpc.RpcError, expected: InvalidArgument) -> None:
    """error is INVALID_ARGUMENT with exactly the violations the rules raised."""
    call = cast(grpc.Call, error)
    assert call.code() == grpc.StatusCode.INVALID_ARGUMENT, (call.code(), call.details())
    assert call.details() == expected.message
    assert violations_of(error) == list(expected.violations)
    assert call.details().isprintable()


@PROPERTY
@given(name=names, language=languages)
def test_say_hello_answers_ok_or_invalid_argument_as_the_rules_say(
    stub: greeter_pb2_grpc.GreeterServiceStub, name: str, language: str
) -> None:
    request = greeter_pb2.SayHelloRequest(name=name, language=language)
    expected = outcome(lambda: rules.greet(name, language))
    if isinstance(expected, InvalidArgument):
        assert expected.violations[0].field in {"name", "language"}
        with pytest.raises(grpc.RpcError) as raised:
            stub.SayHello(request, timeout=RPC_TIMEOUT)
        expect_invalid(raised.value, expected)
        return
    reply = stub.SayHello(request, timeout=RPC_TIMEOUT)
    assert reply.message == expected
    assert name.strip() in reply.message


@PROPERTY
@given(name=names, tags=st.lists(languages, max_size=12))
def test_say_hello_languages_streams_or_names_the_bad_field(
    stub: greeter_pb2_grpc.GreeterServiceStub, name: str, tags: list[str]
) -> None:
    request = greeter_pb2.SayHelloLanguagesRequest(name=name, languages=tags)
    expected = outcome(lambda: rules.greet_in_languages(name, tags))
    if isinstance(expected, InvalidArgument):
        field = expected.violations[0].field
        assert field == "name" or field.startswith("languages")
        with pytest.raises(grpc.RpcError) as raised:
            list(stub.SayHelloLanguages(request, timeout=RPC_TIMEOUT))
        expect_invalid(raised.value, expected)
        return
    replies = list(stub.SayHelloLanguages(request, timeout=RPC_TIMEOUT))
    assert [(reply.language, reply.message) for reply in replies] == expected


def greet_batch(batch: list[str]) -> str:
    """What GreetMany answers for these names, by the rules."""
    cleaned = [
        rules.validate_name(name, f"name (message {index})")
        for index, name in enumerate(batch, start=1)
    ]
    return rules.greet_everyone(cleaned)


@PROPERTY
@given(batch=st.lists(names, max_size=8))
def test_greet_many_counts_the_names_or_names_the_bad_message(
    stub: greeter_pb2_grpc.GreeterServiceStub, batch: list[str]
) -> None:
    requests = [greeter_pb2.GreetManyRequest(name=name) for name in batch]
    expected = outcome(lambda: greet_batch(batch))
    if isinstance(expected, InvalidArgument):
        assert expected.violations[0].field.startswith("name")
        with pytest.raises(grpc.RpcError) as raised:
            stub.GreetMany(iter(requests), timeout=RPC_TIMEOUT)
        expect_invalid(raised.value, expected)
        return
    reply = stub.GreetMany(iter(requests), timeout=RPC_TIMEOUT)
    assert (reply.message, reply.count) == (expected, len(batch))


def parse_say_hello(payload: bytes) -> greeter_pb2.SayHelloRequest | None:
    try:
        return greeter_pb2.SayHelloRequest.FromString(payload)
    except DecodeError:
        return None


@PROPERTY
@given(payload=payloads)
def test_arbitrary_request_bytes_get_ok_or_invalid_argument(
    raw_say_hello: grpc.UnaryUnaryMultiCallable[bytes, bytes], payload: bytes
) -> None:
    """Any bytes at all: parsed and judged by the rules, or refused as malformed; never
    INTERNAL or UNKNOWN."""
    request = parse_say_hello(payload)
    event("parses" if request is not None else "malformed")
    try:
        raw = raw_say_hello(payload, timeout=RPC_TIMEOUT)
    except grpc.RpcError as error:
        call = cast(grpc.Call, error)
        assert call.code() == grpc.StatusCode.INVALID_ARGUMENT, (call.code(), call.details())
        violations = violations_of(error)
        assert len(violations) == 1
        if request is None:
            assert violations[0].field == "request"
            assert call.details().startswith("request: not a valid protobuf message")
        else:
            assert violations[0].field in {"name", "language"}
        return
    assert request is not None, f"{payload!r} does not parse yet was answered"
    assert greeter_pb2.SayHelloResponse.FromString(raw).message == rules.greet(
        request.name, request.language
    )


# ---------------------------------------------------------------- the pure rules


@PROPERTY
@given(language=languages)
def test_validate_language_accepts_exactly_the_supported_tags(language: str) -> None:
    tag = language.strip().lower() or rules.DEFAULT_LANGUAGE
    if tag in rules.TEMPLATES:
        assert rules.validate_language(language) == tag
        return
    with pytest.raises(InvalidArgument) as raised:
        rules.validate_language(language, "languages[3]")
    [violation] = raised.value.violations
    assert violation.field == "languages[3]"
    assert violation.description == f"unsupported {tag!r}; supported: {', '.join(SUPPORTED)}"


@PROPERTY
@given(name=names)
def test_validate_name_is_idempotent_and_explains_every_refusal(name: str) -> None:
    cleaned = outcome(lambda: rules.validate_name(name, "who"))
    if isinstance(cleaned, InvalidArgument):
        [violation] = cleaned.violations
        assert violation.field == "who"
        assert cleaned.message == f"who: {violation.description}"
        assert violation.description.startswith(
            ("must not be empty", "must be at most", "must not contain")
        )
        return
    assert cleaned == name.strip()
    assert 1 <= len(cleaned) <= rules.MAX_NAME_LENGTH
    assert rules.validate_name(cleaned) == cleaned


@PROPERTY
@given(name=names, tags=st.lists(languages, max_size=12))
def test_greet_in_languages_blames_the_first_bad_index(name: str, tags: list[str]) -> None:
    try:
        rules.validate_name(name)
    except InvalidArgument:
        return  # the name is checked first; covered above
    bad = [
        index
        for index, tag in enumerate(tags)
        if (tag.strip().lower() or rules.DEFAULT_LANGUAGE) not in rules.TEMPLATES
    ]
    if not bad:
        pairs = rules.greet_in_languages(name, tags)
        assert len(pairs) == (len(tags) or len(SUPPORTED))
        return
    with pytest.raises(InvalidArgument) as raised:
        rules.greet_in_languages(name, tags)
    assert raised.value.violations[0].field == f"languages[{bad[0]}]"

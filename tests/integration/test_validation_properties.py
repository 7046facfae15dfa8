"""Property-based tests (hypothesis) of request validation, against the session's real greeter
and against protovalidate in process.

The oracle is the contract as its comments state it (proto/acme/greeter/v1/greeter.proto),
written here once more in plain Python: a name of at most 100 characters, at least one of them
not ASCII whitespace, no control character but ASCII whitespace around it; a language tag among
the supported ones in any case, with ASCII whitespace around it, or empty. So these tests check
the rules' CEL expressions against their prose, and the server against both: whatever unicode
a client sends, the answer is OK with exactly the greeting rules.py computes, or
INVALID_ARGUMENT with the violations the oracle predicts, in protovalidate's order; never
another code. Arbitrary bytes as a request never get more than INVALID_ARGUMENT. A sync grpc
channel is used: hypothesis drives plain functions, and the channel fixture is module-scoped,
so no function-scoped fixture is reused between examples.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

import grpc
import protovalidate
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


WHITESPACE = " \t\n\v\f\r"  # the whitespace the contract allows around a name or a tag
NOT_EMPTY = "must not be empty"
NO_CONTROL = "must not contain control characters"
TOO_LONG = "must be at most 100 characters"
UNSUPPORTED = f"must be one of the supported language tags: {', '.join(SUPPORTED)}"


def name_violations(name: str, field: str = "name") -> list[FieldViolation]:
    """What the contract says of a name, in protovalidate's order: the field's CEL rules as
    declared (name.not_blank, name.no_control_characters), then its standard rule
    (string.max_len)."""
    found = []
    if not name.strip(WHITESPACE):
        found.append(FieldViolation(field, NOT_EMPTY))
    if any(ord(c) <= 0x1F or 0x7F <= ord(c) <= 0x9F for c in name.strip(WHITESPACE)):
        found.append(FieldViolation(field, NO_CONTROL))
    if len(name) > 100:
        found.append(FieldViolation(field, TOO_LONG))
    return found


def language_violations(language: str, field: str = "language") -> list[FieldViolation]:
    tag = language.strip(WHITESPACE)
    if tag == "" or (tag.isascii() and tag.lower() in SUPPORTED):
        return []
    return [FieldViolation(field, UNSUPPORTED)]


def expect_invalid(error: grpc.RpcError, expected: InvalidArgument) -> None:
    """error is INVALID_ARGUMENT with exactly the expected message and violations."""
    call = cast(grpc.Call, error)
    assert call.code() == grpc.StatusCode.INVALID_ARGUMENT, (call.code(), call.details())
    assert call.details() == expected.message
    assert violations_of(error) == list(expected.violations)
    assert call.details().isprintable()


def verdict(violations: list[FieldViolation]) -> InvalidArgument | None:
    """The error the server answers these violations with (None: it answers OK)."""
    for found in violations:
        event(f"INVALID_ARGUMENT {found.description}")
    if not violations:
        event("OK")
    return InvalidArgument(*violations) if violations else None


@PROPERTY
@given(name=names, language=languages)
def test_say_hello_answers_ok_or_invalid_argument_as_the_rules_say(
    stub: greeter_pb2_grpc.GreeterServiceStub, name: str, language: str
) -> None:
    request = greeter_pb2.SayHelloRequest(name=name, language=language)
    expected = verdict(name_violations(name) + language_violations(language))
    if expected is not None:
        with pytest.raises(grpc.RpcError) as raised:
            stub.SayHello(request, timeout=RPC_TIMEOUT)
        expect_invalid(raised.value, expected)
        return
    reply = stub.SayHello(request, timeout=RPC_TIMEOUT)
    assert reply.message == rules.greet(name, language)
    assert name.strip(WHITESPACE) in reply.message


@PROPERTY
@given(name=names, tags=st.lists(languages, max_size=12))
def test_say_hello_languages_streams_or_names_the_bad_field(
    stub: greeter_pb2_grpc.GreeterServiceStub, name: str, tags: list[str]
) -> None:
    request = greeter_pb2.SayHelloLanguagesRequest(name=name, languages=tags)
    found = name_violations(name)
    for index, tag in enumerate(tags):
        found += language_violations(tag, f"languages[{index}]")
    expected = verdict(found)
    if expected is not None:
        with pytest.raises(grpc.RpcError) as raised:
            list(stub.SayHelloLanguages(request, timeout=RPC_TIMEOUT))
        expect_invalid(raised.value, expected)
        return
    replies = list(stub.SayHelloLanguages(request, timeout=RPC_TIMEOUT))
    assert [(r.language, r.message) for r in replies] == rules.greet_in_languages(name, tags)


@PROPERTY
@given(batch=st.lists(names, max_size=8))
def test_greet_many_counts_the_names_or_ends_at_the_first_bad_one(
    stub: greeter_pb2_grpc.GreeterServiceStub, batch: list[str]
) -> None:
    requests = [greeter_pb2.GreetManyRequest(name=name) for name in batch]
    first_bad = next((found for name in batch if (found := name_violations(name))), [])
    expected = verdict(first_bad)
    if expected is not None:
        with pytest.raises(grpc.RpcError) as raised:
            stub.GreetMany(iter(requests), timeout=RPC_TIMEOUT)
        expect_invalid(raised.value, expected)
        return
    if not batch:  # a rule over the stream (rules.py), not over a message
        with pytest.raises(grpc.RpcError) as raised:
            stub.GreetMany(iter(requests), timeout=RPC_TIMEOUT)
        with pytest.raises(InvalidArgument) as rule:
            rules.greet_everyone([])
        expect_invalid(raised.value, rule.value)
        return
    reply = stub.GreetMany(iter(requests), timeout=RPC_TIMEOUT)
    cleaned = [rules.clean_name(name) for name in batch]
    assert (reply.message, reply.count) == (rules.greet_everyone(cleaned), len(batch))


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
        if request is None:
            assert len(violations) == 1
            assert violations[0].field == "request"
            assert call.details().startswith("request: not a valid protobuf message")
        else:
            expected = name_violations(request.name) + language_violations(request.language)
            assert violations == expected
        return
    assert request is not None, f"{payload!r} does not parse yet was answered"
    assert greeter_pb2.SayHelloResponse.FromString(raw).message == rules.greet(
        request.name, request.language
    )


# ------------------------------------------------- the contract's rules, in process


def protovalidate_says(message: Any) -> list[FieldViolation]:
    """protovalidate's violations of a message whose fields are plain (no subscripts)."""
    found = []
    for violation in protovalidate.collect_violations(message):
        path = violation.proto.field
        assert path is not None, "a rule of the whole message: none in greeter.proto"
        found.append(
            FieldViolation(".".join(e.field_name for e in path.elements), violation.proto.message)
        )
    return found


@PROPERTY
@given(name=names, language=languages)
def test_the_rules_mean_what_the_contract_says(name: str, language: str) -> None:
    """protovalidate's verdict on greeter.proto's CEL rules is the prose of its comments."""
    request = greeter_pb2.SayHelloRequest(name=name, language=language)
    assert protovalidate_says(request) == name_violations(name) + language_violations(language)


@PROPERTY
@given(name=names)
def test_clean_name_trims_only_what_the_contract_allows(name: str) -> None:
    cleaned = rules.clean_name(name)
    assert cleaned == rules.clean_name(cleaned)
    assert name.strip(WHITESPACE) == cleaned
    if not name_violations(name):
        assert cleaned  # a valid name never greets nobody

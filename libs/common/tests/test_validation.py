"""Requests checked against their buf.validate rules (validation.py): which types have rules,
the violations as BadRequest field violations (paths, messages, order, bounds), and the check
in the per-call path over a loopback server: before a unary handler runs, per message of a
stream, never for an unauthenticated call, and not at all with PerCall(validation=False).
The rules are a test file's own (test.validation.v1), not a service's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from pydantic import SecretStr

from acme_common._call.handlers import CallHandlers, Registrar
from acme_common._call.malformed import RefusedRequest, tolerant
from acme_common._call.observation import ServicerContext
from acme_common._call.validation import check_any, check_for, check_of, has_rules, prepare
from acme_common._errors import (
    MAX_VIOLATIONS,
    FieldViolation,
    InvalidArgument,
    field_violations,
    status_details,
)
from acme_common._settings import ServerSettings
from buf.validate import validate_pb2  # noqa: F401 - registers the options the file below uses

PROBE_FILE = """
name: "test/validation/v1/probe.proto"
package: "test.validation.v1"
syntax: "proto3"
dependency: "buf/validate/validate.proto"
message_type {
  name: "Inner"
  field { name: "name" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL
          options { [buf.validate.field] { string { min_len: 1 } } } }
}
message_type {
  name: "Probe"
  field { name: "name" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL
          options { [buf.validate.field] {
            string { max_len: 5 }
            cel { id: "name.no_x" message: "must not contain x" expression: "!this.contains('x')" }
          } } }
  field { name: "tags" number: 2 type: TYPE_STRING label: LABEL_REPEATED
          options { [buf.validate.field] { repeated { items { string { max_len: 2 } } } } } }
  field { name: "labels" number: 3 type: TYPE_MESSAGE label: LABEL_REPEATED
          type_name: ".test.validation.v1.Probe.LabelsEntry"
          options { [buf.validate.field] { map { values { string { max_len: 1 } } } } } }
  field { name: "inner" number: 4 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".test.validation.v1.Inner" }
  nested_type {
    name: "LabelsEntry"
    field { name: "key" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL }
    field { name: "value" number: 2 type: TYPE_STRING label: LABEL_OPTIONAL }
    options { map_entry: true }
  }
}
message_type {
  name: "Plain"
  field { name: "name" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL }
  field { name: "next" number: 2 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".test.validation.v1.Plain" }
}
message_type {
  name: "Holder"
  field { name: "inner" number: 1 type: TYPE_MESSAGE label: LABEL_OPTIONAL
          type_name: ".test.validation.v1.Inner" }
}
message_type {
  name: "Choice"
  field { name: "a" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL oneof_index: 0 }
  field { name: "b" number: 2 type: TYPE_STRING label: LABEL_OPTIONAL oneof_index: 0 }
  oneof_decl { name: "pick" options { [buf.validate.oneof] { required: true } } }
}
message_type {
  name: "Whole"
  field { name: "a" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL }
  options { [buf.validate.message] { cel { id: "whole.a" message: "a must be set"
                                           expression: "this.a != ''" } } }
}
message_type {
  name: "Broken"
  field { name: "name" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL
          options { [buf.validate.field] { cel { id: "broken" expression: "this +" } } } }
}
message_type {
  name: "Numeric"
  field { name: "text" number: 1 type: TYPE_STRING label: LABEL_OPTIONAL
          options { [buf.validate.field] { cel { id: "numeric" message: "must be a number"
                                                 expression: "int(this) >= 0" } } } }
}
service {
  name: "ProbeService"
  method { name: "Unary" input_type: ".test.validation.v1.Probe"
           output_type: ".test.validation.v1.Plain" }
  method { name: "Plain" input_type: ".test.validation.v1.Plain"
           output_type: ".test.validation.v1.Plain" }
}
service {
  name: "BrokenService"
  method { name: "Unary" input_type: ".test.validation.v1.Broken"
           output_type: ".test.validation.v1.Plain" }
}
service {
  name: "NumericService"
  method { name: "Unary" input_type: ".test.validation.v1.Numeric"
           output_type: ".test.validation.v1.Plain" }
}
"""


def _classes() -> dict[str, Any]:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName("test/validation/v1/probe.proto")
    except KeyError:
        pool.Add(text_format.Parse(PROBE_FILE, descriptor_pb2.FileDescriptorProto()))
    names = ("Inner", "Probe", "Plain", "Holder", "Choice", "Whole", "Broken", "Numeric")
    return {
        name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"test.validation.v1.{name}")
        )
        for name in names
    }


TYPES = _classes()
Probe, Plain, Inner, Broken = TYPES["Probe"], TYPES["Plain"], TYPES["Inner"], TYPES["Broken"]


def violations(message: Any) -> list[FieldViolation] | None:
    check = check_for(message.DESCRIPTOR)
    assert check is not None
    refusal = check(message)
    if refusal is None:
        return None
    assert isinstance(refusal, InvalidArgument)
    return list(refusal.violations)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Probe", True),  # field rules
        ("Holder", True),  # only through a field's message type
        ("Choice", True),  # a oneof rule
        ("Whole", True),  # a message rule
        ("Plain", False),  # none, and a recursive type: the walk ends
    ],
)
def test_which_types_have_rules(name: str, expected: bool) -> None:
    assert has_rules(TYPES[name].DESCRIPTOR) is expected


def test_a_type_without_rules_gets_no_check_at_all() -> None:
    assert check_for(Plain.DESCRIPTOR) is None
    assert check_of(Plain.FromString) is None  # so its deserializer is the plain tolerant one


def test_a_valid_message_passes() -> None:
    valid = Probe(name="ab", tags=["a"], labels={"k": "v"}, inner=Inner(name="i"))
    assert violations(valid) is None


def test_violations_name_the_field_path_and_say_the_rule() -> None:
    message = Probe(name="xxxxxx", tags=["ok", "too long"], labels={"k": "vv"}, inner=Inner())
    assert violations(message) == [
        FieldViolation("name", "must not contain x", "name.no_x"),
        FieldViolation("name", "must be at most 5 characters", "string.max_len"),
        FieldViolation("tags[1]", "must be at most 2 characters", "string.max_len"),
        FieldViolation('labels["k"]', "must be at most 1 characters", "string.max_len"),
        FieldViolation("inner.name", "must be at least 1 characters", "string.min_len"),
    ]


def test_oneof_and_message_rules() -> None:
    assert violations(TYPES["Choice"]()) == [
        FieldViolation("pick", "exactly one field is required in oneof", "required")
    ]
    assert violations(TYPES["Whole"]()) == [FieldViolation("", "a must be set", "whole.a")]


def test_many_violations_are_bounded_and_counted() -> None:
    refusal = check_for(Probe.DESCRIPTOR)(Probe(tags=["long"] * 20))  # type: ignore[misc]
    assert isinstance(refusal, InvalidArgument)
    assert len(refusal.violations) == MAX_VIOLATIONS
    assert refusal.message.endswith(f"; and {20 - MAX_VIOLATIONS} more")


def test_input_is_not_echoed() -> None:
    secret = "x" * 5000
    refusal = check_for(Probe.DESCRIPTOR)(Probe(name=secret))  # type: ignore[misc]
    assert isinstance(refusal, InvalidArgument)
    assert "xxxxxxxx" not in refusal.message


def test_a_rule_that_does_not_compile_is_a_server_fault_not_the_clients() -> None:
    refusal = check_for(Broken.DESCRIPTOR)(Broken(name="a"))  # type: ignore[misc]
    assert refusal is not None
    assert not isinstance(refusal, InvalidArgument)  # answered INTERNAL, logged


def test_prepare_compiles_the_rules_before_serving() -> None:
    prepare(["test.validation.v1.ProbeService", "not.in.the.pool.v1.Service"])
    with pytest.raises(SystemExit, match=r"rules of test\.validation\.v1\.Broken do not compile"):
        prepare(["test.validation.v1.BrokenService"])  # the server does not start


def test_a_rule_that_fails_on_an_empty_request_compiles_and_answers_internal() -> None:
    """int("") fails when evaluated, not when compiled: the server starts, and such a request
    is answered INTERNAL (the rule's bug), never refused as the client's."""
    prepare(["test.validation.v1.NumericService"])
    numeric = TYPES["Numeric"]
    assert violations(numeric(text="7")) is None
    assert violations(numeric(text="-1")) == [FieldViolation("text", "must be a number", "numeric")]
    refusal = check_for(numeric.DESCRIPTOR)(numeric(text="abc"))  # type: ignore[misc]
    assert refusal is not None
    assert not isinstance(refusal, InvalidArgument)


def test_a_deserializer_of_unknown_type_is_checked_by_what_it_returns() -> None:
    def custom(data: bytes) -> Any:
        return Probe.FromString(data)

    assert check_of(custom) is check_any
    assert check_of(None) is None
    assert isinstance(check_any(Probe(name="xx")), InvalidArgument)
    assert check_any(Plain(name="x")) is None
    assert check_any(b"not a message") is None


def test_the_tolerant_deserializer_hands_on_the_refusal() -> None:
    parse = tolerant(Probe.FromString, check_of(Probe.FromString))
    assert parse is not None
    assert parse(Probe(name="ok").SerializeToString()) == Probe(name="ok")
    refused = parse(Probe(name="x").SerializeToString())
    assert isinstance(refused, RefusedRequest)
    assert isinstance(refused.error, InvalidArgument)


# ------------------------------------------------------------ through the per-call path

SERVICE = "test.validation.v1.ProbeService"
TOKEN = "probe-token"  # noqa: S105 - a test value
AUTHORIZED = (("authorization", f"Bearer {TOKEN}"),)
SETTINGS = ServerSettings(instance_name="probe-1", auth_tokens=(SecretStr(TOKEN),))
seen: list[str] = []  # what the handlers were handed


async def unary(request: Any, context: ServicerContext) -> Any:
    seen.append(request.name)
    return Plain(name=f"hello {request.name}")


async def bidi(requests: AsyncIterator[Any], context: ServicerContext) -> AsyncIterator[Any]:
    async for request in requests:
        seen.append(request.name)
        yield Plain(name=f"hello {request.name}")


@dataclass
class Served:
    channel: grpc.aio.Channel
    validating: bool  # PerCall.validation of the server


@pytest.fixture(params=[True, False], ids=["validation", "no-validation"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    codec: dict[str, Any] = {
        "request_deserializer": Probe.FromString,
        "response_serializer": Plain.SerializeToString,
    }
    handlers = CallHandlers(
        SETTINGS, tracing=False, shutting_down=lambda: False, validation=request.param
    )
    Registrar(handlers).add_registered_method_handlers(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, **codec),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi, **codec),
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    seen.clear()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Served(channel, request.param)
    finally:
        await server.stop(None)


async def test_an_invalid_unary_request_never_reaches_the_handler(served: Served) -> None:
    call = served.channel.unary_unary(
        f"/{SERVICE}/Unary", Probe.SerializeToString, Plain.FromString
    )
    if not served.validating:
        reply = await call(Probe(name="xxxxxx"), metadata=AUTHORIZED, timeout=5)
        assert (reply.name, seen) == ("hello xxxxxx", ["xxxxxx"])
        return
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(Probe(name="xxxxxx"), metadata=AUTHORIZED, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "name: must not contain x; name: must be at most 5 characters"
    assert field_violations(status_details(raised.value)) == [
        FieldViolation("name", "must not contain x", "name.no_x"),
        FieldViolation("name", "must be at most 5 characters", "string.max_len"),
    ]
    assert seen == []
    assert (await call(Probe(name="Ada"), metadata=AUTHORIZED, timeout=5)).name == "hello Ada"


async def test_an_unauthenticated_call_is_refused_before_it_is_checked(served: Served) -> None:
    call = served.channel.unary_unary(
        f"/{SERVICE}/Unary", Probe.SerializeToString, Plain.FromString
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(Probe(name="xxxxxx"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_stream_ends_at_its_first_invalid_message(served: Served) -> None:
    bidi = served.channel.stream_stream(
        f"/{SERVICE}/Bidi", Probe.SerializeToString, Plain.FromString
    )
    call: Any = bidi(None, metadata=AUTHORIZED, timeout=5)
    await call.write(Probe(name="Ada"))
    assert (await call.read()).name == "hello Ada"
    await call.write(Probe(name="x"))
    if not served.validating:
        assert (await call.read()).name == "hello x"
        await call.done_writing()
        assert await call.code() == grpc.StatusCode.OK
        return
    assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await call.details() == "name: must not contain x"
    assert seen == ["Ada"]

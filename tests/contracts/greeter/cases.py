"""cases.toml as typed cases, and the one generic way to call any of them: each call shape of
gRPC (unary, server stream, client stream, bidi) with the case's requests and metadata,
answered as the replies (every field), the status code, message and BadRequest violations."""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from acme.greeter.v1 import greeter_pb2
from acme_common import field_violations, status_details
from tests.implementations import Pattern, patterns

CASES_FILE = Path(__file__).with_name("cases.toml")
SERVICE = "acme.greeter.v1.GreeterService"
RPC_TIMEOUT = 5.0

EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]
_DESCRIPTOR = greeter_pb2.DESCRIPTOR.services_by_name["GreeterService"]


def expand(value: Any) -> Any:
    """The data's shorthands: `{repeat = "y", times = N}` is "y" N times, `{join = [...]}`
    concatenates, a `{repeat = {...}, times = N}` item of a list is N copies of it."""
    if isinstance(value, dict):
        if value.keys() == {"repeat", "times"} and isinstance(value["repeat"], str):
            return value["repeat"] * int(value["times"])
        if value.keys() == {"join"}:
            return "".join(expand(part) for part in value["join"])
        return {key: expand(item) for key, item in value.items()}
    if isinstance(value, list):
        items: list[Any] = []
        for item in value:
            if isinstance(item, dict) and item.keys() == {"repeat", "times"}:
                items.extend(expand(item["repeat"]) for _ in range(int(item["times"])))
            else:
                items.append(expand(item))
        return items
    return value


@dataclass(frozen=True)
class Case:
    id: str
    rpc: str  # a method name of the service, or a full /package.Service/Method path
    requests: list[dict[str, Any]]
    raw: bytes | None  # the request's bytes as sent, for paths outside the stubs
    metadata: dict[str, str]
    env: dict[str, str]  # settings over the contract's: the case gets a server of its own
    send_request_id: bool
    replies: list[dict[str, Any]] | None
    reply_count: int | None
    code: str
    message: str | Pattern | None
    violations: list[dict[str, Any]] | None
    log: bool
    logged_request_id: str  # "sent" or "generated"

    @property
    def path(self) -> str:
        return self.rpc if self.rpc.startswith("/") else f"/{SERVICE}/{self.rpc}"

    @property
    def request_id(self) -> str | None:
        """The x-request-id this case's call sends (None: none)."""
        if "x-request-id" in self.metadata:
            return self.metadata["x-request-id"]
        return f"contract-{self.id}" if self.send_request_id else None

    def call_metadata(self) -> list[tuple[str, str]]:
        sent = {key: value for key, value in self.metadata.items()}
        if self.request_id is not None:
            sent["x-request-id"] = self.request_id
        return list(sent.items())


@dataclass(frozen=True)
class Contract:
    cases: list[Case]
    server_env: dict[str, str]
    sections: dict[str, Any]  # health, reflection, metrics, log, tracing, drain


@cache
def contract() -> Contract:
    data = patterns(expand(tomllib.loads(CASES_FILE.read_text(encoding="utf-8"))))
    default_metadata = data["defaults"]["metadata"]
    cases = []
    for raw in data["case"]:
        unknown = set(raw) - set(Case.__dataclass_fields__)
        if unknown:
            raise ValueError(f"case {raw.get('id')!r}: unknown keys {sorted(unknown)}")
        cases.append(
            Case(
                id=raw["id"],
                rpc=raw["rpc"],
                requests=raw.get("requests", []),
                raw=bytes.fromhex(raw["raw"]) if "raw" in raw else None,
                metadata=raw.get("metadata", default_metadata),
                env=raw.get("env", {}),
                send_request_id=raw.get("send_request_id", True),
                replies=raw.get("replies"),
                reply_count=raw.get("reply_count"),
                code=raw.get("code", "OK"),
                message=raw.get("message"),
                violations=raw.get("violations"),
                log=raw.get("log", True),
                logged_request_id=raw.get("logged_request_id", "sent"),
            )
        )
    ids = [case.id for case in cases]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{CASES_FILE}: duplicate case ids")
    sections = {key: value for key, value in data.items() if key not in ("case", "defaults")}
    return Contract(cases, dict(data["server"]["env"]), sections)


@dataclass
class Outcome:
    """What one call got back."""

    replies: list[dict[str, Any]]
    code: str
    message: str
    violations: list[dict[str, str]]


def fields_of(reply: Message) -> dict[str, Any]:
    """Every field of a reply, by name (defaults included: the cases list them all)."""
    return {
        field.name: list(getattr(reply, field.name))
        if field.is_repeated
        else getattr(reply, field.name)
        for field in reply.DESCRIPTOR.fields
    }


def _error(error: grpc.aio.AioRpcError, replies: list[dict[str, Any]]) -> Outcome:
    violations = [
        {"field": v.field, "description": v.description}
        for v in field_violations(status_details(error))
    ]
    return Outcome(replies, error.code().name, error.details() or "", violations)


async def _final(call: Any, error: grpc.aio.AioRpcError | None) -> grpc.aio.AioRpcError:
    """The status a call ended with: a streaming call's own (a write that failed because the
    call had ended reports that, not the call's status), else the error raised."""
    if call is None:
        assert error is not None
        return error
    return grpc.aio.AioRpcError(
        await call.code(),
        await call.initial_metadata(),
        await call.trailing_metadata(),
        await call.details(),
        None,
    )


async def run(channel: grpc.aio.Channel, case: Case) -> Outcome:
    """Call case's method on channel the way its streaming shape asks: bidi calls read each
    reply before they send the next request, and stop sending at the first error."""
    metadata = case.call_metadata()
    replies: list[dict[str, Any]] = []
    if case.raw is not None:
        raw_call = channel.unary_unary(case.path, None, None)  # bytes as they are
        try:
            await raw_call(case.raw, metadata=metadata, timeout=RPC_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            return _error(error, replies)
        return Outcome(replies, "OK", "", [])

    method = _DESCRIPTOR.methods_by_name[case.rpc]
    request_type = greeter_pb2.DESCRIPTOR.message_types_by_name[method.input_type.name]
    reply_type = greeter_pb2.DESCRIPTOR.message_types_by_name[method.output_type.name]
    request_class: Any = getattr(greeter_pb2, request_type.name)
    reply_class: Any = getattr(greeter_pb2, reply_type.name)
    requests = [request_class(**fields) for fields in case.requests]
    options = {
        "request_serializer": request_class.SerializeToString,
        "response_deserializer": reply_class.FromString,
    }
    call: Any = None  # a streaming call, whose own status wins over a failed write's
    try:
        if not method.client_streaming and not method.server_streaming:
            (request,) = requests
            unary = channel.unary_unary(case.path, **options)
            replies.append(fields_of(await unary(request, metadata=metadata, timeout=RPC_TIMEOUT)))
        elif not method.client_streaming:
            (request,) = requests
            call = channel.unary_stream(case.path, **options)(
                request, metadata=metadata, timeout=RPC_TIMEOUT
            )
            async for reply in call:
                replies.append(fields_of(reply))
        elif not method.server_streaming:
            call = channel.stream_unary(case.path, **options)(
                None, metadata=metadata, timeout=RPC_TIMEOUT
            )
            for request in requests:
                await call.write(request)
            await call.done_writing()
            replies.append(fields_of(await call))
        else:
            call = channel.stream_stream(case.path, **options)(
                None, metadata=metadata, timeout=RPC_TIMEOUT
            )
            for request in requests:
                await call.write(request)
                reply = await call.read()  # each answered before the next is sent
                if reply is EOF:
                    break
                replies.append(fields_of(reply))
            await call.done_writing()
            while (reply := await call.read()) is not EOF:
                replies.append(fields_of(reply))
    except grpc.aio.AioRpcError as error:
        return _error(await _final(call, error), replies)
    except asyncio.InvalidStateError:  # a write after the call had ended
        return _error(await _final(call, None), replies)
    return Outcome(replies, "OK", "", [])

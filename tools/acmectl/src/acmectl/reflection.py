"""Any method of any server, described by the server itself (gRPC server reflection,
grpcio-reflection's client side) and called with messages given as JSON (protobuf's JSON
mapping, google.protobuf.json_format): what `acmectl call` and the local stack's hints use, so
that a new service needs no stubs and no new subcommand here."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from acmectl.services import client_prefix

# What every server of ours serves besides its own API (health, reflection, channelz).
INFRASTRUCTURE_PREFIX = "grpc."


class NotDescribed(Exception):
    """The server does not describe the service or method asked for; the message lists what
    it does describe."""


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


if TYPE_CHECKING:  # grpc-stubs makes the interceptor generic; grpc's class is not
    _StreamStreamInterceptor = grpc.StreamStreamClientInterceptor[Any, Any]
else:
    _StreamStreamInterceptor = grpc.StreamStreamClientInterceptor


class _Deadline(_StreamStreamInterceptor):
    """A deadline on the reflection calls, which grpcio-reflection makes without one."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Iterator[Any],
    ) -> Any:
        details = client_call_details
        if details.timeout is None:
            details = _CallDetails(
                details.method,
                self.timeout,
                details.metadata,
                details.credentials,
                details.wait_for_ready,
                details.compression,
            )
        return continuation(details, request_iterator)


class Reflection:
    """The services a server describes, resolved on demand over its reflection service.
    grpc.RpcError when the server cannot be reached or serves no reflection."""

    def __init__(self, channel: grpc.Channel, timeout: float) -> None:
        self._database = ProtoReflectionDescriptorDatabase(
            grpc.intercept_channel(channel, _Deadline(timeout))
        )
        self._pool = descriptor_pool.DescriptorPool(self._database)

    def services(self) -> list[str]:
        """Its services' full names, without the infrastructure ones (health, reflection,
        channelz)."""
        names = self._database.get_services()
        return sorted(name for name in names if not name.startswith(INFRASTRUCTURE_PREFIX))

    def service(self, name: str) -> ServiceDescriptor:
        """A service by full name, or by its package's name when that is one service of the
        server (`orders` for acme.orders.v1.OrdersService)."""
        services = self.services()
        if "." not in name:
            short = [s for s in services if client_prefix(s) == f"{name.upper()}_"]
            name = short[0] if len(short) == 1 else name
        if name not in services:
            raise NotDescribed(
                f"the server describes no service {name[:120]!r}; it serves: "
                f"{', '.join(services) or 'none but health, reflection and channelz'}"
            )
        found: ServiceDescriptor = self._pool.FindServiceByName(name)
        return found

    def method(self, path: str) -> MethodDescriptor:
        """`<service>/<method>` (acme.orders.v1.OrdersService/Echo) as the server describes
        it."""
        service_name, _, method_name = path.strip("/").rpartition("/")
        service = self.service(service_name)
        method = service.methods_by_name.get(method_name)
        if method is None:
            raise NotDescribed(
                f"{service.full_name} has no method {method_name[:80]!r}; its methods: "
                f"{', '.join(service.methods_by_name)}"
            )
        return method


def parse_requests(method: MethodDescriptor, texts: Sequence[str]) -> list[Message]:
    """The request messages from their JSON (json_format.ParseError naming the one that is
    wrong). Unary and server-streaming methods take one message (none given: `{}`)."""
    request_type = GetMessageClass(method.input_type)
    if not method.client_streaming:
        if len(texts) > 1:
            raise json_format.ParseError(
                f"{method.name} takes one request message; {len(texts)} were given"
            )
        texts = texts or ["{}"]
    messages = []
    for index, text in enumerate(texts, start=1):
        try:
            messages.append(json_format.Parse(text, request_type()))
        except json_format.ParseError as error:
            raise json_format.ParseError(f"request message {index}: {error}") from None
    return messages


def sample_request(method: MethodDescriptor) -> str:
    """A request to show in a hint: its first field set to a name when that field is text
    (`{"name": "Ada"}`, `{"text": "Ada"}`), else `{}`."""
    fields = method.input_type.fields
    first = fields[0] if fields else None
    if first is None or first.type != first.TYPE_STRING:
        return "{}"
    return json.dumps({first.json_name: ["Ada"] if first.is_repeated else "Ada"})


def invoke(
    channel: grpc.Channel, method: MethodDescriptor, requests: Sequence[Message], timeout: float
) -> Iterator[Message]:
    """Call method with requests (one, or the stream's) and yield its replies; grpc.RpcError
    when the call fails."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_type = GetMessageClass(method.output_type)
    codec: dict[str, Any] = {
        "request_serializer": lambda message: message.SerializeToString(),
        "response_deserializer": response_type.FromString,
    }
    if method.client_streaming and method.server_streaming:
        yield from channel.stream_stream(path, **codec)(iter(requests), timeout=timeout)
    elif method.client_streaming:
        yield channel.stream_unary(path, **codec)(iter(requests), timeout=timeout)
    elif method.server_streaming:
        yield from channel.unary_stream(path, **codec)(requests[0], timeout=timeout)
    else:
        yield channel.unary_unary(path, **codec)(requests[0], timeout=timeout)


def to_json(message: Message) -> str:
    """One line of protobuf's JSON mapping (lowerCamelCase names, as Connect's JSON)."""
    return json_format.MessageToJson(message, indent=None)

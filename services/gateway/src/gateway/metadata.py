"""Which headers cross the gateway, each way (docs/gateway.md).

Requests: the client's HTTP headers reach the service as gRPC metadata, except

- hop-by-hop fields (RFC 9110 7.6.1): `connection` and every field it names, `keep-alive`,
  `proxy-connection`, `te`, `transfer-encoding`, `upgrade`, plus `trailer` and
  `http2-settings`: they describe the client's connection, not the call;
- the protocols' own fields: HTTP/2 pseudo-headers, `host`, `content-type`, `content-length`,
  `content-encoding`, `accept-encoding`, `user-agent`, `x-user-agent`, `x-grpc-web`, and every
  `grpc-*` and `connect-*` field: the gateway's own gRPC call states its deadline, encoding and
  agent itself;
- fields the gateway sets itself, which a client could otherwise forge: `x-request-id` (the
  gateway passes its own, sanitised one), `traceparent`, `tracestate` (the gateway's tracing),
  `forwarded`, `x-forwarded-*`, `x-real-ip`;
- credentials: `cookie` and `proxy-authorization` never; `authorization` only with
  GATEWAY_PASS_AUTHORIZATION (forwarding.Forwarder adds it);
- what gRPC cannot carry: names other than `[0-9a-z_.-]+`, and values that are not printable
  ASCII; a `-bin` field's value is base64 (RFC 4648, padded or not) and is passed as the bytes
  it encodes, or dropped when it is not base64.

The rest is bounded: at most MAX_REQUEST_ENTRIES fields and MAX_REQUEST_BYTES bytes (name +
value + 32 per field, HPACK's measure, RFC 7541 4.1), well under the 8 KiB of metadata a gRPC
server accepts by default together with the gateway's own (token, request id, trace context,
grpc's fields). A request with more is refused `resource_exhausted` before its call starts:
nobody can make the gateway forward megabytes of metadata, and nothing is cut silently.

Responses: the service's initial metadata become the response's headers and its trailing
metadata the response's trailers (Connect unary: `trailer-` headers; Connect streams: the
end-of-stream message; gRPC-Web: the trailer frame; gRPC: HTTP/2 trailers), except hop-by-hop
and protocol fields (as above, `content-*` too), `set-cookie` (cookies never cross the
gateway), `access-control-*` (CORS is the gateway's policy, GATEWAY_CORS_ORIGINS) and
`x-request-id` (the gateway's own answer). A `-bin` value is sent as unpadded
base64. Their size is bounded by the gateway's gRPC channel, which accepts 8 KiB of metadata.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from acme_common import AUTHORIZATION, REQUEST_ID_HEADER

MAX_REQUEST_ENTRIES = 64
MAX_REQUEST_BYTES = 4096
ENTRY_OVERHEAD = 32  # bytes per field (RFC 7541 4.1), as grpc counts a metadata's size

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "trailer",
        "http2-settings",
    }
)
PROTOCOL = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "content-encoding",
        "accept-encoding",
        "user-agent",
        "x-user-agent",
        "x-grpc-web",
    }
)
PROTOCOL_PREFIXES = ("grpc-", "connect-", ":")
GATEWAY_OWN = frozenset({REQUEST_ID_HEADER, "traceparent", "tracestate", "forwarded", "x-real-ip"})
GATEWAY_OWN_PREFIXES = ("x-forwarded-",)
NEVER = frozenset({"cookie", "set-cookie", "proxy-authorization", AUTHORIZATION})
# Responses: a service's content-* fields describe its gRPC message, not the HTTP answer, and
# CORS answers are the gateway's.
RESPONSE_PREFIXES = (*PROTOCOL_PREFIXES, "content-", "access-control-")
RESPONSE_EXCLUDED = HOP_BY_HOP | PROTOCOL | NEVER | {REQUEST_ID_HEADER}

# What gRPC accepts (PROTOCOL-HTTP2.md): lower-case names of these characters; values of
# printable ASCII unless the name ends in -bin.
_GRPC_NAME = re.compile(r"[0-9a-z_.\-]+")
_GRPC_VALUE = re.compile(r"[\x20-\x7e]*")

Metadata = tuple[tuple[str, str | bytes], ...]


def _connection_options(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The fields that `connection` names (RFC 9110 7.6.1): hop-by-hop too."""
    return frozenset(
        option.strip().lower()
        for name, value in headers
        if name == "connection"
        for option in value.split(",")
    )


def _passed_on(name: str, hop_by_hop: frozenset[str]) -> bool:
    return not (
        name in HOP_BY_HOP
        or name in hop_by_hop
        or name in PROTOCOL
        or name in GATEWAY_OWN
        or name in NEVER
        or name.startswith(PROTOCOL_PREFIXES)
        or name.startswith(GATEWAY_OWN_PREFIXES)
    )


def _decode_binary(value: str) -> bytes | None:
    """A -bin field's value: base64, padded or not (PROTOCOL-HTTP2.md); None when it is not."""
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def request_metadata(headers: Iterable[tuple[str, str]]) -> Metadata:
    """The metadata the service gets from the client's headers (name, value: names in lower
    case, as HTTP/2 and ASGI give them), by the module's rule; ConnectError
    resource_exhausted when they exceed MAX_REQUEST_ENTRIES or MAX_REQUEST_BYTES."""
    headers = tuple(headers)
    hop_by_hop = _connection_options(headers)
    metadata: list[tuple[str, str | bytes]] = []
    size = 0
    for name, value in headers:
        if not _passed_on(name, hop_by_hop) or not _GRPC_NAME.fullmatch(name):
            continue
        if name.endswith("-bin"):
            decoded = _decode_binary(value)
            if decoded is None:
                continue
            metadata.append((name, decoded))
        elif _GRPC_VALUE.fullmatch(value):
            metadata.append((name, value))
        else:
            continue
        size += len(name) + len(value) + ENTRY_OVERHEAD
        if len(metadata) > MAX_REQUEST_ENTRIES or size > MAX_REQUEST_BYTES:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"too much request metadata to pass on: more than {MAX_REQUEST_ENTRIES} "
                f"fields or {MAX_REQUEST_BYTES} bytes (name + value + {ENTRY_OVERHEAD} each)",
            )
    return tuple(metadata)


def response_fields(metadata: Iterable[tuple[str, str | bytes]] | None) -> list[tuple[str, str]]:
    """The response headers (or trailers) that the service's initial (or trailing) metadata
    become, by the module's rule."""
    fields: list[tuple[str, str]] = []
    for name, value in metadata or ():
        if name in RESPONSE_EXCLUDED or name.startswith(RESPONSE_PREFIXES):
            continue
        if isinstance(value, bytes):
            fields.append((name, base64.b64encode(value).decode().rstrip("=")))
        else:
            fields.append((name, value))
    return fields

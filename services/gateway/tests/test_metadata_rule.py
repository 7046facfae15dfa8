"""The rule of which headers cross the gateway (gateway.metadata), the status messages it
passes on, the service names it accepts, and Connect GET's idempotency level: as plain
functions. tests/integration/test_gateway_metadata.py checks the same over real sockets."""

from __future__ import annotations

import base64

import grpc
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel
from google.protobuf import descriptor_pb2, descriptor_pool
from google.rpc import status_pb2
from pydantic import ValidationError

from gateway.forwarding import idempotency_level
from gateway.metadata import (
    ENTRY_OVERHEAD,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_ENTRIES,
    request_metadata,
    response_fields,
)
from gateway.settings import GatewaySettings, env_prefix
from gateway.statuses import connect_error


def test_custom_headers_are_passed_on_with_every_value() -> None:
    headers = [("x-conformance-test", "Value1"), ("x-conformance-test", "Value2")]
    headers += [("accept-language", "fr"), ("x-trace_id.v2", "7")]
    assert request_metadata(headers) == tuple(headers)


EXCLUDED = [
    # hop-by-hop (RFC 9110 7.6.1)
    ("connection", "keep-alive, x-hop"),
    ("x-hop", "named by connection"),
    ("keep-alive", "timeout=5"),
    ("proxy-connection", "keep-alive"),
    ("te", "trailers"),
    ("transfer-encoding", "chunked"),
    ("upgrade", "h2c"),
    ("http2-settings", "AAMAAABkAAQAoAAAAAIAAAAA"),
    # the protocols' own
    ("host", "gw"),
    ("content-type", "application/json"),
    ("content-length", "15"),
    ("content-encoding", "gzip"),
    ("accept-encoding", "gzip"),
    ("user-agent", "curl/8"),
    ("x-user-agent", "grpc-web-javascript/0.1"),
    ("x-grpc-web", "1"),
    ("grpc-timeout", "1S"),
    ("grpc-accept-encoding", "gzip"),
    ("connect-protocol-version", "1"),
    ("connect-timeout-ms", "100"),
    # the gateway's own
    ("x-request-id", "client-id"),
    ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("tracestate", "a=b"),
    ("forwarded", "for=10.0.0.1"),
    ("x-forwarded-for", "10.0.0.1"),
    ("x-real-ip", "10.0.0.1"),
    # credentials
    ("cookie", "session=secret"),
    ("proxy-authorization", "Basic c2VjcmV0"),
    ("authorization", "Bearer secret"),
    # what gRPC cannot carry
    ("x-bang!", "name outside [0-9a-z_.-]"),
    ("x-accent", "caf\u00e9"),
    ("x-control", "a\tb"),
    ("x-data-bin", "not base64!"),
]


@pytest.mark.parametrize(("name", "value"), EXCLUDED, ids=[name for name, _ in EXCLUDED])
def test_excluded_headers_are_not_passed_on(name: str, value: str) -> None:
    assert request_metadata([("connection", "x-hop"), (name, value), ("x-kept", "1")]) == (
        ("x-kept", "1"),
    )


def test_binary_headers_are_passed_on_as_their_bytes() -> None:
    data = b"\x00\xffbinary"
    padded = base64.b64encode(data).decode()
    unpadded = padded.rstrip("=")
    assert request_metadata([("x-data-bin", padded), ("x-data-bin", unpadded)]) == (
        ("x-data-bin", data),
        ("x-data-bin", data),
    )


def test_too_many_headers_are_refused_with_a_bounded_message() -> None:
    allowed = [(f"x-h{i}", "v") for i in range(MAX_REQUEST_ENTRIES)]
    assert len(request_metadata(allowed)) == MAX_REQUEST_ENTRIES
    with pytest.raises(ConnectError) as raised:
        request_metadata([*allowed, ("x-one-more", "v")])
    assert raised.value.code is Code.RESOURCE_EXHAUSTED
    assert str(MAX_REQUEST_ENTRIES) in raised.value.message
    assert len(raised.value.message) < 200


def test_too_large_headers_are_refused() -> None:
    name = "x-big"
    fits = MAX_REQUEST_BYTES - len(name) - ENTRY_OVERHEAD
    assert request_metadata([(name, "v" * fits)]) == ((name, "v" * fits),)
    with pytest.raises(ConnectError) as raised:
        request_metadata([(name, "v" * (fits + 1))])
    assert raised.value.code is Code.RESOURCE_EXHAUSTED
    # Excluded headers do not count: a big cookie is dropped, not refused.
    assert request_metadata([("cookie", "c" * 100_000), ("x-a", "1")]) == (("x-a", "1"),)


def test_service_metadata_become_response_fields_by_the_rule() -> None:
    metadata: list[tuple[str, str | bytes]] = [
        ("x-custom-header", "foo"),
        ("x-custom-header", "bar"),
        ("x-data-bin", b"\x00\xff"),
        ("set-cookie", "session=1"),
        ("access-control-allow-origin", "*"),
        ("x-request-id", "the-service's"),
        ("content-type", "application/grpc"),
        ("content-language", "en"),
        ("grpc-status-details-bin", b"\x08\x03"),
        ("connection", "close"),
    ]
    assert response_fields(metadata) == [
        ("x-custom-header", "foo"),
        ("x-custom-header", "bar"),
        ("x-data-bin", "AP8"),  # unpadded base64
    ]
    assert response_fields(None) == []


def failed_call(
    code: grpc.StatusCode, message: str, trailing: tuple[tuple[str, str | bytes], ...]
) -> grpc.aio.AioRpcError:
    metadata = grpc.aio.Metadata(*trailing)
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), metadata, message, None)


def test_a_status_the_service_sent_keeps_its_message() -> None:
    """INTERNAL with the service's trailers (its status details, or trailers of its own) came
    from the service: its message is passed on. Without any, grpc core may have written it."""
    status = status_pb2.Status(code=13, message="unary failed").SerializeToString()
    sent = [
        (("grpc-status-details-bin", status),),
        (("x-custom-trailer", "bing"),),
    ]
    for trailing in sent:
        error = connect_error(failed_call(grpc.StatusCode.INTERNAL, "unary failed", trailing), "s")
        assert (error.code, error.message) == (Code.INTERNAL, "unary failed")
    core = connect_error(failed_call(grpc.StatusCode.INTERNAL, "Stream removed", ()), "acme.x.v1.X")
    assert core.message == "the service failed: acme.x.v1.X"


@pytest.mark.parametrize(
    ("service", "prefix"),
    [
        ("acme.caller.v1.CallerService", "CALLER_"),
        ("connectrpc.conformance.v1.ConformanceService", "CONFORMANCE_"),
        ("grpc.health.v1.Health", "HEALTH_"),
        ("acme.billing.v2beta1.BillingService", "BILLING_"),
        ("shop.Orders", "SHOP_"),
    ],
)
def test_prefix_is_the_last_package_segment_that_is_not_a_version(
    service: str, prefix: str
) -> None:
    assert env_prefix(service) == prefix
    assert GatewaySettings.model_validate({"gateway_services": service}).gateway_services == (
        service,
    )


@pytest.mark.parametrize(
    "services",
    [
        "v1.Service",  # no segment to name it
        "Acme.caller.v1.CallerService",
        "acme..v1.CallerService",
        "CallerService",
        "acme.caller.v1.CallerService,acme.caller.v2.CallerService",  # both CALLER_
    ],
)
def test_names_without_a_prefix_of_their_own_are_refused(services: str) -> None:
    with pytest.raises(ValidationError, match="GATEWAY_SERVICES"):
        GatewaySettings.model_validate({"gateway_services": services})


def test_idempotency_level_comes_from_the_method_options() -> None:
    file = descriptor_pb2.FileDescriptorProto(name="test_idempotency.proto", package="idem.v1")
    file.message_type.add(name="Empty")
    service = file.service.add(name="Idem")
    levels = {
        "Read": descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
        "Put": descriptor_pb2.MethodOptions.IDEMPOTENT,
        "Post": descriptor_pb2.MethodOptions.IDEMPOTENCY_UNKNOWN,
    }
    for name, level in levels.items():
        method = service.method.add(name=name, input_type=".idem.v1.Empty")
        method.output_type = ".idem.v1.Empty"
        method.options.idempotency_level = level
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    methods = pool.FindServiceByName("idem.v1.Idem").methods_by_name
    assert idempotency_level(methods["Read"]) is IdempotencyLevel.NO_SIDE_EFFECTS
    assert idempotency_level(methods["Put"]) is IdempotencyLevel.IDEMPOTENT
    assert idempotency_level(methods["Post"]) is IdempotencyLevel.UNKNOWN

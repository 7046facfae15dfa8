"""The gateway's plain functions: settings, status mapping, header re-encoding."""

from __future__ import annotations

import grpc
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from pydantic import ValidationError

from gateway.app import _utf8
from gateway.observation import error_code, protocol_of
from gateway.settings import (
    CallerClientSettings,
    GatewaySettings,
    client_settings_type,
    env_prefix,
)
from gateway.statuses import connect_code, connect_error, grpc_code_name


def test_every_grpc_code_has_its_connect_code_and_back() -> None:
    for code in grpc.StatusCode:
        if code is grpc.StatusCode.OK:
            continue
        assert grpc_code_name(connect_code(code)) == code.name
    assert connect_code(grpc.StatusCode.CANCELLED) is Code.CANCELED


def failed_call(
    code: grpc.StatusCode, message: str, status: status_pb2.Status | None
) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata()
    if status is not None:
        trailing.add("grpc-status-details-bin", status.SerializeToString())
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, message, None)


def test_details_are_passed_on_unchanged() -> None:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="name", description="empty")
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    status = status_pb2.Status(code=3, message="name: empty", details=[detail])
    error = connect_error(failed_call(grpc.StatusCode.INVALID_ARGUMENT, "name: empty", status), "s")
    assert (error.code, error.message) == (Code.INVALID_ARGUMENT, "name: empty")
    [passed] = error.details
    assert passed.type_name == "google.rpc.BadRequest"
    assert error_details_pb2.BadRequest.FromString(passed.message_bytes) == bad_request


def test_grpc_core_text_is_not_passed_on() -> None:
    text = "failed to connect to all addresses; last error: 10.1.2.3:50052"
    error = connect_error(failed_call(grpc.StatusCode.UNAVAILABLE, text, None), "acme.x.v1.X")
    assert error.message == "the service is unavailable: acme.x.v1.X"
    assert error.details == []


def test_protocol_and_code_names_for_logs() -> None:
    assert protocol_of("application/grpc-web+proto") == "grpc-web"
    assert protocol_of("application/grpc") == "grpc"
    assert protocol_of("application/json") == "connect"
    assert error_code(None) == "OK"
    assert error_code(ConnectError(Code.CANCELED, "x")) == "CANCELLED"
    assert error_code(RuntimeError("boom")) == "UNKNOWN"


def test_header_values_become_utf8() -> None:
    assert _utf8(b"plain") == b"plain"
    assert _utf8("é".encode()) == "é".encode()
    assert _utf8(b"\xff") == "ÿ".encode()


def test_service_prefixes() -> None:
    assert env_prefix("acme.caller.v1.CallerService") == "CALLER_"
    assert env_prefix("acme.order_history.v2.OrderHistoryService") == "ORDER_HISTORY_"
    assert client_settings_type("acme.caller.v1.CallerService") is CallerClientSettings
    other = client_settings_type("acme.billing.v1.BillingService")
    assert other.model_config.get("env_prefix") == "BILLING_"


def test_billing_target_is_read_from_its_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_TARGET", "dns:///billing:50053")
    monkeypatch.setenv("BILLING_TIMEOUT", "2.5")
    settings = client_settings_type("acme.billing.v1.BillingService")()  # type: ignore[call-arg]
    assert (settings.target, settings.timeout) == ("dns:///billing:50053", 2.5)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("gateway_services", "acme.caller.v1.CallerService,rm -rf"),
        ("gateway_cors_origins", "https://ok.example,javascript:alert(1)"),
        ("gateway_max_request_bytes", "100"),
    ],
)
def test_bad_settings_are_refused(variable: str, value: str) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings.model_validate({variable: value})


def test_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", "https://a.example, http://localhost:3000")
    monkeypatch.setenv("GATEWAY_SERVICES", "acme.caller.v1.CallerService")
    settings = GatewaySettings()
    assert settings.gateway_cors_origins == ("https://a.example", "http://localhost:3000")
    assert settings.gateway_services == ("acme.caller.v1.CallerService",)

"""gateway.details: a detail of a known type is handed to connectrpc decoded (so it writes its
JSON form, `debug`), any other as it came; and a rule's refusal is no gateway misconfiguration.
test_error_statuses.py checks the same through a real gateway."""

from __future__ import annotations

import logging

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from acme_common import PermissionDenied
from gateway.details import error_detail
from gateway.statuses import connect_error


def packed(message: error_details_pb2.ResourceInfo) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(message)
    return detail


def test_a_google_rpc_detail_is_decoded_for_its_json_form() -> None:
    info = error_details_pb2.ResourceInfo(resource_type="order", resource_name="o-1")
    detail = error_detail(packed(info))
    assert detail.type_name == "google.rpc.ResourceInfo"
    decoded = detail.value()
    assert decoded is not None  # connectrpc writes `debug` from it
    assert decoded.to_json() == '{"resourceType":"order","resourceName":"o-1"}'
    assert error_details_pb2.ResourceInfo.FromString(detail.message_bytes) == info


def test_a_detail_of_an_unknown_type_is_passed_on_byte_for_byte() -> None:
    unknown = any_pb2.Any(type_url="type.googleapis.com/acme.nowhere.v1.Thing", value=b"\x08\x01")
    detail = error_detail(unknown)
    assert detail.value() is None
    assert (detail.type_name, detail.message_bytes) == ("acme.nowhere.v1.Thing", b"\x08\x01")


def test_bytes_that_do_not_decode_as_their_type_are_passed_on_byte_for_byte() -> None:
    broken = any_pb2.Any(type_url="type.googleapis.com/google.rpc.ResourceInfo", value=b"\xff\xff")
    detail = error_detail(broken)
    assert detail.value() is None
    assert detail.message_bytes == b"\xff\xff"


def refusal(status: status_pb2.Status | None) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata()
    if status is not None:
        trailing.add("grpc-status-details-bin", status.SerializeToString())
    code = grpc.StatusCode.PERMISSION_DENIED
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, "no", None)


def test_only_a_refusal_without_details_blames_the_gateways_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="acme.gateway"):
        connect_error(refusal(None), "acme.x.v1.X", own_credentials=True)
    assert ["own credentials" in record.getMessage() for record in caplog.records] == [True]
    caplog.clear()
    rule = PermissionDenied("only the buyer may cancel", reason="NOT_ORDER_OWNER")
    details = dict(rule.to_status().trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(details, bytes)
    with caplog.at_level(logging.WARNING, logger="acme.gateway"):
        error = connect_error(
            refusal(status_pb2.Status.FromString(details)), "acme.x.v1.X", own_credentials=True
        )
    assert caplog.records == []
    assert [detail.type_name for detail in error.details] == ["google.rpc.ErrorInfo"]

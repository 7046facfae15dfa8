"""The Greeter contract's invalid inputs through the HTTP edge (services/gateway) in front of
every implementation: each INVALID_ARGUMENT case of cases.toml sent as Connect JSON over
HTTP/1.1 (a unary call as curl sends it, a stream as enveloped JSON messages) gets the same
code, message, google.rpc.BadRequest violations (decoded from the error's details) and replies
before the error as over gRPC (test_contract.py). Where an implementation differs on purpose,
its service.toml's tolerance holds here too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from acme.greeter.v1 import greeter_pb2
from tests.contracts.greeter.cases import SERVICE, Case, contract, fields_of
from tests.contracts.greeter.test_contract import hold, own_server
from tests.contracts.rules import broken
from tests.implementations import Builds, Implementation, implementations
from tests.integration.gateway_http import (
    END_STREAM,
    envelope,
    envelopes,
    post,
    violations_in_connect_error,
)
from tests.processes import GatewayProcess

pytestmark = pytest.mark.integration

CONTRACT = contract()
IMPLEMENTATIONS = implementations(SERVICE)
_DESCRIPTOR = greeter_pb2.DESCRIPTOR.services_by_name[SERVICE.rpartition(".")[2]]


def sent_after_the_refusal(case: Case) -> bool:
    """Whether the case sends a message after the first that breaks a rule. Over HTTP/1.1 the
    gateway writes every message of the body to the service, and its grpcio client's write
    racing the service's refusal can end as INTERNAL (cases.toml's note on GreetMany)."""
    method = _DESCRIPTOR.methods_by_name[case.rpc]
    request_class: Any = getattr(greeter_pb2, method.input_type.name)
    verdicts = [bool(broken(request_class(**fields))) for fields in case.requests]
    return True in verdicts[:-1]


# Each call the contract refuses as invalid, sent as a client sends it (no raw bytes; the cases
# with settings of their own, one-language-too-many, need a server of their own: not here).
CASES = [
    case
    for case in CONTRACT.cases
    if case.code == "INVALID_ARGUMENT"
    and case.raw is None
    and not case.env
    and not sent_after_the_refusal(case)
]
STREAM_HEADERS = {"content-type": "application/connect+json", "connect-protocol-version": "1"}


@dataclass
class Edge:
    implementation: Implementation
    gateway: GatewayProcess


@pytest.fixture(scope="module", params=IMPLEMENTATIONS, ids=[i.name for i in IMPLEMENTATIONS])
def edge(
    request: pytest.FixtureRequest,
    implementation_builds: Builds,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Edge]:
    """The implementation with the contract's settings, and a gateway exposing it (open: the
    gateway sends the contract's token on)."""
    implementation: Implementation = request.param
    directory: Path = tmp_path_factory.mktemp(f"edge-{implementation.name}")
    token = CONTRACT.server_env["AUTH_TOKENS"].split(",")[0]
    with own_server(implementation, implementation_builds, directory, {}) as server:
        gateway = GatewayProcess(
            directory / "gateway.log",
            {
                "INSTANCE_NAME": "contract-edge",
                "GATEWAY_SERVICES": SERVICE,
                "GREETER_TARGET": server.process.address,
                "GREETER_AUTH_TOKEN": token,
            },
        )
        gateway.start().wait_healthy()
        try:
            yield Edge(implementation, gateway)
        finally:
            code = gateway.stop()
        assert code == 0, f"the gateway exited {code}; log:\n{gateway.log_text()}"


def call(edge: Edge, case: Case) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The case's call as Connect JSON: the replies before the error, and the error."""
    method = _DESCRIPTOR.methods_by_name[case.rpc]
    request_class: Any = getattr(greeter_pb2, method.input_type.name)
    reply_class: Any = getattr(greeter_pb2, method.output_type.name)
    bodies = [
        json.dumps(json_format.MessageToDict(request_class(**fields))).encode()
        for fields in case.requests
    ]
    path = f"/{SERVICE}/{case.rpc}"
    if not method.client_streaming and not method.server_streaming:
        (body,) = bodies
        response = post(edge.gateway.address, path, body, {"content-type": "application/json"})
        assert response.status == 400, response.body
        return [], response.json()
    response = post(edge.gateway.address, path, b"".join(map(envelope, bodies)), STREAM_HEADERS)
    assert response.status == 200, response.body  # a stream's status is in its last envelope
    frames = envelopes(response.body)
    flags, payload = frames[-1]
    assert flags == END_STREAM, frames
    replies = [fields_of(json_format.Parse(data, reply_class())) for flags, data in frames[:-1]]
    return replies, json.loads(payload)["error"]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_invalid_input_through_the_edge(edge: Edge, case: Case) -> None:
    replies, error = call(edge, case)
    assert error["code"] == "invalid_argument", error
    assert replies == (case.replies or [])
    hold(edge.implementation, f"case/{case.id}/message", case.message, error["message"])
    violations = [
        {"field": field, "description": description}
        for field, description in violations_in_connect_error(error)
    ]
    hold(edge.implementation, f"case/{case.id}/violations", case.violations or [], violations)

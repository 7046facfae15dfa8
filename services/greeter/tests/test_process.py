"""Greeter as a real process (the session's, shared with tests/integration): it starts, greets
and names its instance. Everything Greeter promises for valid and invalid input (replies,
statuses, BadRequest details, metadata, health, reflection, metrics, logs, drain) is in the
contract tests, tests/contracts/greeter/cases.toml, run against this and every other
implementation of acme.greeter.v1 (services/*/service.toml)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from acme.greeter.v1 import greeter_pb2
from tests.processes import GREETER_INSTANCE, RPC_TIMEOUT

if TYPE_CHECKING:
    from acme.greeter.v1.greeter_pb2_grpc import GreeterServiceAsyncStub as Stub

pytestmark = pytest.mark.integration


async def test_say_hello_greets_and_names_its_instance(greeter_stub: Stub) -> None:
    reply = await greeter_stub.SayHello(
        greeter_pb2.SayHelloRequest(name="Ada"), timeout=RPC_TIMEOUT
    )
    assert reply.message == "Hello, Ada!"
    assert reply.served_by == GREETER_INSTANCE

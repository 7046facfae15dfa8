"""Every Caller RPC through the containers: caller's published port -> caller -> greeter
replicas over the compose network (`dns:///greeter:50051`, round_robin), Python's and Go's."""

from __future__ import annotations

import time

import grpc
import pytest

from acme.caller.v1 import caller_pb2, caller_pb2_grpc

from .conftest import RPC_TIMEOUT, Container

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

FANOUT_SETTLE_SECONDS = 10.0


def test_introduce_relays_a_greeting_from_a_greeter_replica(
    caller: caller_pb2_grpc.CallerServiceStub, greeters: list[Container]
) -> None:
    reply = caller.Introduce(caller_pb2.IntroduceRequest(name="Ada"), timeout=RPC_TIMEOUT)

    assert reply.message == "Hello, Ada!"
    assert reply.greeter_instance in {greeter.hostname for greeter in greeters}


def test_introduce_passes_the_language_through(
    caller: caller_pb2_grpc.CallerServiceStub,
) -> None:
    reply = caller.Introduce(
        caller_pb2.IntroduceRequest(name="Ada", language="fr"), timeout=RPC_TIMEOUT
    )

    assert reply.message == "Bonjour, Ada !"


def test_introduce_with_an_invalid_name_is_invalid_argument(
    caller: caller_pb2_grpc.CallerServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        caller.Introduce(caller_pb2.IntroduceRequest(name="   "), timeout=RPC_TIMEOUT)

    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in (failure.value.details() or "")


def test_introduce_all_reports_every_outcome_including_a_partial_failure(
    caller: caller_pb2_grpc.CallerServiceStub, greeters: list[Container]
) -> None:
    names = ["Ada", "   ", "Grace", "tab\tname", "Alan"]  # two that greeter refuses

    reply = caller.IntroduceAll(caller_pb2.IntroduceAllRequest(names=names), timeout=RPC_TIMEOUT)

    assert (reply.succeeded, reply.failed) == (3, 2)
    assert [item.name for item in reply.introductions] == names
    by_name = {item.name: item for item in reply.introductions}
    for name in ["Ada", "Grace", "Alan"]:
        assert by_name[name].message == f"Hello, {name}!"
        assert by_name[name].greeter_instance in {greeter.hostname for greeter in greeters}
        assert by_name[name].error_code == ""
    for name in ["   ", "tab\tname"]:
        assert by_name[name].error_code == "INVALID_ARGUMENT"
        assert by_name[name].error_message
        assert by_name[name].message == ""
        assert by_name[name].greeter_instance == ""


def test_introduce_all_without_names_is_invalid_argument(
    caller: caller_pb2_grpc.CallerServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as failure:
        caller.IntroduceAll(caller_pb2.IntroduceAllRequest(names=[]), timeout=RPC_TIMEOUT)

    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_introduce_all_fans_out_over_more_than_one_greeter_replica(
    caller: caller_pb2_grpc.CallerServiceStub, greeters: list[Container]
) -> None:
    names = [f"person-{index}" for index in range(60)]
    hostnames = {greeter.hostname for greeter in greeters}
    # round_robin picks among the replicas it is connected to, and caller's channel connects
    # on its first call: the very first fan-out may all land on the first replica to connect.
    deadline = time.monotonic() + FANOUT_SETTLE_SECONDS
    while True:
        reply = caller.IntroduceAll(
            caller_pb2.IntroduceAllRequest(names=names), timeout=RPC_TIMEOUT
        )
        assert (reply.succeeded, reply.failed) == (len(names), 0)
        instances = {item.greeter_instance for item in reply.introductions}
        assert instances <= hostnames
        if len(instances) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    assert len(instances) >= 2, f"every greeting came from {instances}: no load balancing"


def test_caller_spreads_over_the_python_and_the_go_greeter(
    caller: caller_pb2_grpc.CallerServiceStub, greeters: list[Container]
) -> None:
    """Both implementations answer behind the one name, the same way: every greeting names
    the replica that made it (served_by -> greeter_instance), and the replicas cover both the
    Python service (`greeter`) and the Go one (`greeter-go`)."""
    service_of = {greeter.hostname: greeter.service for greeter in greeters}
    assert set(service_of.values()) == {"greeter", "greeter-go"}, service_of
    names = [f"person-{index}" for index in range(30)]
    answered: dict[str, set[str]] = {}  # service -> the messages its replicas sent
    deadline = time.monotonic() + FANOUT_SETTLE_SECONDS
    while set(answered) != {"greeter", "greeter-go"} and time.monotonic() < deadline:
        reply = caller.IntroduceAll(
            caller_pb2.IntroduceAllRequest(names=names, language="de"), timeout=RPC_TIMEOUT
        )
        assert (reply.succeeded, reply.failed) == (len(names), 0)
        for item in reply.introductions:
            assert item.message == f"Hallo, {item.name}!"
            answered.setdefault(service_of[item.greeter_instance], set()).add(item.message)
        time.sleep(0.2)

    print({service: len(messages) for service, messages in answered.items()})  # pytest -s
    assert set(answered) == {"greeter", "greeter-go"}, f"replies only from {sorted(answered)}"

"""Stopping one greeter replica under load: caller's clients see no failed call, the replica
drains (logs "draining" then "stopped") and exits 0 within its stop_grace_period."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import pytest

from acme.caller.v1 import caller_pb2, caller_pb2_grpc

from .conftest import RPC_TIMEOUT, Container, docker

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CLIENTS = 4  # concurrent callers
STOP_AFTER = 3.0  # seconds of traffic before the replica is stopped
TRAFFIC_AFTER_STOP = 3.0  # seconds of traffic after it has exited
MAX_DURATION = 30.0  # hard bound of the whole stream, seconds
MAX_CALLS_PER_CLIENT = 20_000  # hard bound of the calls of one client
FANOUT_EVERY = 10  # every tenth call of a client is an IntroduceAll of FANOUT_NAMES names
FANOUT_NAMES = 8


@dataclass
class Traffic:
    """What the clients saw: (call start time, greeter instance) per greeting, and failures."""

    served: list[tuple[float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, started: float, instances: list[str]) -> None:
        with self.lock:
            self.served.extend((started, instance) for instance in instances)

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)


def client(
    caller: caller_pb2_grpc.CallerServiceStub, number: int, traffic: Traffic, done: threading.Event
) -> int:
    """Calls caller back to back until done (or the bounds); returns how many calls it made."""
    deadline = time.monotonic() + MAX_DURATION
    calls = 0
    while not done.is_set() and calls < MAX_CALLS_PER_CLIENT and time.monotonic() < deadline:
        started = time.monotonic()
        name = f"client{number}-{calls}"
        try:
            if calls % FANOUT_EVERY == 0:
                names = [f"{name}-{index}" for index in range(FANOUT_NAMES)]
                reply = caller.IntroduceAll(
                    caller_pb2.IntroduceAllRequest(names=names), timeout=RPC_TIMEOUT
                )
                for item in reply.introductions:
                    if item.error_code:
                        traffic.fail(
                            f"IntroduceAll {item.name}: {item.error_code} {item.error_message}"
                        )
                traffic.record(
                    started, [i.greeter_instance for i in reply.introductions if not i.error_code]
                )
            else:
                single = caller.Introduce(
                    caller_pb2.IntroduceRequest(name=name), timeout=RPC_TIMEOUT
                )
                traffic.record(started, [single.greeter_instance])
        except grpc.RpcError as error:
            traffic.fail(f"{name}: {error.code().name} {error.details()}")
        calls += 1
    return calls


@pytest.fixture
def stopped() -> Iterator[list[Container]]:
    """Containers the test stops: started again (and healthy) afterwards, by id."""
    containers: list[Container] = []
    yield containers
    for container in containers:
        docker("start", container.id)
        container.wait_healthy()


def test_stopping_one_greeter_replica_loses_no_call_and_it_exits_cleanly(
    caller: caller_pb2_grpc.CallerServiceStub,
    greeters: list[Container],
    stopped: list[Container],
) -> None:
    traffic = Traffic()
    done = threading.Event()
    with ThreadPoolExecutor(CLIENTS) as pool:
        counts = [pool.submit(client, caller, number, traffic, done) for number in range(CLIENTS)]
        try:
            time.sleep(STOP_AFTER)
            with traffic.lock:
                serving = {instance for _, instance in traffic.served}
            busy = [greeter for greeter in greeters if greeter.hostname in serving]
            assert len(busy) >= 2, f"caller spreads its calls over {len(busy)} greeter replica(s)"
            victim = busy[0]
            stopped.append(victim)
            stop_began = time.monotonic()
            # No --time: the container's own stop timeout (compose's stop_grace_period) applies.
            docker("stop", victim.id)
            stop_ended = time.monotonic()
            time.sleep(TRAFFIC_AFTER_STOP)
        finally:
            done.set()
        total = sum(count.result() for count in counts)
    print(  # shown with `pytest -s` or on failure
        f"{total} calls by {CLIENTS} clients, {len(traffic.served)} greetings, "
        f"{len(traffic.failures)} failed; `docker stop` took {stop_ended - stop_began:.2f} s"
    )

    failures = traffic.failures
    assert failures == [], f"{len(failures)} failures in {total} calls: {failures[:10]}"
    after = [instance for started, instance in traffic.served if started > stop_ended]
    assert after, "no call was made after the replica had stopped"
    assert victim.hostname not in after
    assert set(after) <= {greeter.hostname for greeter in greeters}

    state = victim.state()
    assert state["Status"] == "exited"
    assert state["ExitCode"] == 0
    assert state["OOMKilled"] is False
    messages = [record.get("message") for record in victim.log_records()]
    assert "draining" in messages
    assert "stopped" in messages
    assert messages.index("draining") < messages.index("stopped")

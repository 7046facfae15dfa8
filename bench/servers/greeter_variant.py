"""Our real greeter (`greeter.__main__`, ServiceHost, settings, logging) with one part of the
shared stack swapped out in this process only, so that bench/profile.py --ablation can
measure what each part costs per call. Switches that exist as settings (LOG_LEVEL,
AUTH_TOKENS) are set through the environment instead.

    python -m bench.servers.greeter_variant --metrics off
    python -m bench.servers.greeter_variant --interceptor passthrough
    python -m bench.servers.greeter_variant --interceptor lean   # the proposed libs/common
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc

from acme_common import access_log, metrics, server_interceptor
from acme_common import server as server_module
from acme_common.observation import Context, Observation
from acme_common.request_ids import REQUEST_ID_HEADER, current_request_id
from acme_common.settings import ServerSettings

if TYPE_CHECKING:
    _InterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
else:
    _InterceptorBase = grpc.aio.ServerInterceptor


class NoMetric:
    """Stands in for a prometheus_client metric (and its labelled children): does nothing."""

    def labels(self, *_labels: str) -> NoMetric:
        return self

    def inc(self, _amount: float = 1.0) -> None:
        return None

    def dec(self, _amount: float = 1.0) -> None:
        return None

    def observe(self, _value: float) -> None:
        return None


class PassThroughInterceptor(_InterceptorBase):
    """The cost of having an async server interceptor at all: it only continues."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        return await continuation(handler_call_details)


_ids = itertools.count()
_ID_PREFIX = f"{os.getpid():x}-{time.time_ns() & 0xFFFFFFFF:08x}-"


class LeanObservation(Observation):
    """A prototype of the recommended per-call path (same statuses, same metric names):
    - access log: every failed call, but OK calls only 1 in LEAN_LOG_EVERY (sampled);
    - metrics: started, handled and the latency histogram; no in-flight gauge (it is
      started - handled) and no msg_received/msg_sent for unary calls (equal to those);
    - request id: the caller's x-request-id if any, else a counter-based id (no uuid4);
    - context.peer() and the log `extra` only when a line is written."""

    log_every = int(os.environ.get("LEAN_LOG_EVERY", "100"))

    def __init__(
        self,
        method: str,
        grpc_type: str,
        settings: ServerSettings,
        *,
        tracing: bool,
        shutting_down: Callable[[], bool],
    ) -> None:
        super().__init__(method, grpc_type, settings, tracing=tracing, shutting_down=shutting_down)
        self.metrics.in_flight = cast("Any", NoMetric())
        if not self.request_streaming:
            self.metrics.received = cast("Any", NoMetric())
        if not self.response_streaming:
            self.metrics.sent = cast("Any", NoMetric())
        self.calls = 0

    def begin(self, request: Any, context: Context) -> tuple[float, Any]:
        incoming = None
        for key, value in cast("Any", context.invocation_metadata()) or ():
            if key == REQUEST_ID_HEADER:
                incoming = value
                break
        current_request_id.set(incoming or f"{_ID_PREFIX}{next(_ids):x}")
        self.metrics.started.inc()
        if self.request_streaming:
            return time.perf_counter(), self.checked(request, context)
        self.metrics.received.inc()
        return time.perf_counter(), request

    def end(self, started: float, context: Context, error: BaseException | None) -> None:
        self.calls += 1
        elapsed = time.perf_counter() - started
        if error is None and context.code() is None:  # the common case: OK
            code = grpc.StatusCode.OK
            sampled = self.calls % self.log_every == 0
        else:
            code = (
                grpc.StatusCode.CANCELLED
                if error is not None and not isinstance(error, Exception)
                else cast("grpc.StatusCode | None", context.code()) or grpc.StatusCode.OK
            )
            sampled = True
        self.metrics.handled(code).inc()
        self.metrics.latency.observe(elapsed)
        line = self.access_log
        if sampled and access_log.log.isEnabledFor(line.level):
            access_log.log.log(
                line.level,
                "rpc",
                extra={
                    "method": self.method,
                    "code": code.name,
                    "duration_ms": round(elapsed * 1000, 3),
                    "peer": context.peer(),
                    "instance": line.instance,
                    "request_id": current_request_id.get(),
                    "sampled_1_in": 1 if code is not grpc.StatusCode.OK else self.log_every,
                },
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--metrics", choices=["on", "off"], default="on")
    parser.add_argument("--interceptor", choices=["full", "passthrough", "lean"], default="full")
    args = parser.parse_args()
    if args.metrics == "off":
        for name in (
            "SERVER_STARTED",
            "SERVER_HANDLED",
            "SERVER_HANDLING_SECONDS",
            "SERVER_IN_FLIGHT",
            "SERVER_MSG_RECEIVED",
            "SERVER_MSG_SENT",
        ):
            setattr(metrics, name, NoMetric())
    if args.interceptor == "lean":
        server_interceptor.ServerInterceptor.observation_type = LeanObservation
        logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if args.interceptor == "passthrough":
        server_module.ServerInterceptor = PassThroughInterceptor  # type: ignore[attr-defined,assignment]

    from greeter.__main__ import main as greeter_main

    greeter_main()


if __name__ == "__main__":
    main()

"""In-process microbenchmarks of each piece of the per-call work libs/common adds, on the
real code (acme_common.server_interceptor.CallHandlers and its parts, logs, auth,
request_ids, metrics) with a stand-in ServicerContext: no sockets, no grpc machinery, so the
numbers are stable even on a noisy machine. They are lower bounds of the in-server cost
(cache and GIL effects come on top; bench/profile.py --ablation measures that).

    python -m bench.micro            # prints a table, writes .bench/profile/micro.md
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import grpc
from pydantic import SecretStr

from acme.greeter.v1 import greeter_pb2
from acme_common import metrics
from acme_common.auth import TokenChecker
from acme_common.logs import JsonFormatter, configure_logging
from acme_common.request_ids import current_request_id, request_id_from
from acme_common.server_interceptor import CallHandlers
from acme_common.settings import ServerSettings
from bench.procs import REPO
from greeter.service import GreeterService

OUT = REPO / ".bench" / "profile"
METHOD = "/acme.greeter.v1.GreeterService/SayHello"
CALLS = 20_000
REPEATS = 5


class FakeContext:
    """What the per-call path asks of a grpc.aio.ServicerContext on a successful unary call."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:54321"

    def code(self) -> None:
        return None


def per_call_us(run: Callable[[int], None]) -> float:
    """Best of REPEATS timings of run(CALLS), in µs per call."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        run(CALLS)
        best = min(best, time.perf_counter() - started)
    return best / CALLS * 1e6


def loop_of(make: Callable[[], Awaitable[Any]]) -> Callable[[int], None]:
    """run(n): await make() n times inside one event loop run."""
    loop = asyncio.new_event_loop()

    async def many(n: int) -> None:
        for _ in range(n):
            await make()

    return lambda n: loop.run_until_complete(many(n))


@contextlib.contextmanager
def access_log(path: Path, level: str) -> Iterator[None]:
    """libs/common's logging (JSON on "stderr"), with stderr pointed at a file meanwhile."""
    saved = sys.stderr
    with path.open("w", encoding="utf-8") as sink:
        sys.stderr = sink
        try:
            configure_logging(level, "json")
        finally:
            sys.stderr = saved
        yield
    logging.getLogger().handlers.clear()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    log_file = OUT / "micro.log"
    bearer = "micro-bearer"
    metadata = (("authorization", f"Bearer {bearer}"), ("user-agent", "grpc-python/1.85"))
    context: Any = FakeContext(metadata)
    request = greeter_pb2.SayHelloRequest(name="Ada")
    servicer = GreeterService("micro", 10_000)
    handler = grpc.unary_unary_rpc_method_handler(
        servicer.SayHello,
        request_deserializer=greeter_pb2.SayHelloRequest.FromString,
        response_serializer=greeter_pb2.SayHelloResponse.SerializeToString,
    )

    details: Any = type("Details", (), {"method": METHOD, "invocation_metadata": metadata})()
    settings = ServerSettings(
        instance_name="micro", auth_tokens=(SecretStr(bearer),), access_log="all", grpc_port=0
    )

    def call_handlers(metrics: bool = True) -> CallHandlers:
        handlers = CallHandlers(
            settings, tracing=False, shutting_down=lambda: False, metrics=metrics
        )
        handlers.add_registered_method_handlers(METHOD.split("/")[1], {"SayHello": handler})
        return handlers

    def observed(metrics: bool = True) -> Callable[[Any, Any], Awaitable[Any]]:
        """The per-call path of a server: CallHandlers.service (token check, request id) and
        the wrapped handler, with no request id set yet as in grpc's new task per RPC."""
        handlers = call_handlers(metrics)
        handlers.service(details)  # builds (and caches) the wrapped handler

        async def call(request: Any, context: Any) -> Any:
            current_request_id.set(None)  # as in a new RPC's task
            served = cast("grpc.RpcMethodHandler[Any, Any]", handlers.service(details))
            behavior = cast("Callable[[Any, Any], Awaitable[Any]]", served.unary_unary)
            return await behavior(request, context)

        return call

    rows: list[tuple[str, float]] = []

    def add(name: str, run: Callable[[int], None]) -> float:
        value = per_call_us(run)
        rows.append((name, value))
        print(f"micro: {value:8.2f} µs/call  {name}", flush=True)
        return value

    bare = add("handler alone: await GreeterService.SayHello", loop_of(
        lambda: servicer.SayHello(request, context)))  # fmt: skip
    with access_log(log_file, "INFO"):
        full = observed()
        add("wrapped handler, full (metrics + request id + JSON access log)",
            loop_of(lambda: full(request, context)))  # fmt: skip
    with access_log(log_file, "WARNING"):
        quiet = observed()
        add("  same, access log off (LOG_LEVEL=WARNING)", loop_of(lambda: quiet(request, context)))
    with access_log(log_file, "WARNING"):
        bare_wrap = observed(metrics=False)
        add("  same, access log and metrics off (the wrapper itself)",
            loop_of(lambda: bare_wrap(request, context)))  # fmt: skip

    record_args = ("acme.access", logging.INFO, __file__, 1, "rpc", None, None)
    extra = {"method": METHOD, "code": "OK", "duration_ms": 0.123, "peer": "ipv4:127.0.0.1:1",
             "instance": "micro", "request_id": uuid.uuid4().hex}  # fmt: skip
    with access_log(log_file, "INFO"):
        logger = logging.getLogger("acme.access")
        formatter = JsonFormatter()
        record = logging.LogRecord(*record_args)
        record.__dict__.update(extra)
        stream_handler = cast("logging.StreamHandler[Any]", logging.getLogger().handlers[0])
        line = formatter.format(record) + "\n"

        def log_line(n: int) -> None:
            for _ in range(n):
                logger.log(logging.INFO, "rpc", extra=extra)

        def format_line(n: int) -> None:
            for _ in range(n):
                formatter.format(record)

        def make_record(n: int) -> None:
            for _ in range(n):
                logging.LogRecord(*record_args)

        def write_line(n: int) -> None:
            for _ in range(n):
                stream_handler.stream.write(line)
                stream_handler.flush()

        add("access log: log.log(INFO, 'rpc', extra=...) end to end", log_line)
        add("  of which JsonFormatter.format", format_line)
        add("  of which LogRecord creation", make_record)
        add("  of which write + flush of the line (to a file)", write_line)
    labels = metrics.method_labels(METHOD, "unary")
    counter = metrics.SERVER_STARTED.labels(*labels)
    histogram = metrics.SERVER_HANDLING_SECONDS.labels(*labels)
    checker = TokenChecker([SecretStr(bearer)])

    def count(n: int) -> None:
        for _ in range(n):
            counter.inc()

    def observe(n: int) -> None:
        for _ in range(n):
            histogram.observe(0.0005)

    def request_ids(n: int) -> None:
        for _ in range(n):
            request_id_from(metadata)

    def check_token(n: int) -> None:
        for _ in range(n):
            checker.accepts(metadata)

    add("metrics: one Counter.inc (5 per call: started, in_flight +/-, received, sent, "
        "handled)", count)  # fmt: skip
    add("metrics: one Histogram.observe (1 per call)", observe)
    add("request id: request_id_from(metadata) without x-request-id", request_ids)
    add("auth: TokenChecker.accepts(metadata), 1 token", check_token)
    handlers = call_handlers()

    def service(n: int) -> None:
        for _ in range(n):
            handlers.service(details)

    add("CallHandlers.service (cached handlers + token check + request id)", service)

    lines = [
        f"Microbenchmarks (python {sys.version.split()[0]}, best of {REPEATS} x {CALLS} calls; "
        f"the handler alone: {bare:.2f} µs/call)",
        "",
        "| piece | µs/call |",
        "|---|---:|",
        *(f"| {name} | {value:.2f} |" for name, value in rows),
    ]
    (OUT / "micro.md").write_text("\n".join(lines) + "\n")
    print(f"micro: wrote {OUT / 'micro.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

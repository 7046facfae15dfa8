"""The server under test of `connectconformance --mode server` (docs/testing.md):

    python -m tests.conformance.launcher        (from the repository root)

reads a ServerCompatRequest from stdin (a 4-byte big-endian length, then the message), starts
the conformance service (service.py, on acme_common's server stack) and the gateway in front
of it, each as its own process through its normal entry point and environment variables
(`python -m gateway` with GATEWAY_SERVICES=connectrpc.conformance.v1.ConformanceService and
CONFORMANCE_TARGET), writes a ServerCompatResponse naming the gateway's address to stdout,
and stops both when connectconformance stops it (SIGTERM) or goes away, on SIGINT, or as soon
as either of them exits (then with code 1).

The stubs are the directory in ACME_CONFORMANCE_STUBS (the test generates them once), else
generated into a temporary directory. The processes' logs go to ACME_CONFORMANCE_LOGS (a
directory), else a temporary one; a process that fails to start has its log printed to stderr,
which connectconformance shows.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from acme_devkit.processes import ServiceError, ServiceProcess
from tests.conformance import EDGE_DEFAULT_TIMEOUT, stubs

ROOT = Path(__file__).resolve().parents[2]
LOGS_VARIABLE = "ACME_CONFORMANCE_LOGS"
# connectconformance waits 10 s for the response; both processes start at once, so this is
# the start of the slower one, on a loaded 2-core machine.
READY_TIMEOUT = 9.0
STOP_TIMEOUT = 4.0  # connectconformance kills the launcher 5 s after its SIGTERM
GRACE_PERIOD = "1"  # seconds the processes give calls in flight when stopped
BODY_TIMEOUT = "2"  # seconds (GATEWAY_BODY_TIMEOUT; 10 by default)
SERVICE_MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # what the gateway's channel accepts


def read_request(messages: Any) -> Any:
    """The ServerCompatRequest on stdin."""
    stdin = sys.stdin.buffer
    header = stdin.read(4)
    if len(header) != 4:
        raise SystemExit("launcher: no ServerCompatRequest on stdin")
    (size,) = struct.unpack(">I", header)
    request = messages.ServerCompatRequest()
    request.ParseFromString(stdin.read(size))
    return request


def write_response(response: Any) -> None:
    data = response.SerializeToString()
    sys.stdout.buffer.write(struct.pack(">I", len(data)) + data)
    sys.stdout.buffer.flush()


def processes(stubs_dir: Path, logs: Path, request: Any) -> tuple[ServiceProcess, ServiceProcess]:
    """The conformance service and the gateway exposing it, not started yet."""
    python_path = os.pathsep.join([str(stubs_dir), str(ROOT)])
    service = ServiceProcess.python_module(
        "tests.conformance.service",
        logs / f"{os.getpid()}-service.log",
        {
            "PYTHONPATH": python_path,
            "GRPC_GRACE_PERIOD": GRACE_PERIOD,
            "ACCESS_LOG": "errors",
            # Its replies echo the requests: a client stream of two 200 KiB messages (the
            # suite's message size limit) is answered with more than 400 KiB.
            "GRPC_MAX_MESSAGE_BYTES": str(SERVICE_MAX_MESSAGE_BYTES),
        },
        name="conformance-service",
    )
    gateway_env = {
        "PYTHONPATH": python_path,
        "GATEWAY_SERVICES": stubs.SERVICE,
        "CONFORMANCE_TARGET": service.address,
        "CONFORMANCE_TIMEOUT": str(EDGE_DEFAULT_TIMEOUT),
        "GATEWAY_GRACE_PERIOD": GRACE_PERIOD,
        # An answer given before the request body's end holds back its own end until the body
        # is in, at most this long (gateway/bodies.py): a full-duplex client refused for its
        # first message waits for the answer before it sends more, so each such case lasts
        # the body timeout. The suite's bodies arrive within milliseconds.
        "GATEWAY_BODY_TIMEOUT": BODY_TIMEOUT,
        "ACCESS_LOG": "errors",
    }
    if request.message_receive_limit:
        gateway_env["GATEWAY_MAX_REQUEST_BYTES"] = str(request.message_receive_limit)
    gateway = ServiceProcess.gateway(logs / f"{os.getpid()}-gateway.log", gateway_env)
    return service, gateway


def main() -> None:
    stubs_dir = Path(
        os.environ.get(stubs.STUBS_VARIABLE) or stubs.generate(Path(tempfile.mkdtemp()))
    )
    logs = Path(os.environ.get(LOGS_VARIABLE) or tempfile.mkdtemp(prefix="conformance-logs-"))
    messages = stubs.load(stubs_dir, "server_compat_pb2")
    request = read_request(messages)
    if request.use_tls:
        raise SystemExit("launcher: the gateway serves plaintext only (config.yaml: no TLS)")
    parent = os.getppid()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service, gateway = processes(stubs_dir, logs, request)
    code = 0
    try:
        service.start()
        gateway.start()
        try:
            service.wait_ready(timeout=READY_TIMEOUT)
            gateway.wait_ready(gateway.http_health, timeout=READY_TIMEOUT)
        except ServiceError as error:
            print(f"launcher: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        host, port = gateway.address.rsplit(":", 1)
        write_response(messages.ServerCompatResponse(host=host, port=int(port)))
        while not stop.wait(0.2):
            if service.returncode is not None or gateway.returncode is not None:
                print(f"launcher: {service!r} or {gateway!r} exited early", file=sys.stderr)
                code = 1
                break
            if os.getppid() != parent:
                # connectconformance is gone without stopping us (killed, or stopped by a
                # signal it does not handle): nobody will.
                break
    finally:
        started = [process for process in (gateway, service) if process.started]
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            process.stop(STOP_TIMEOUT / len(started))
    raise SystemExit(code)


if __name__ == "__main__":
    main()

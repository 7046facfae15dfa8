"""`grpc-health-probe`: exit 0 when a server's grpc.health.v1 service reports SERVING.

Used by container HEALTHCHECKs and the local stack runner; needs nothing but grpcio.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check_health(address: str, service: str = "", timeout: float = 2.0) -> str:
    """The serving status name of service at address, or the RPC failure's code name."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            return str(error.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def default_address() -> str:
    """127.0.0.1:$ADMIN_PORT when it is set (plaintext even where the main port speaks TLS),
    else 127.0.0.1:$GRPC_PORT (container images set it), else 127.0.0.1:50051."""
    port = os.environ.get("ADMIN_PORT") or os.environ.get("GRPC_PORT") or "50051"
    return f"127.0.0.1:{port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grpc-health-probe", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--addr",
        default=default_address(),
        help="host:port of the server (default: 127.0.0.1:$ADMIN_PORT, else $GRPC_PORT)",
    )
    parser.add_argument("--service", default="", help="service name; empty = the whole server")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a reply")
    args = parser.parse_args(argv)
    status = check_health(args.addr, args.service, args.timeout)
    print(f"{args.addr} {args.service or '(server)'}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())

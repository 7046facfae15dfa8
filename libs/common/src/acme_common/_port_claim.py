"""The port of a GRPC_WORKERS supervisor, kept for its own workers."""

from __future__ import annotations

import socket


class PortTaken(Exception):
    """Another server listens on the port, or another supervisor holds it."""


def claim_port(host: str, port: int) -> socket.socket:
    """Make sure only this supervisor's workers will share host:port; returns the claim, to
    keep open while they run.

    SO_REUSEPORT lets any process of the same user that also sets it join a port, and the
    kernel would hand it part of the connections; with one worker (no SO_REUSEPORT) the kernel
    refuses a second server. So: (1) a server already listening is found by binding the port
    without SO_REUSEPORT; (2) a second supervisor starting at the same time is kept out by an
    abstract Unix socket named after the port (one per network namespace, like the port, and
    released by the kernel however the supervisor ends). Other programs that set SO_REUSEPORT
    themselves (grpc does by default) cannot be kept out this way.

    Raises PortTaken."""
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        claim.bind(f"\0acme-grpc-port-{port}")
    except OSError:
        claim.close()
        raise PortTaken(f"port {port} is held by another GRPC_WORKERS supervisor") from None
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, protocol, _, address in addresses:
            with socket.socket(family, kind, protocol) as probe:
                # SO_REUSEADDR: a closed predecessor's TIME_WAIT connections are no conflict.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
    except OSError as error:
        claim.close()
        raise PortTaken(f"another server listens on {host}:{port} ({error.strerror})") from None
    return claim

"""port_claim: a GRPC_WORKERS supervisor holds its port against other servers."""

from __future__ import annotations

import socket

import pytest

from acme_common._port_claim import PortTaken, claim_port


def listening_port() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    return listener


def test_a_free_port_is_claimed_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        claim_port("127.0.0.1", port),
        pytest.raises(PortTaken, match="another GRPC_WORKERS supervisor"),
    ):
        claim_port("127.0.0.1", port)
    claim_port("127.0.0.1", port).close()  # released with the claim


def test_a_port_another_server_listens_on_is_refused() -> None:
    with listening_port() as listener:
        port = listener.getsockname()[1]
        with pytest.raises(PortTaken, match="another server listens"):
            claim_port("127.0.0.1", port)

"""gRPC calls as raw HTTP/2 (with the h2 library), for what grpcio clients refuse to send:
metadata that is legal to receive but not to send (non-ASCII values), odd headers, and
streams reset right after they open ("rapid reset", CVE-2023-44487)."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events

READ_BYTES = 65_536


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def request_headers(
    path: str, metadata: tuple[tuple[str, str | bytes], ...] = ()
) -> list[tuple[bytes, bytes]]:
    """The HTTP/2 request headers of a gRPC call to path with this extra metadata."""
    headers = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path.encode()),
        (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]
    for key, value in metadata:
        headers.append((key.encode(), value.encode() if isinstance(value, str) else value))
    return headers


@dataclass
class RawReply:
    """What the server sent back on one stream."""

    headers: dict[str, str] = field(default_factory=dict)
    trailers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    reset: int | None = None  # RST_STREAM error code, if the server reset the stream

    @property
    def status(self) -> int | None:
        """grpc-status (from the trailers, or a trailers-only reply's headers)."""
        value = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return None if value is None else int(value)

    @property
    def message(self) -> str:
        """grpc-message, percent-decoded (gRPC over HTTP/2 spec)."""
        return unquote(self.trailers.get("grpc-message", self.headers.get("grpc-message", "")))


class RawConnection:
    """One plaintext HTTP/2 connection speaking gRPC without any of grpcio's checks."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False
            )
        )
        self.replies: dict[int, RawReply] = {}
        self.ended: set[int] = set()
        self.terminated: h2.events.ConnectionTerminated | None = None

    @classmethod
    async def open(cls, address: str) -> RawConnection:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        connection = cls(reader, writer)
        connection.h2.initiate_connection()
        await connection.flush()
        return connection

    async def flush(self) -> None:
        self.writer.write(self.h2.data_to_send())
        await self.writer.drain()

    def send_call(
        self,
        path: str,
        message: bytes,
        metadata: tuple[tuple[str, str | bytes], ...] = (),
        *,
        reset: bool = False,
    ) -> int:
        """Queue a unary call (HEADERS + DATA with END_STREAM); reset: RST_STREAM(CANCEL) it
        at once. Returns the stream id; call flush() to send."""
        stream = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream, request_headers(path, metadata))
        self.h2.send_data(stream, grpc_frame(message), end_stream=True)
        if reset:
            self.h2.reset_stream(stream, error_code=h2.errors.ErrorCodes.CANCEL)
        else:
            self.replies[stream] = RawReply()
        return stream

    async def receive(self, within: float) -> None:
        """Read and process what the server sent for up to `within` s, or until every open
        call ended or the connection was closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.terminated is None and set(self.replies) - self.ended:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                data = await asyncio.wait_for(self.reader.read(READ_BYTES), remaining)
            except TimeoutError:
                return
            if not data:
                return
            self.process(data)
            await self.flush()

    def process(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                target = self.replies.get(event.stream_id)
                if target is not None:
                    fields = {k.decode(): v.decode("utf-8", "replace") for k, v in event.headers}
                    if isinstance(event, h2.events.ResponseReceived):
                        target.headers.update(fields)
                    else:
                        target.trailers.update(fields)
            elif isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if event.stream_id in self.replies:
                    self.replies[event.stream_id].data += event.data
            elif isinstance(event, h2.events.StreamEnded):
                self.ended.add(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                if event.stream_id in self.replies:
                    self.replies[event.stream_id].reset = event.error_code
                self.ended.add(event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.terminated = event

    def close(self) -> None:
        self.writer.close()


async def raw_unary_call(
    address: str,
    path: str,
    message: bytes,
    metadata: tuple[tuple[str, str | bytes], ...] = (),
    within: float = 5.0,
) -> RawReply:
    """One unary call as raw HTTP/2; the reply as far as it got within `within` seconds."""
    connection = await RawConnection.open(address)
    try:
        stream = connection.send_call(path, message, metadata)
        await connection.flush()
        await connection.receive(within)
        return connection.replies[stream]
    finally:
        connection.close()

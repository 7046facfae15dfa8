"""A TCP proxy on loopback that forwards HTTP/2 (plaintext, prior knowledge, as gRPC speaks
it) frame by frame between clients and one upstream server, and records every frame's type,
flags and, for GOAWAY and RST_STREAM, its error code: what tests need to see pings, GOAWAYs
and resets on the wire. It can also swallow frames (e.g. PING acknowledgements) to play a
dead peer. Frames are parsed with hyperframe (the h2 project's frame layer)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER_BYTES = 9

# RFC 9113 section 7: the error codes of GOAWAY and RST_STREAM.
ERROR_CODES = {
    0x0: "NO_ERROR",
    0x1: "PROTOCOL_ERROR",
    0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT",
    0x5: "STREAM_CLOSED",
    0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM",
    0x8: "CANCEL",
    0x9: "COMPRESSION_ERROR",
    0xA: "CONNECT_ERROR",
    0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY",
    0xD: "HTTP_1_1_REQUIRED",
}

# RFC 9113 section 6: frame type names.
FRAME_TYPES = {
    0x0: "DATA",
    0x1: "HEADERS",
    0x2: "PRIORITY",
    0x3: "RST_STREAM",
    0x4: "SETTINGS",
    0x5: "PUSH_PROMISE",
    0x6: "PING",
    0x7: "GOAWAY",
    0x8: "WINDOW_UPDATE",
    0x9: "CONTINUATION",
}

TO_SERVER = "client->server"
TO_CLIENT = "server->client"


@dataclass(frozen=True)
class SeenFrame:
    """One frame that passed (or was swallowed): direction, RFC 9113 type name, flags."""

    connection: int
    direction: str
    kind: str  # "PING", "GOAWAY", "HEADERS", ...
    flags: frozenset[str]
    stream_id: int
    error: str | None = None  # GOAWAY and RST_STREAM: the error code's name
    debug_data: bytes = b""  # GOAWAY: e.g. b"too_many_pings"
    dropped: bool = False
    at: float = 0.0  # time.monotonic() when it passed
    length: int = 0  # bytes of the frame's payload


Drop = Callable[[str, Frame], bool]


@dataclass
class Http2Tap:
    """Counts what flows between clients and `upstream`; `drop(direction, frame)` True
    swallows a frame."""

    upstream: tuple[str, int]
    drop: Drop | None = None
    frames: list[SeenFrame] = field(default_factory=list)
    connections: int = 0
    closed: list[tuple[int, str]] = field(default_factory=list)  # (connection, who closed)

    def seen(
        self, kind: str, direction: str | None = None, *, ack: bool | None = None
    ) -> list[SeenFrame]:
        """Frames of this kind (and direction; ack: only with/without the ACK flag)."""
        return [
            frame
            for frame in self.frames
            if frame.kind == kind
            and (direction is None or frame.direction == direction)
            and (ack is None or ("ACK" in frame.flags) == ack)
        ]

    async def _pipe(
        self,
        number: int,
        direction: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            if direction == TO_SERVER:
                writer.write(await reader.readexactly(len(PREFACE)))
            while True:
                header = await reader.readexactly(HEADER_BYTES)
                frame, length = Frame.parse_frame_header(memoryview(header))
                body = await reader.readexactly(length)
                frame.parse_body(memoryview(body))
                dropped = self.drop is not None and self.drop(direction, frame)
                self.frames.append(_describe(number, direction, frame, dropped, length))
                if not dropped:
                    writer.write(header + body)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed.append((number, "client" if direction == TO_SERVER else "server"))
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(number, TO_SERVER, reader, up_writer),
            self._pipe(number, TO_CLIENT, up_reader, writer),
        )


def _describe(number: int, direction: str, frame: Frame, dropped: bool, length: int) -> SeenFrame:
    error: str | None = None
    debug = b""
    if isinstance(frame, GoAwayFrame | RstStreamFrame):
        error = ERROR_CODES.get(frame.error_code, hex(frame.error_code))
    if isinstance(frame, GoAwayFrame):
        debug = bytes(frame.additional_data)
    return SeenFrame(
        connection=number,
        direction=direction,
        kind=FRAME_TYPES.get(frame.type or 0, str(frame.type)),
        flags=frozenset(frame.flags),
        stream_id=frame.stream_id,
        error=error,
        debug_data=debug,
        dropped=dropped,
        at=time.monotonic(),
        length=length,
    )


@asynccontextmanager
async def http2_tap(upstream: str, drop: Drop | None = None) -> AsyncIterator[tuple[str, Http2Tap]]:
    """A tap in front of `host:port`: yields (the tap's own address, the tap)."""
    host, port = upstream.rsplit(":", 1)
    tap = Http2Tap((host, int(port)), drop)
    tasks: set[asyncio.Task[None]] = set()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(tap._serve(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    address = server.sockets[0].getsockname()
    try:
        yield f"{address[0]}:{address[1]}", tap
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

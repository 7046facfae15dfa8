"""The request body's lifetime around the application, as ASGI middleware:

- a body deadline: until the response starts, the body must arrive within GATEWAY_BODY_TIMEOUT
  seconds of the request, else the application sees a disconnect (its call ends, the slow
  client's connection or stream is freed). hypercorn's own read_timeout cannot do this: it
  counts silence between reads, which a client dripping one byte a second never reaches, and
  it would also cut long server streams whose client has nothing more to send.
- an answer sent before the body was read to its end (404, 415, 401, a bad timeout, a
  message over the size limit, ...) holds back its end (of stream) until the rest of the body
  has come in (at most DRAIN_MESSAGES x GATEWAY_MAX_REQUEST_BYTES more bytes, read and
  dropped, within GATEWAY_BODY_TIMEOUT seconds); what it says goes out at once. Over HTTP/2,
  hypercorn 0.18 forgets a stream once its response is complete, and the client's DATA that
  then arrives raises KeyError in its HTTP/2 protocol, which closes the whole connection with
  every other stream on it (pgjones/hypercorn#329, unmerged; 0.18.0 is the newest release).
  Over HTTP/1.1 a server closes the connection when the response ends before the request;
  closing with unread request bytes makes the kernel reset it, and a client still sending
  loses the answer it has not read yet (found by the Connect conformance suite: `incomplete
  envelope`, `use of closed network connection`); with the body read, the connection even
  stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_DISCONNECT: Message = {"type": "http.disconnect"}
# Request messages' worth of bytes an early answer waits for: a stream refused for its first
# message (over the size limit) may have one more of that size on its way (the conformance
# suite's first-request-exceeds-server-limit cases send 2 x 200 KiB).
DRAIN_MESSAGES = 4


class _Body:
    """The request's receive(), tracking the end of the body and the body deadline (which
    stops counting once the response has started)."""

    def __init__(self, receive: Receive, deadline: float) -> None:
        """deadline: on the event loop's clock."""
        self._receive = receive
        self.deadline = deadline
        self.done = False
        self.response_started = False

    async def receive(self) -> Message:
        if self.done or self.response_started:
            message = await self._receive()
        else:
            try:
                async with asyncio.timeout_at(self.deadline):
                    message = await self._receive()
            except TimeoutError:
                self.done = True
                return _DISCONNECT
        self._note(message)
        return message

    def _note(self, message: Message) -> None:
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done = True

    async def drain(self, max_bytes: int) -> None:
        """Read and drop the rest of the body: until its end or max_bytes (the caller bounds
        the time)."""
        read = 0
        while not self.done and read <= max_bytes:
            message = await self._receive()
            read += len(message.get("body", b""))
            self._note(message)


def _final(message: Message, trailers: bool) -> bool:
    """Whether message completes the response (ASGI HTTP: the last body message, or the last
    trailers message when the response announced trailers)."""
    if message["type"] == "http.response.body":
        return not trailers and not message.get("more_body", False)
    return message["type"] == "http.response.trailers" and not message.get("more_trailers", False)


class RequestBodies:
    """See the module docstring. max_bytes: GATEWAY_MAX_REQUEST_BYTES; timeout: seconds
    (GATEWAY_BODY_TIMEOUT)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(receive, asyncio.get_running_loop().time() + self.timeout)
        trailers = False

        async def guarded_send(message: Message) -> None:
            nonlocal trailers
            if message["type"] == "http.response.start":
                body.response_started = True
                trailers = bool(message.get("trailers", False))
            if not body.done and _final(message, trailers):
                if message.get("body"):
                    # The answer itself goes out now; only its end of stream waits.
                    await send({**message, "more_body": True})
                    message = {"type": "http.response.body", "body": b"", "more_body": False}
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.timeout):
                        await body.drain(DRAIN_MESSAGES * self.max_bytes)
            await send(message)

        await self.app(scope, body.receive, guarded_send)

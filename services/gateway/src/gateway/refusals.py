"""Calls the gateway refuses before connectrpc sees them, each with a clear, bounded answer:
gRPC (application/grpc) over HTTP/1.1, which needs HTTP/2 trailers (connectrpc would fail it
as `unknown` with an ERROR traceback), and a method of a service this gateway does not expose
(which would otherwise reach the web page's static files and get their 405)."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

# /<package>.<Service>/<Method>: the path of an RPC (gRPC over HTTP/2, PROTOCOL-HTTP2.md).
RPC_PATH = re.compile(r"/([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*\.[A-Z][A-Za-z0-9]*)/[A-Z][A-Za-z0-9]*")
GRPC_UNIMPLEMENTED = b"12"


def _content_type(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value).decode("latin-1").lower()
    return ""


def _is_grpc(content_type: str) -> bool:
    """application/grpc and application/grpc+<codec>, not gRPC-Web."""
    return content_type.startswith("application/grpc") and not content_type.startswith(
        "application/grpc-web"
    )


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class GrpcNeedsHttp2:
    """Answers application/grpc requests over HTTP/1.x with 415 Unsupported Media Type, a text
    naming HTTP/2; gRPC-Web and Connect work over HTTP/1.1."""

    MESSAGE = (
        b"gRPC (application/grpc) needs HTTP/2; over HTTP/1.1 use gRPC-Web "
        b"(application/grpc-web) or Connect (application/json, application/proto)\n"
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("http_version", "1.1").startswith("1")
            and _is_grpc(_content_type(scope))
        ):
            text = (b"content-type", b"text/plain; charset=utf-8")
            await _answer(send, 415, [text], self.MESSAGE)
            return
        await self.app(scope, receive, send)


class NotExposed:
    """In front of `fallback` (the static files): an RPC path of a service that is not exposed
    is answered `unimplemented`, naming the service: for gRPC and gRPC-Web a trailers-only
    answer (grpc-status 12), for Connect HTTP 404 with a Connect error body (Connect maps 404
    to unimplemented, connectrpc.com/docs/protocol#http-to-error-code)."""

    def __init__(self, fallback: ASGIApp) -> None:
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = RPC_PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await self.fallback(scope, receive, send)
            return
        message = f"{match.group(1)[:100]} is not exposed by this gateway (GATEWAY_SERVICES)"
        content_type = _content_type(scope)
        status = [
            (b"grpc-status", GRPC_UNIMPLEMENTED),
            (b"grpc-message", quote(message, safe=" ()").encode()),
        ]
        if content_type.startswith("application/grpc-web"):
            # gRPC-Web allows the status in the headers (trailers-only), over HTTP/1.1 too.
            await _answer(send, 200, [(b"content-type", b"application/grpc-web"), *status], b"")
            return
        if content_type.startswith("application/grpc"):
            # grpcio refuses the status in headers followed by an empty DATA frame (which is
            # how an ASGI server may end a stream), so the status goes in real trailers.
            headers = [(b"content-type", b"application/grpc")]
            await send(
                {"type": "http.response.start", "status": 200, "headers": headers, "trailers": True}
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            await send(
                {"type": "http.response.trailers", "headers": status, "more_trailers": False}
            )
            return
        body = json.dumps({"code": "unimplemented", "message": message}).encode()
        await _answer(send, 404, [(b"content-type", b"application/json")], body)

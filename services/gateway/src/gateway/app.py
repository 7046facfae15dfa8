"""The gateway's ASGI application: each exposed service at `/<service full name>/<Method>`
(Connect, gRPC-Web and gRPC, by connectrpc), `/healthz`, and the web page at `/`, behind CORS
for the configured origins."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.forwarding import ServiceApplication
from gateway.refusals import GrpcNeedsHttp2, NotExposed

STATIC = Path(__file__).parent / "static"

# What browsers may send and read cross-origin: the Connect, gRPC-Web and gRPC headers
# (connectrpc.com/docs/cors), the bearer token and the request id.
ALLOWED_HEADERS = (
    "Content-Type",
    "Connect-Protocol-Version",
    "Connect-Timeout-Ms",
    "Grpc-Timeout",
    "X-Grpc-Web",
    "X-User-Agent",
    "Authorization",
    "X-Request-Id",
)
EXPOSED_HEADERS = ("Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "X-Request-Id")
PREFLIGHT_MAX_AGE = 7200  # seconds browsers may cache a preflight answer (Chromium's cap)


def _utf8(value: bytes) -> bytes:
    """value as UTF-8: unchanged when it is, else read as ISO-8859-1 (RFC 9110 5.5: field
    values are octets, historically ISO-8859-1) and encoded as UTF-8."""
    if value.isascii():
        return value
    try:
        value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1").encode()
    return value


class Utf8Headers:
    """Re-encodes header values that are not UTF-8 (see _utf8) before connectrpc, which
    decodes every header as UTF-8 and otherwise fails the call as `unknown` with an ERROR
    traceback. Whoever reads such a value then judges it: a request id that is not visible
    ASCII is replaced, a token does not match."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers: list[tuple[bytes, Any]] = scope["headers"]
            if not all(value.isascii() for _, value in headers):
                scope = {**scope, "headers": [(key, _utf8(value)) for key, value in headers]}
        await self.app(scope, receive, send)


# Headers whose value connectrpc repeats in its error message when it refuses it. Every valid
# value is far shorter (a timeout has at most 10 digits, an encoding is one short token), so
# cutting longer ones keeps them invalid and the answer within the project's 1 KiB bound.
ECHOED_HEADERS = frozenset({b"connect-timeout-ms", b"grpc-timeout", b"content-encoding"})
MAX_ECHOED_VALUE = 64  # bytes


class BoundedEchoes:
    """Cuts the values of ECHOED_HEADERS to MAX_ECHOED_VALUE bytes before connectrpc, which
    otherwise echoes an 8,000-digit timeout back in full."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers: list[tuple[bytes, Any]] = scope["headers"]
            if any(len(v) > MAX_ECHOED_VALUE and k in ECHOED_HEADERS for k, v in headers):
                bounded = [
                    (key, value[:MAX_ECHOED_VALUE] if key in ECHOED_HEADERS else value)
                    for key, value in headers
                ]
                scope = {**scope, "headers": bounded}
        await self.app(scope, receive, send)


# What a browser needs to be told about the page (OWASP Secure Headers): its own origin only
# for scripts and calls (the page calls the gateway it came from), its inline <style> and
# empty data: icon, no framing (clickjacking), no MIME sniffing, no referrer sent elsewhere.
# The browser test fails on any policy violation the page's console reports.
PAGE_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class PageHeaders:
    """Adds PAGE_HEADERS to every answer of the static page's files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *PAGE_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def health(_request: Request) -> JSONResponse:
    """`/healthz`: 200 SERVING. From SIGTERM on, Envoy's health check filter answers 503 in
    its place (a readiness probe's answer: take this replica out of the load balancer)."""
    return JSONResponse({"status": "SERVING"})


def create_app(
    services: Sequence[ServiceApplication],
    cors_origins: Sequence[str],
) -> Starlette:
    """The whole HTTP surface. cors_origins: origins allowed to call cross-origin (`*` any);
    empty = same origin only (no CORS headers are sent, browsers refuse other pages)."""
    routes: list[BaseRoute] = [Mount(service.path, app=service) for service in services]
    routes.append(Route("/healthz", health, methods=["GET"]))
    page = PageHeaders(StaticFiles(directory=STATIC, html=True))
    routes.append(Mount("/", app=NotExposed(page)))
    middleware = [
        Middleware(GrpcNeedsHttp2),
        Middleware(Utf8Headers),
        Middleware(BoundedEchoes),
        Middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=list(ALLOWED_HEADERS),
            expose_headers=list(EXPOSED_HEADERS),
            max_age=PREFLIGHT_MAX_AGE,
        ),
    ]
    return Starlette(routes=routes, middleware=middleware)

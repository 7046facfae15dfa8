"""The gateway's ASGI application: each exposed service at `/<service full name>/<Method>`
(Connect, gRPC-Web and gRPC, by connectrpc), `/healthz`, and the web page at `/`, behind CORS
for the configured origins."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.forwarding import ServiceApplication

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


class Health:
    """`/healthz`: 200 SERVING until shutdown starts, then 503 NOT_SERVING (a readiness
    probe's answer: take this replica out of the load balancer)."""

    def __init__(self) -> None:
        self.serving = True

    async def endpoint(self, _request: Request) -> JSONResponse:
        if self.serving:
            return JSONResponse({"status": "SERVING"})
        return JSONResponse({"status": "NOT_SERVING"}, status_code=503)


def create_app(
    services: Sequence[ServiceApplication], health: Health, cors_origins: Sequence[str]
) -> Starlette:
    """The whole HTTP surface. cors_origins: origins allowed to call cross-origin (`*` any);
    empty = same origin only (no CORS headers are sent, browsers refuse other pages)."""
    routes: list[BaseRoute] = [Mount(service.path, app=service) for service in services]
    routes.append(Route("/healthz", health.endpoint, methods=["GET"]))
    routes.append(Mount("/", app=StaticFiles(directory=STATIC, html=True)))
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=list(ALLOWED_HEADERS),
            expose_headers=list(EXPOSED_HEADERS),
            max_age=PREFLIGHT_MAX_AGE,
        )
    ]
    return Starlette(routes=routes, middleware=middleware)

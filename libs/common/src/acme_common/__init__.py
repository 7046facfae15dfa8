"""acme_common: what every acme gRPC service shares, and nothing else is meant to be used.

The public API is the names below (`__all__`); every module inside the package is private
(`_settings`, `_server`, the per-call path in `_call/`, TLS in `_tls/`) and may change
without notice. `libs/common/tests/test_public_api.py` fails when this surface changes by
accident. Where to look:

- run a service: `run_service(name, SettingsType, build)`, `Runtime`, `Service`,
  `ServiceHost` (in-process, for tests), `ServicerContext`; `PerCall` switches parts of the
  per-call path off (for the benchmark's ablations);
- settings: `ProcessSettings` < `ServerSettings` (subclass it per service), `ClientSettings`
  (one per target, `env_prefix`), field types `Port`, `BindHost`, `GracePeriod`,
  `DrainDelay`, `EventLoop`; `load_settings` (exit 2 naming each bad variable);
- errors a rule raises (`InvalidArgument`, `NotFound`, `FailedPrecondition`,
  `PermissionDenied`, ...: docs/errors.md) and reads (`status_details`, `field_violations`);
- outgoing calls: `create_channel`, `outgoing_timeout`;
- observability: `configure_logging`, `configure_tracing`, `serve_metrics`, `AccessLog`,
  `ServerMethodMetrics`, request ids and the bearer-token check.

Names load on first use (PEP 562 `__getattr__`): importing the package costs nothing, so the
GRPC_WORKERS supervisor (`python -m acme_common._workers`) never loads grpc or pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from acme_common._call.access_log import AccessLog
    from acme_common._call.auth import AUTHORIZATION, TokenChecker, checker_for
    from acme_common._call.handlers import PerCall
    from acme_common._call.malformed import reject_malformed
    from acme_common._call.observation import ServicerContext
    from acme_common._call.request_ids import (
        REQUEST_ID_HEADER,
        current_request_id,
        new_request_id,
        sane_request_id,
    )
    from acme_common._channels import DEADLINE_MARGIN, create_channel, outgoing_timeout
    from acme_common._errors import (
        Aborted,
        AlreadyExists,
        DeadlineExceeded,
        FailedPrecondition,
        FieldViolation,
        InvalidArgument,
        NotFound,
        OutOfRange,
        PermissionDenied,
        PreconditionViolation,
        ResourceExhausted,
        ServiceError,
        Unauthenticated,
        Unavailable,
        Unimplemented,
        echo,
        field_violations,
        status_details,
    )
    from acme_common._event_loop import EventLoop, loop_factory, running_loop_name
    from acme_common._health_probe import check_health
    from acme_common._logs import configure_logging
    from acme_common._metrics import ServerMethodMetrics, serve_metrics
    from acme_common._runner import Runtime, run_service
    from acme_common._server import Service, ServiceHost
    from acme_common._settings import (
        BindHost,
        ClientSettings,
        DrainDelay,
        GracePeriod,
        Port,
        ProcessSettings,
        ServerSettings,
        load_settings,
    )
    from acme_common._tracing import client_interceptors, configure_tracing, current_trace_id

# Where each public name lives (the TYPE_CHECKING imports above, for type checkers).
_HOMES: dict[str, tuple[str, ...]] = {
    "_call.access_log": ("AccessLog",),
    "_call.auth": ("AUTHORIZATION", "TokenChecker", "checker_for"),
    "_call.handlers": ("PerCall",),
    "_call.malformed": ("reject_malformed",),
    "_call.observation": ("ServicerContext",),
    "_call.request_ids": (
        "REQUEST_ID_HEADER",
        "current_request_id",
        "new_request_id",
        "sane_request_id",
    ),
    "_channels": ("DEADLINE_MARGIN", "create_channel", "outgoing_timeout"),
    "_errors": (
        "Aborted",
        "AlreadyExists",
        "DeadlineExceeded",
        "FailedPrecondition",
        "FieldViolation",
        "InvalidArgument",
        "NotFound",
        "OutOfRange",
        "PermissionDenied",
        "PreconditionViolation",
        "ResourceExhausted",
        "ServiceError",
        "Unauthenticated",
        "Unavailable",
        "Unimplemented",
        "echo",
        "field_violations",
        "status_details",
    ),
    "_event_loop": ("EventLoop", "loop_factory", "running_loop_name"),
    "_health_probe": ("check_health",),
    "_logs": ("configure_logging",),
    "_metrics": ("ServerMethodMetrics", "serve_metrics"),
    "_runner": ("Runtime", "run_service"),
    "_server": ("Service", "ServiceHost"),
    "_settings": (
        "BindHost",
        "ClientSettings",
        "DrainDelay",
        "GracePeriod",
        "Port",
        "ProcessSettings",
        "ServerSettings",
        "load_settings",
    ),
    "_tracing": ("client_interceptors", "configure_tracing", "current_trace_id"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "AUTHORIZATION",
    "DEADLINE_MARGIN",
    "REQUEST_ID_HEADER",
    "Aborted",
    "AccessLog",
    "AlreadyExists",
    "BindHost",
    "ClientSettings",
    "DeadlineExceeded",
    "DrainDelay",
    "EventLoop",
    "FailedPrecondition",
    "FieldViolation",
    "GracePeriod",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PerCall",
    "PermissionDenied",
    "Port",
    "PreconditionViolation",
    "ProcessSettings",
    "ResourceExhausted",
    "Runtime",
    "ServerMethodMetrics",
    "ServerSettings",
    "Service",
    "ServiceError",
    "ServiceHost",
    "ServicerContext",
    "TokenChecker",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "check_health",
    "checker_for",
    "client_interceptors",
    "configure_logging",
    "configure_tracing",
    "create_channel",
    "current_request_id",
    "current_trace_id",
    "echo",
    "field_violations",
    "load_settings",
    "loop_factory",
    "new_request_id",
    "outgoing_timeout",
    "reject_malformed",
    "run_service",
    "running_loop_name",
    "sane_request_id",
    "serve_metrics",
    "status_details",
]


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'acme_common' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"acme_common.{module}"), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)  # what help() and completion offer: the declared API

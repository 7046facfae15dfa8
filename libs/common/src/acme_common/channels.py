"""Client channels to other services: one long-lived grpc.aio channel per target, with a
service config for client-side load balancing and retries, and deadline helpers."""

from __future__ import annotations

import json
from typing import Any

import grpc

_RETRYABLE_CODES = ["UNAVAILABLE"]


def service_config(retry_services: list[str]) -> str:
    """round_robin over every resolved address; idempotent services retried on UNAVAILABLE."""
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": name} for name in retry_services],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": _RETRYABLE_CODES,
                },
            }
        ],
    }
    return json.dumps(config)


def create_channel(target: str, *, retry_services: list[str]) -> grpc.aio.Channel:
    """An insecure grpc.aio channel to target (e.g. `dns:///greeter:50051`); keep one per
    process and close it on shutdown."""
    options = [
        ("grpc.service_config", service_config(retry_services)),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    return grpc.aio.insecure_channel(target, options=options)


def outgoing_timeout(context: grpc.aio.ServicerContext[Any, Any], default: float) -> float:
    """Timeout for a downstream call: what is left of the incoming deadline, else default."""
    remaining = context.time_remaining()
    return default if remaining is None else max(remaining, 0.0)

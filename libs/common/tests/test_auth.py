"""Bearer-token auth: the constant-time check, the open methods and the refusing handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import grpc
import pytest
from pydantic import SecretStr

from acme_common._call.auth import (
    DENIED_ANY_METHOD,
    OPEN_PREFIXES,
    TokenChecker,
    checker_for,
    deny,
    is_open,
    unknown_method_handler,
)

TOKENS = (SecretStr("first-token"), SecretStr("second-token"))


@pytest.mark.parametrize(
    ("metadata", "accepted"),
    [
        ((("authorization", "Bearer first-token"),), True),
        ((("user-agent", "x"), ("authorization", "Bearer second-token")), True),
        ((("authorization", "Bearer third-token"),), False),
        ((("authorization", "first-token"),), False),  # no Bearer prefix
        ((("authorization", "bearer first-token"),), True),  # RFC 7235: scheme in any case
        ((("authorization", "BEARER second-token"),), True),
        ((("authorization", "Bearer FIRST-TOKEN"),), False),  # the token itself is exact
        ((("authorization", b"Bearer first-token"),), False),  # binary value
        ((), False),
        (None, False),
    ],
)
def test_token_checker(metadata: Any, accepted: bool) -> None:
    assert TokenChecker(TOKENS).accepts(metadata) is accepted


def test_no_tokens_means_authentication_off() -> None:
    assert checker_for(()) is None
    checker = checker_for(TOKENS)
    assert checker is not None
    assert checker.accepts([("authorization", "Bearer first-token")])


def test_health_and_reflection_are_open() -> None:
    assert OPEN_PREFIXES == ("/grpc.health.v1.", "/grpc.reflection.")
    assert is_open("/grpc.health.v1.Health/Check")
    assert is_open("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert not is_open("/acme.greeter.v1.GreeterService/SayHello")
    assert not is_open("/grpc.healthy.Service/Method")


async def test_deny_aborts_unauthenticated(make_context: Callable[..., Any]) -> None:
    context = make_context()
    with pytest.raises(grpc.aio.AbortError):
        await deny(object(), context)
    assert context.aborted == (
        grpc.StatusCode.UNAUTHENTICATED,
        "missing or invalid bearer token",
        (),
    )
    assert DENIED_ANY_METHOD.request_streaming
    assert DENIED_ANY_METHOD.response_streaming
    assert cast("object", DENIED_ANY_METHOD.stream_stream) is deny


def test_unknown_methods_are_listed_only_to_clients_that_may_call() -> None:
    checker = TokenChecker(TOKENS)
    good = [("authorization", "Bearer first-token")]
    method = "/acme.v1.Service/NoSuchMethod"
    assert unknown_method_handler(None, method, None) is None  # auth off: UNIMPLEMENTED
    assert unknown_method_handler(checker, method, good) is None
    assert unknown_method_handler(checker, method, []) is DENIED_ANY_METHOD
    assert unknown_method_handler(checker, "/grpc.health.v1.Health/Nope", []) is None

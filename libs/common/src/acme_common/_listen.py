"""A port a server was configured with that it cannot listen on (taken, or not an address of
this host): a readable line naming the variable and exit code 2, as for any bad setting
(docs/configuration.md), instead of an OSError traceback or grpc's bare RuntimeError.

Imported by the GRPC_WORKERS supervisor too, which loads next to nothing: keep it small."""

from __future__ import annotations

import sys
from typing import NoReturn

EXIT_CODE = 2  # a bad setting's exit code (load_settings)


def cannot_listen(variable: str, address: str, reason: BaseException | str) -> NoReturn:
    """Print `cannot listen on <address> (<variable>): <reason>` to stderr and exit 2."""
    if isinstance(reason, OSError) and reason.strerror:
        reason = reason.strerror  # "Address already in use", not "[Errno 98] ..."
    print(f"cannot listen on {address} ({variable}): {reason}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CODE)

"""Our real greeter (its build function, run_service, settings, logging) with one part of the
per-call path switched off through run_service's `per_call` parameter, so that
bench/profile.py --ablation and bench/instructions.py can measure what each part costs per
call. Switches that exist as settings (LOG_LEVEL, ACCESS_LOG, AUTH_TOKENS) are set through
the environment instead.

    python -m bench.servers.greeter_variant --metrics off
    python -m bench.servers.greeter_variant --wrapping off   # handlers as registered
    python -m bench.servers.greeter_variant --validation off # requests not checked against
                                                             # greeter.proto's buf.validate rules
"""

from __future__ import annotations

import argparse

from acme_common import PerCall, run_service
from greeter.service import build
from greeter.settings import GreeterSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--metrics", choices=["on", "off"], default="on")
    parser.add_argument(
        "--wrapping",
        choices=["on", "off"],
        default="on",
        help="off: no per-call path at all (no auth, request ids, metrics, access log, error "
        "translation); what remains is the stack around it (health, reflection, settings)",
    )
    parser.add_argument(
        "--validation",
        choices=["on", "off"],
        default="on",
        help="off: requests reach the handler unchecked against their buf.validate rules",
    )
    args = parser.parse_args()
    per_call = PerCall(
        wrapped=args.wrapping == "on",
        metrics=args.metrics == "on",
        validation=args.validation == "on",
    )
    run_service("greeter", GreeterSettings, build, per_call=per_call)


if __name__ == "__main__":
    main()

"""`acmectl`: command-line client for the acme services and runner of the local stack."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
from google.protobuf import json_format

from acmectl import calls
from acmectl.reflection import NotDescribed
from acmectl.services import DiscoveryError, client_prefix, discover
from acmectl.stack import describe, run_stack

Command = Callable[[grpc.Channel, argparse.Namespace], None]
DEMO = "acme.caller.v1.CallerService/Introduce"  # the stack's demo call, when it serves it


def port_assignment(text: str) -> tuple[str, int]:
    """`NAME=PORT` of --port."""
    name, _, port = text.partition("=")
    if not name or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=PORT (greeter=50061)")
    return name, int(port)


def names(text: str) -> list[str]:
    """A comma-separated list of service names (--expose caller,orders)."""
    return [name.strip() for name in text.split(",") if name.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acmectl", description=__doc__)
    parser.add_argument("--caller", default="127.0.0.1:50052", help="Caller address host:port")
    parser.add_argument("--greeter", default="127.0.0.1:50051", help="Greeter address host:port")
    parser.add_argument("--timeout", type=float, default=5.0, help="deadline of each call (s)")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str, target: str, run: Command) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(run=run, target=target)
        return sub

    sub = command(
        "call",
        "any method of any service, described by its server reflection: "
        '`call acme.orders.v1.OrdersService/Echo \'{"text": "hi"}\'`; one JSON message per '
        "argument (a client stream takes several, the others one; none = `{}`); prints each "
        "reply as one JSON line",
        "call",
        calls.call,
    )
    sub.add_argument("method", help="<service>/<method>, the service by full proto name")
    sub.add_argument("requests", nargs="*", metavar="json", help="request message(s) as JSON")
    sub.add_argument(
        "--address",
        help="host:port of the server; default: the local stack's default port of the "
        "service under services/ whose contract it is",
    )
    sub = command(
        "introduce", "Caller.Introduce: one greeting via caller", "caller", calls.introduce
    )
    sub.add_argument("name")
    sub.add_argument("--language", default="")
    sub = command(
        "introduce-all", "Caller.IntroduceAll: fan-out via caller", "caller", calls.introduce_all
    )
    sub.add_argument("names", nargs="+")
    sub.add_argument("--language", default="")
    sub = command("hello", "Greeter.SayHello, directly", "greeter", calls.hello)
    sub.add_argument("name")
    sub.add_argument("--language", default="")
    sub = command(
        "languages", "Greeter.SayHelloLanguages (server stream)", "greeter", calls.languages
    )
    sub.add_argument("name")
    sub.add_argument("languages", nargs="*", help="language tags; none = all")
    sub = command("greet-many", "Greeter.GreetMany (client stream)", "greeter", calls.greet_many)
    sub.add_argument("names", nargs="+")
    sub = command("chat", "Greeter.Chat (bidirectional stream)", "greeter", calls.chat)
    sub.add_argument("names", nargs="+")

    stack = commands.add_parser(
        "stack",
        help="run every service of services/ and the HTTP edge locally (no Docker) until Ctrl-C",
        description="Run every service under services/ as a local process, wired to each "
        "other, with the HTTP edge exposing them, until Ctrl-C (docs/running.md). Settings of "
        "one service: <SERVICE>__<VARIABLE>=value (GREETER__LOG_LEVEL=DEBUG). Exit 2 when a "
        "port is taken or asked twice, or a setting cannot be placed.",
    )
    stack.add_argument(
        "--port",
        type=port_assignment,
        action="append",
        default=[],
        metavar="NAME=PORT",
        help="a service's port (repeatable); default: its own (settings or service.toml)",
    )
    stack.add_argument(
        "--base-port",
        type=int,
        metavar="N",
        help="ports N, N+1, ... in start order instead of the defaults; 0: any free ones",
    )
    stack.add_argument(
        "--with",
        dest="with_",
        type=names,
        action="extend",
        default=[],
        metavar="NAME,...",
        help="start these too: a replica (greeter-go, built with Go), balanced with its twin",
    )
    stack.add_argument(
        "--without", type=names, action="extend", default=[], metavar="NAME,...", help="leave out"
    )
    stack.add_argument(
        "--expose",
        type=names,
        action="extend",
        metavar="NAME,...",
        help="the services the edge exposes; default: every gRPC service of the stack",
    )
    stack.add_argument(
        "--demo",
        default=DEMO,
        metavar="SERVICE/METHOD",
        help=f"call made once the stack is up, directly and through the edge (default {DEMO}; "
        "'' = none)",
    )
    stack.add_argument(
        "--demo-request", default='{"name": "World"}', metavar="JSON", help="its request"
    )
    stack.add_argument(
        "--exit-after-demo", action="store_true", help="stop right after the demo call"
    )
    stack.set_defaults(run=None)
    sub = command(
        "channelz",
        "channelz of a server (its ADMIN_PORT, or the main port): servers, listen sockets, "
        "calls, and the channels it opened to other services",
        "admin",
        calls.channelz,
    )
    sub.add_argument("address", help="host:port, e.g. 127.0.0.1:9091")
    return parser


def repository_root() -> Path:
    """The repository whose services acmectl runs: the one it is installed from (an editable
    workspace member), else the current directory's."""
    here = Path(__file__).resolve()
    for directory in [here.parents[4], Path.cwd(), *Path.cwd().parents]:
        if (directory / "services").is_dir() and (directory / "proto").is_dir():
            return directory
    raise DiscoveryError("no repository here: run acmectl from the repository (services/)")


def service_address(method: str, root: Path) -> str:
    """The local stack's default address of the service under services/ that serves the
    proto service of `<service>/<method>` (or is named so)."""
    wanted = method.strip("/").rpartition("/")[0]
    for service in discover(root):
        serves = wanted in service.implements or client_prefix(wanted) in service.reached_by
        if (serves or wanted == service.name) and service.replica_of is None:
            return f"127.0.0.1:{service.default_port}"
    raise NotDescribed(
        f"no service under services/ serves {wanted[:120]!r}: give its --address host:port"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "stack":
            return run_stack(args, repository_root())
        address = {"caller": args.caller, "greeter": args.greeter}.get(args.target)
        if args.target == "call":
            address = args.address or service_address(args.method, repository_root())
        with grpc.insecure_channel(address or args.address) as channel:
            args.run(channel, args)
    except grpc.RpcError as error:
        print(f"error: {describe(error)}", file=sys.stderr)
        for detail in calls.error_details(error):
            print(f"  {detail}", file=sys.stderr)
        return 1
    except (NotDescribed, DiscoveryError, json_format.ParseError) as error:
        print(f"acmectl: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

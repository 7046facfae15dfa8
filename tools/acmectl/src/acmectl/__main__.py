"""`acmectl`: command-line client for the acme services and runner of the local stack."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import grpc

from acmectl import calls
from acmectl.stack import run_stack

Command = Callable[[grpc.Channel, argparse.Namespace], None]


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
        "stack", help="run greeter + caller + the HTTP gateway locally (no Docker) until Ctrl-C"
    )
    stack.add_argument("--greeter-port", type=int, default=50051)
    stack.add_argument("--caller-port", type=int, default=50052)
    stack.add_argument("--gateway-port", type=int, default=8080)
    stack.add_argument("--name", default="World", help="name for the demo call")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "stack":
        run_stack(args)
        return 0
    address = {"caller": args.caller, "greeter": args.greeter}.get(args.target) or args.address
    with grpc.insecure_channel(address) as channel:
        try:
            args.run(channel, args)
        except grpc.RpcError as error:
            print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

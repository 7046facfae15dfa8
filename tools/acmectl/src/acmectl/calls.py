"""One function per CLI command: each makes its gRPC call and prints the replies."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import grpc
from grpc_channelz.v1 import channelz_pb2, channelz_pb2_grpc

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc


def introduce(channel: grpc.Channel, args: argparse.Namespace) -> None:
    stub = caller_pb2_grpc.CallerServiceStub(channel)
    reply = stub.Introduce(
        caller_pb2.IntroduceRequest(name=args.name, language=args.language), timeout=args.timeout
    )
    print(f"{reply.message}  (greeter instance: {reply.greeter_instance})")


def introduce_all(channel: grpc.Channel, args: argparse.Namespace) -> None:
    stub = caller_pb2_grpc.CallerServiceStub(channel)
    reply = stub.IntroduceAll(
        caller_pb2.IntroduceAllRequest(names=args.names, language=args.language),
        timeout=args.timeout,
    )
    for item in reply.introductions:
        if item.error_code:
            print(f"{item.name!r}: FAILED {item.error_code}: {item.error_message}")
        else:
            print(f"{item.message}  (greeter instance: {item.greeter_instance})")
    print(f"succeeded: {reply.succeeded}, failed: {reply.failed}")


def hello(channel: grpc.Channel, args: argparse.Namespace) -> None:
    stub = greeter_pb2_grpc.GreeterServiceStub(channel)
    reply = stub.SayHello(
        greeter_pb2.SayHelloRequest(name=args.name, language=args.language), timeout=args.timeout
    )
    print(f"{reply.message}  (served by: {reply.served_by})")


def languages(channel: grpc.Channel, args: argparse.Namespace) -> None:
    stub = greeter_pb2_grpc.GreeterServiceStub(channel)
    request = greeter_pb2.SayHelloLanguagesRequest(name=args.name, languages=args.languages)
    for reply in stub.SayHelloLanguages(request, timeout=args.timeout):
        print(f"[{reply.language}] {reply.message}")


def greet_many(channel: grpc.Channel, args: argparse.Namespace) -> None:
    stub = greeter_pb2_grpc.GreeterServiceStub(channel)
    requests = (greeter_pb2.GreetManyRequest(name=name) for name in args.names)
    reply = stub.GreetMany(requests, timeout=args.timeout)
    print(f"{reply.message}  ({reply.count} names)")


def chat(channel: grpc.Channel, args: argparse.Namespace) -> None:
    stub = greeter_pb2_grpc.GreeterServiceStub(channel)

    def requests() -> Iterator[greeter_pb2.ChatRequest]:
        for name in args.names:
            yield greeter_pb2.ChatRequest(name=name)

    for reply in stub.Chat(requests(), timeout=args.timeout):
        print(f"#{reply.sequence} {reply.message}")


def channelz(channel: grpc.Channel, args: argparse.Namespace) -> None:
    """One line per server (its listen sockets and call counts) and per top channel."""
    stub = channelz_pb2_grpc.ChannelzStub(channel)
    for server in stub.GetServers(channelz_pb2.GetServersRequest(), timeout=args.timeout).server:
        data = server.data
        sockets = ", ".join(ref.name for ref in server.listen_socket)
        print(
            f"server {server.ref.server_id}: listening on {sockets}; calls started "
            f"{data.calls_started}, succeeded {data.calls_succeeded}, failed {data.calls_failed}"
        )
    request = channelz_pb2.GetTopChannelsRequest()
    for top in stub.GetTopChannels(request, timeout=args.timeout).channel:
        data = top.data
        print(
            f"channel {top.ref.channel_id} to {data.target}: {data.state.state}; calls started "
            f"{data.calls_started}, succeeded {data.calls_succeeded}, failed {data.calls_failed}"
        )

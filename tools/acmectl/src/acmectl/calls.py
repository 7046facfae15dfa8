"""One function per CLI command: each makes its gRPC call and prints the replies."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import cast

import grpc
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2  # noqa: F401 - registers the detail types for JSON
from grpc_channelz.v1 import channelz_pb2, channelz_pb2_grpc
from grpc_status import rpc_status

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme.greeter.v1 import greeter_pb2, greeter_pb2_grpc
from acmectl.reflection import Reflection, invoke, parse_requests, to_json


def call(channel: grpc.Channel, args: argparse.Namespace) -> None:
    """Any method, described by the server's reflection; one JSON line per reply."""
    method = Reflection(channel, args.timeout).method(args.method)
    requests = parse_requests(method, args.requests)
    for reply in invoke(channel, method, requests, args.timeout):
        print(to_json(reply), flush=True)


def error_details(error: grpc.RpcError) -> list[str]:
    """The rich details (google.rpc.Status, grpc-status-details-bin) of a failed call as JSON
    lines: BadRequest's field violations, ... (empty when there are none)."""
    try:  # a failed call's RpcError is its grpc.Call too (grpc-stubs does not say so)
        status = rpc_status.from_call(cast(grpc.Call, error))
    except (AttributeError, ValueError):  # not a call, or details contradicting its status
        return []
    return [_detail_json(detail) for detail in (status.details if status else [])]


def _detail_json(detail: any_pb2.Any) -> str:
    try:
        return json_format.MessageToJson(detail, indent=None)
    except TypeError:  # a detail type this client does not know
        return f"{detail.type_url} ({len(detail.value)} bytes)"


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

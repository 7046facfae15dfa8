"""The details of a service's google.rpc.Status as connectrpc sends them: each detail's type
and bytes (`type`, `value`) and, when the gateway knows the type (google.rpc's error details,
the messages of the generated modules it imported), its JSON form beside them (`debug`, which
the Connect protocol allows in an error detail: connectrpc.com/docs/protocol, Error), so JSON
clients read a NotFound's ResourceInfo or a BadRequest's field violations without decoding
protobuf.

connectrpc writes `debug` itself for a detail it holds decoded, with its own protobuf runtime
(protobuf-py), and encodes that detail's `value` again from it (the same message, fields in
number order); a detail of an unknown type, or whose bytes do not decode as it, is passed on
byte for byte without `debug`. The descriptors come from google.protobuf's default pool,
converted once per type."""

from __future__ import annotations

import functools

from connectrpc.errors import ErrorDetail
from google.protobuf import any_pb2, descriptor_pb2
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.rpc import error_details_pb2
from protobuf import Registry
from protobuf.wkt import Any as WireAny
from protobuf.wkt import FileDescriptorSet as WireFileDescriptorSet

# Where a detail's type is looked up: google.protobuf's default pool, which holds google.rpc's
# error details (error_details_pb2) and every generated module the gateway imported.
_POOL = error_details_pb2.DESCRIPTOR.pool
KNOWN_TYPES_KEPT = 64  # detail types whose converted descriptors are cached (a service names them)


@functools.lru_cache(maxsize=KNOWN_TYPES_KEPT)
def _registry_of(type_name: str) -> Registry | None:
    """The descriptors of type_name and of the files its file imports, converted from _POOL
    into a registry of connectrpc's protobuf runtime (protobuf-py); None when _POOL does not
    know type_name."""
    try:
        message = _POOL.FindMessageTypeByName(type_name)
    except KeyError:
        return None
    files = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(file: FileDescriptor) -> None:  # dependencies first, as a registry needs them
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            add(dependency)
        proto = files.file.add()
        file.CopyToProto(proto)
        for message_proto in proto.message_type:
            _add_json_names(message_proto, file.message_types_by_name[message_proto.name])

    add(message.file)
    return WireFileDescriptorSet.from_binary(files.SerializeToString()).to_registry()


def _add_json_names(proto: descriptor_pb2.DescriptorProto, descriptor: Descriptor) -> None:
    """Each field's JSON name (`fieldViolations`), which CopyToProto leaves out and protobuf-py
    takes from the descriptor as given (protoc fills it in for plugins)."""
    for field in proto.field:
        field.json_name = descriptor.fields_by_name[field.name].json_name
    for nested in proto.nested_type:
        _add_json_names(nested, descriptor.nested_types_by_name[nested.name])


def error_detail(detail: any_pb2.Any) -> ErrorDetail:
    """One detail of the service's status, for connectrpc: decoded when its type is known, so
    connectrpc writes its JSON form (`debug`) beside its type and bytes; as it came otherwise
    (an unknown type, or bytes that do not decode as it)."""
    wire = WireAny(type_url=detail.type_url, value=detail.value)
    registry = _registry_of(detail.TypeName())
    described = registry.message(detail.TypeName()) if registry is not None else None
    if described is None:
        return ErrorDetail(wire)
    try:
        decoded = wire.unpack(described)
    except ValueError:
        return ErrorDetail(wire)
    return ErrorDetail(decoded if decoded is not None else wire)

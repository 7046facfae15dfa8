"""The buf.validate rules a contract states, read from its descriptors, and the rules a request
breaks, asked of protovalidate: so that a test can say which stated rule no test vector
exercises.

A rule is named by its request message, the field path without subscripts (`languages` for
`languages[3]`) and its place in the field's buf.validate.FieldRules (`string.max_len`,
`cel[1]`, `repeated.items.cel[0]`), which is exactly what a protovalidate violation reports
(its `field` and `rule` paths); `id` is what a reader recognises (the CEL rule's id, or the
standard rule's path)."""

from __future__ import annotations

import dataclasses
from typing import Any

import protovalidate
from google.protobuf.descriptor import Descriptor, ServiceDescriptor
from google.protobuf.message import Message

from buf.validate import validate_pb2

# FieldRules members that state no rule: the type oneof's examples, and how to ignore a field.
NOT_RULES = {"example", "ignore"}


@dataclasses.dataclass(frozen=True, order=True)
class Rule:
    message: str  # the request message's full name
    field: str  # field path without subscripts, e.g. "languages" or "inner.name"
    rule: str  # path in the field's FieldRules, e.g. "string.max_len", "cel[0]"
    id: str = dataclasses.field(compare=False)  # the CEL rule's id, or the standard rule's path

    def __str__(self) -> str:
        return f"{self.message}.{self.field}: {self.id} ({self.rule})"


def field_rules(message: Descriptor, name: str) -> Any:
    """The buf.validate.FieldRules of one field of a message (empty when it has none)."""
    return message.fields_by_name[name].GetOptions().Extensions[validate_pb2.field]


def stated(service: ServiceDescriptor) -> set[Rule]:
    """Every rule on the request messages of a service's methods (nested messages included).
    Rules of a whole message or of a oneof are not read yet: a contract with one fails here
    rather than going unchecked."""
    found: set[Rule] = set()
    for method in service.methods:
        found |= _message_rules(method.input_type, method.input_type.full_name, "", set())
    return found


def _message_rules(descriptor: Descriptor, owner: str, prefix: str, seen: set[str]) -> set[Rule]:
    if descriptor.full_name in seen:
        return set()
    seen = seen | {descriptor.full_name}
    unread = [descriptor.GetOptions().HasExtension(validate_pb2.message)] + [
        oneof.GetOptions().HasExtension(validate_pb2.oneof) for oneof in descriptor.oneofs
    ]
    if any(unread):
        raise NotImplementedError(f"{descriptor.full_name}: message or oneof rules")
    found: set[Rule] = set()
    for member in descriptor.fields:
        path = f"{prefix}{member.name}"
        options = member.GetOptions()
        if options.HasExtension(validate_pb2.field):
            rules = options.Extensions[validate_pb2.field]
            found |= {Rule(owner, path, where, id_) for where, id_ in _field_rules(rules, "")}
        if member.message_type is not None:
            found |= _message_rules(member.message_type, owner, f"{path}.", seen)
    return found


def _field_rules(rules: Any, prefix: str) -> list[tuple[str, str]]:
    """(path in FieldRules, id) of each rule a FieldRules states."""
    found = [(f"{prefix}cel[{index}]", rule.id) for index, rule in enumerate(rules.cel)]
    if rules.required:
        found.append((f"{prefix}required", "required"))
    kind = rules.WhichOneof("type")
    if kind is None:
        return found
    for member, value in getattr(rules, kind).ListFields():
        if member.name in NOT_RULES:
            continue
        if member.name in ("items", "keys", "values"):  # rules of each element
            found += _field_rules(value, f"{prefix}{kind}.{member.name}.")
        else:
            path = f"{kind}.{member.name}"
            found.append((prefix + path, path))
    return found


def broken(message: Message) -> set[Rule]:
    """The rules a message breaks, as protovalidate reports them."""
    found: set[Rule] = set()
    for violation in protovalidate.collect_violations(message):
        proto = violation.proto
        elements = proto.field.elements if proto.field is not None else []
        found.add(
            Rule(
                message.DESCRIPTOR.full_name,
                ".".join(element.field_name for element in elements),
                _path(proto.rule),
                proto.rule_id,
            )
        )
    return found


def _path(path: Any) -> str:
    if path is None:
        return ""
    parts = []
    for element in path.elements:
        subscript = element.subscript
        parts.append(
            element.field_name if subscript is None else f"{element.field_name}[{subscript.value}]"
        )
    return ".".join(parts)

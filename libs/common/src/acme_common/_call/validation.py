"""Every request checked against the rules its contract states: the `buf.validate` annotations
of its message type (protovalidate, https://protovalidate.com), before the handler sees it.

A message that breaks them is answered INVALID_ARGUMENT with one google.rpc.BadRequest field
violation per protovalidate violation, in protovalidate's order, built by InvalidArgument (so
bounded as every InvalidArgument is): `field` is the violation's field path as protovalidate
renders it (`name`, `languages[3]`, `labels["k"]`, `a.b`), `description` its message (the
rule's `message`, or the standard rule's own text such as "must be at most 100 characters").
Nothing of the input is echoed. docs/contracts.md says what is enforced where.

The cost is paid only where there are rules: whether a message type has any (its own, or a
field's message type's, recursively) is found once, from its descriptor; a type without rules
gets no check at all, so its calls do not enter protovalidate (whose call costs about 10,000
instructions even for a message without rules). protovalidate is imported on the first type
that has rules. Its Validator caches the compiled rules per type: one serves the process.
What a check costs, and the alternative of validating the request bytes through
protovalidate's own protobuf runtime (parsed a second time): bench/README.md, "Validation".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from acme_common._errors import FieldViolation, InvalidArgument

if TYPE_CHECKING:
    from protovalidate import Validator

# The buf.validate option extensions (buf/validate/validate.proto): on a message, a oneof
# and a field. Found by name, so that this module needs no generated code of validate.proto.
RULE_OPTIONS = frozenset({"buf.validate.message", "buf.validate.oneof", "buf.validate.field"})

Check = Callable[[Any], Exception | None]  # a parsed request -> the error refusing it, or None


def has_rules(descriptor: Descriptor) -> bool:
    """Whether protovalidate would check anything in a message of this type: a buf.validate
    option on the message, one of its oneofs or fields, or on a message type reachable
    through its fields (map entries included)."""
    return _has_rules(descriptor, set())


def _has_rules(descriptor: Descriptor, seen: set[str]) -> bool:
    if descriptor.full_name in seen:  # a recursive type: its rules are found where it starts
        return False
    seen.add(descriptor.full_name)
    owners: list[Any] = [descriptor, *descriptor.oneofs, *descriptor.fields]
    if any(_annotated(owner.GetOptions()) for owner in owners):
        return True
    return any(
        _has_rules(field.message_type, seen)
        for field in descriptor.fields
        if field.message_type is not None
    )


def _annotated(options: Message) -> bool:
    return any(field.full_name in RULE_OPTIONS for field, _ in options.ListFields())


@cache
def check_for(descriptor: Descriptor) -> Check | None:
    """The check of a message type's requests, or None when the type has no rules (cached
    per type)."""
    if not has_rules(descriptor):
        return None
    validator = _validator()

    def check(message: Any) -> Exception | None:
        # Runs inside grpc's deserialization, where an exception would become grpc's own
        # INTERNAL: any failure is returned, to be raised in the handler's path (INTERNAL
        # "internal error", logged). A rule that does not compile or evaluate is a server bug.
        try:
            violations = validator.collect_violations(message)
            if not violations:
                return None
            return InvalidArgument(
                *(
                    FieldViolation(field_path(v.proto.field), v.proto.message, v.proto.rule_id)
                    for v in violations
                )
            )
        except Exception as error:
            return error

    return check


def check_any(message: Any) -> Exception | None:
    """The check of a request whose type is known only once parsed (a deserializer that is
    not a generated message's FromString): looked up by its descriptor."""
    descriptor = getattr(message, "DESCRIPTOR", None)
    if not isinstance(descriptor, Descriptor):
        return None  # not a protobuf message: nothing to check it against
    check = check_for(descriptor)
    return None if check is None else check(message)


def check_of(deserialize: Callable[[bytes], Any] | None) -> Check | None:
    """What checks the requests a deserializer parses: the check of its message type when it
    is a generated message's FromString (None when that type has no rules: no cost per
    call), check_any for any other deserializer, None without one (raw bytes)."""
    if deserialize is None:
        return None
    owner = getattr(deserialize, "__self__", None)
    if isinstance(owner, type) and issubclass(owner, Message):
        descriptor = owner.DESCRIPTOR
        if isinstance(descriptor, Descriptor):
            return check_for(descriptor)
    return check_any


def prepare(services: Iterable[str]) -> None:
    """Compile the rules of every request type of these services (full proto names found in
    the default descriptor pool, as generated code registers them) before the server serves:
    the first call of a method does not wait for protovalidate's import and compilation
    (about 0.2 s), and a rule that does not compile stops the start (SystemExit naming the
    request type and protovalidate's reason) instead of failing calls. Compiling means
    validating an empty request; a rule whose evaluation fails on it
    (protovalidate.EvaluationError, e.g. `int(this)` of "") compiled, and such a request is
    answered INTERNAL when it comes: that is the rule's bug, found by its contract test."""
    import protovalidate

    pool = descriptor_pool.Default()
    for name in services:
        try:
            service = pool.FindServiceByName(name)
        except KeyError:  # not generated code: its requests are checked as they come
            continue
        for method in service.methods:
            if check_for(method.input_type) is not None:
                empty = message_factory.GetMessageClass(method.input_type)()
                try:
                    _validator().collect_violations(empty)
                except protovalidate.EvaluationError:
                    continue
                except protovalidate.CompilationError as error:
                    raise SystemExit(
                        f"the buf.validate rules of {method.input_type.full_name} do not "
                        f"compile: {error}"
                    ) from None


def field_path(path: Any) -> str:
    """A buf.validate.FieldPath as protovalidate renders it in every language: field names
    joined by dots, each subscript in brackets (an index or a bool or integer key as is, a
    string key quoted); "" for none (a rule of the whole message)."""
    if path is None:
        return ""
    parts = []
    for element in path.elements:
        subscript = element.subscript
        if subscript is None:
            parts.append(element.field_name)
            continue
        value = subscript.value
        key = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else value
        if isinstance(value, bool):
            key = "true" if value else "false"
        parts.append(f"{element.field_name}[{key}]")
    return ".".join(parts)


@cache
def _validator() -> Validator:
    import protovalidate  # only a process serving rules pays for the import

    return protovalidate.Validator()

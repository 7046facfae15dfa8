package server

import (
	"context"
	"errors"
	"fmt"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"acme.example/common/rpcerr"
)

// validation checks every request message against its contract's protovalidate rules (the
// buf.validate annotations of its .proto) before the service's code sees it: a unary
// request before the handler, each message of a stream as the handler receives it (so a
// server-streaming request before the method runs, and the first invalid message of a
// client or bidi stream ends the call). A message type without rules passes.
//
// go-grpc-middleware's interceptors/protovalidate does the same walk but answers with its
// own status: the message is protovalidate's whole error text (one line per violation,
// unbounded) and the detail a buf.validate.Violations, with no option to build another. The
// contract promises what acme_common answers (docs/operating.md): INVALID_ARGUMENT with a
// google.rpc.BadRequest whose message, violations and bounds are rpcerr.InvalidArgument's,
// so this interceptor is our own, around the same library.
type validation struct {
	validator protovalidate.Validator
}

// check is nil for a valid message, rpcerr.InvalidArgument (one FieldViolation per
// protovalidate violation, in its order) for an invalid one, and a plain error (INTERNAL,
// logged by statuses) when a rule cannot be evaluated: a fault of the contract, not of the
// client.
func (v validation) check(message any) error {
	msg, ok := message.(proto.Message)
	if !ok {
		return fmt.Errorf("cannot validate %T: not a protobuf message", message)
	}
	err := v.validator.Validate(msg)
	var invalid *protovalidate.ValidationError
	if !errors.As(err, &invalid) {
		return err
	}
	violations := make([]rpcerr.FieldViolation, len(invalid.Violations))
	for i, violation := range invalid.Violations {
		violations[i] = rpcerr.FieldViolation{
			Field:       protovalidate.FieldPathString(violation.Proto.GetField()),
			Description: violation.Proto.GetMessage(),
			Reason:      violation.Proto.GetRuleId(),
		}
	}
	return rpcerr.InvalidArgument(violations...)
}

// prepare compiles the rules of every request type of services (found by their full names
// in the global registry, where generated code registers them) before the server serves, as
// acme_common does: the first call of a method does not wait for it, and a rule that does not
// compile stops the start instead of failing every call. A service outside the registry has
// its requests' rules compiled as they come.
func (v validation) prepare(services []Service) error {
	for _, service := range services {
		found, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service.Name))
		descriptor, ok := found.(protoreflect.ServiceDescriptor)
		if err != nil || !ok {
			continue
		}
		for i := range descriptor.Methods().Len() {
			input := descriptor.Methods().Get(i).Input()
			var broken *protovalidate.CompilationError
			if err := v.validator.Validate(dynamicpb.NewMessage(input)); errors.As(err, &broken) {
				return fmt.Errorf("the buf.validate rules of %s: %w", input.FullName(), err)
			}
		}
	}
	return nil
}

func (v validation) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := v.check(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (v validation) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &validatedServerStream{ServerStream: ss, validation: v})
}

type validatedServerStream struct {
	grpc.ServerStream
	validation validation
}

func (s *validatedServerStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.validation.check(m)
}

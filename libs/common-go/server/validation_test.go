package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"acme.example/common/rpcerr"
	"acme.example/common/settings"
)

// The contract of the probe service, built here rather than generated: the tests need rules
// of each kind (a standard rule, a CEL rule, rules on repeated items, a rule message over
// the bounds, a rule that does not compile) and a message without rules, and no service's
// own contract, whose rules may change.
const probeService = "acme.validationtest.v1.ProbeService"

var longRuleMessage = strings.Repeat("é", 200) // 400 bytes: over rpcerr.MaxDescriptionBytes

var probeFile = fmt.Sprintf(`
name: "acme/validationtest/v1/probe.proto"
package: "acme.validationtest.v1"
dependency: "buf/validate/validate.proto"
syntax: "proto3"
message_type {
  name: "Probe"
  field {
    name: "name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "name"
    options { [buf.validate.field] {
      string { max_len: 5 }
      cel { id: "name.not_blank" message: "must not be empty" expression: "this != ''" }
    } }
  }
  field {
    name: "tags" number: 2 label: LABEL_REPEATED type: TYPE_STRING json_name: "tags"
    options { [buf.validate.field] { repeated { items { string { max_len: 1 } } } } }
  }
  field {
    name: "essay" number: 3 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "essay"
    options { [buf.validate.field] {
      cel { id: "essay.absent" message: %q expression: "this == ''" }
    } }
  }
}
message_type {
  name: "Plain"
  field { name: "text" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "text" }
}
message_type {
  name: "Broken"
  field {
    name: "text" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "text"
    options { [buf.validate.field] { cel { id: "broken" message: "never" expression: "this +" } } }
  }
}
service {
  name: "ProbeService"
  method { name: "Check" input_type: ".acme.validationtest.v1.Probe" output_type: ".acme.validationtest.v1.Plain" }
  method { name: "CheckPlain" input_type: ".acme.validationtest.v1.Plain" output_type: ".acme.validationtest.v1.Plain" }
  method {
    name: "List" input_type: ".acme.validationtest.v1.Probe" output_type: ".acme.validationtest.v1.Plain"
    server_streaming: true
  }
  method {
    name: "Collect" input_type: ".acme.validationtest.v1.Probe" output_type: ".acme.validationtest.v1.Plain"
    client_streaming: true
  }
  method {
    name: "Chat" input_type: ".acme.validationtest.v1.Probe" output_type: ".acme.validationtest.v1.Plain"
    client_streaming: true server_streaming: true
  }
}
service {
  name: "BrokenService"
  method { name: "CheckBroken" input_type: ".acme.validationtest.v1.Broken" output_type: ".acme.validationtest.v1.Plain" }
}
`, longRuleMessage)

var probe, plain, broken = func() (protoreflect.MessageDescriptor, protoreflect.MessageDescriptor, protoreflect.MessageDescriptor) {
	file := &descriptorpb.FileDescriptorProto{}
	if err := prototext.Unmarshal([]byte(probeFile), file); err != nil {
		panic(err)
	}
	descriptor, err := protodesc.NewFile(file, protoregistry.GlobalFiles)
	if err != nil {
		panic(err)
	}
	// where generated code registers its files: NewHost compiles the rules of the services
	// found there
	if err := protoregistry.GlobalFiles.RegisterFile(descriptor); err != nil {
		panic(err)
	}
	messages := descriptor.Messages()
	return messages.ByName("Probe"), messages.ByName("Plain"), messages.ByName("Broken")
}()

func message(descriptor protoreflect.MessageDescriptor, fields map[string]any) *dynamicpb.Message {
	m := dynamicpb.NewMessage(descriptor)
	for name, value := range fields {
		field := descriptor.Fields().ByName(protoreflect.Name(name))
		switch value := value.(type) {
		case string:
			m.Set(field, protoreflect.ValueOfString(value))
		case []string:
			list := m.Mutable(field).List()
			for _, item := range value {
				list.Append(protoreflect.ValueOfString(item))
			}
		}
	}
	return m
}

func text(reply *dynamicpb.Message) string {
	return reply.Get(plain.Fields().ByName("text")).String()
}

// probeServer answers every method with Plain texts and counts the requests its handlers
// received (so a test sees that an invalid one never reached them).
type probeServer struct {
	received atomic.Int64
}

func (p *probeServer) unary(name string, in protoreflect.MessageDescriptor) grpc.MethodDesc {
	return grpc.MethodDesc{MethodName: name, Handler: func(_ any, ctx context.Context, decode func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := dynamicpb.NewMessage(in)
		if err := decode(req); err != nil {
			return nil, err
		}
		info := &grpc.UnaryServerInfo{FullMethod: "/" + probeService + "/" + name}
		return interceptor(ctx, req, info, func(context.Context, any) (any, error) {
			p.received.Add(1)
			return message(plain, map[string]any{"text": "ok"}), nil
		})
	}}
}

// stream answers each request received with its count so far, at once (ServerStreams) or
// once the client is done (else).
func (p *probeServer) stream(name string, clientStreams, serverStreams bool) grpc.StreamDesc {
	return grpc.StreamDesc{StreamName: name, ClientStreams: clientStreams, ServerStreams: serverStreams,
		Handler: func(_ any, stream grpc.ServerStream) error {
			count := 0
			for {
				req := dynamicpb.NewMessage(probe)
				err := stream.RecvMsg(req)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return err
				}
				p.received.Add(1)
				count++
				if serverStreams {
					if err := stream.SendMsg(message(plain, map[string]any{"text": strconv.Itoa(count)})); err != nil {
						return err
					}
				}
				if !clientStreams {
					return nil
				}
			}
			return stream.SendMsg(message(plain, map[string]any{"text": strconv.Itoa(count)}))
		}}
}

func (p *probeServer) register(r grpc.ServiceRegistrar) {
	r.RegisterService(&grpc.ServiceDesc{
		ServiceName: probeService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			p.unary("Check", probe), p.unary("CheckPlain", plain), p.unary("CheckBroken", broken),
		},
		Streams: []grpc.StreamDesc{
			p.stream("List", false, true), p.stream("Collect", true, false), p.stream("Chat", true, true),
		},
	}, p)
}

// lockedBuffer is the log of a host that tests read while it serves.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type probeHost struct {
	conn   *grpc.ClientConn
	server *probeServer
	log    *lockedBuffer
}

// probeSettings are env's settings, listening on a free port of 127.0.0.1.
func probeSettings(t *testing.T, env map[string]string) *settings.Settings {
	t.Helper()
	env["GRPC_HOST"], env["GRPC_PORT"] = "127.0.0.1", "0"
	s, err := settings.Load(env, settings.Model{Name: "ProbeSettings"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startProbeHost serves the probe service with NewHost (the interceptors every service
// gets) on a free port of 127.0.0.1, with env's settings besides.
func startProbeHost(t *testing.T, env map[string]string) probeHost {
	t.Helper()
	s := probeSettings(t, env)
	p := probeHost{server: &probeServer{}, log: &lockedBuffer{}}
	host, err := NewHost(s, []Service{{Name: probeService, Register: p.server.register}}, NewLogger(p.log, "INFO", "json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(host.Stop)
	p.conn, err = grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", host.Port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.conn.Close() })
	return p
}

func (p probeHost) call(method string, req *dynamicpb.Message, md ...string) (string, error) {
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), md...), 10*time.Second)
	defer cancel()
	reply := dynamicpb.NewMessage(plain)
	err := p.conn.Invoke(ctx, "/"+probeService+"/"+method, req, reply)
	return text(reply), err
}

// stream sends requests on method (a client stream) and returns the replies and the status.
func (p probeHost) stream(t *testing.T, method string, serverStreams bool, requests ...*dynamicpb.Message) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	desc := &grpc.StreamDesc{StreamName: method, ClientStreams: true, ServerStreams: serverStreams}
	stream, err := p.conn.NewStream(ctx, desc, "/"+probeService+"/"+method)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range requests {
		// io.EOF once the server has ended the call: its status is RecvMsg's
		if err := stream.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var replies []string
	for {
		reply := dynamicpb.NewMessage(plain)
		if err := stream.RecvMsg(reply); err != nil {
			if errors.Is(err, io.EOF) {
				return replies, nil
			}
			return replies, err
		}
		replies = append(replies, text(reply))
	}
}

// violation is a BadRequest field violation as a comparable value.
type violation struct{ field, description, reason string }

// invalid checks that err is INVALID_ARGUMENT with message and, as its only detail, a
// BadRequest with violations.
func invalid(t *testing.T, err error, message string, violations ...violation) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || st.Message() != message {
		t.Fatalf("status %v %q, want InvalidArgument %q", st.Code(), st.Message(), message)
	}
	details := st.Details()
	if len(details) != 1 {
		t.Fatalf("details %v, want one BadRequest", details)
	}
	bad, ok := details[0].(*errdetails.BadRequest)
	if !ok {
		t.Fatalf("detail %T, want a BadRequest", details[0])
	}
	got := make([]violation, len(bad.GetFieldViolations()))
	for i, v := range bad.GetFieldViolations() {
		got[i] = violation{v.GetField(), v.GetDescription(), v.GetReason()}
	}
	if !reflect.DeepEqual(got, violations) {
		t.Fatalf("violations %q, want %q", got, violations)
	}
}

func (p probeHost) received(t *testing.T, want int64) {
	t.Helper()
	if got := p.server.received.Load(); got != want {
		t.Fatalf("the handlers received %d requests, want %d", got, want)
	}
}

func TestAValidRequestReachesTheHandler(t *testing.T) {
	p := startProbeHost(t, map[string]string{})
	got, err := p.call("Check", message(probe, map[string]any{"name": "Ada", "tags": []string{"a", "b"}}))
	if err != nil || got != "ok" {
		t.Fatalf("reply %q, %v", got, err)
	}
	p.received(t, 1)
}

func TestAnInvalidUnaryRequestNeverReachesTheHandler(t *testing.T) {
	p := startProbeHost(t, map[string]string{})
	_, err := p.call("Check", message(probe, map[string]any{"name": "", "tags": []string{"ab"}}))
	invalid(t, err, "name: must not be empty; tags[0]: must be at most 1 characters",
		violation{"name", "must not be empty", "name.not_blank"},
		violation{"tags[0]", "must be at most 1 characters", "string.max_len"})
	p.received(t, 0)
}

func TestAServerStreamingRequestIsValidatedBeforeTheMethod(t *testing.T) {
	p := startProbeHost(t, map[string]string{})
	replies, err := p.stream(t, "List", true, message(probe, map[string]any{"name": "Adaline"}))
	invalid(t, err, "name: must be at most 5 characters",
		violation{"name", "must be at most 5 characters", "string.max_len"})
	if len(replies) != 0 {
		t.Fatalf("replies %q before the status", replies)
	}
	p.received(t, 0)
}

func TestTheFirstInvalidMessageOfAClientStreamEndsTheCall(t *testing.T) {
	p := startProbeHost(t, map[string]string{})
	requests := []*dynamicpb.Message{
		message(probe, map[string]any{"name": "Ada"}),
		message(probe, map[string]any{"name": "Alan"}),
		message(probe, map[string]any{"name": "Ada", "tags": []string{"x", "yz"}}),
		message(probe, map[string]any{"name": "Grace"}),
	}
	_, err := p.stream(t, "Collect", false, requests...)
	invalid(t, err, "tags[1]: must be at most 1 characters",
		violation{"tags[1]", "must be at most 1 characters", "string.max_len"})
	p.received(t, 2)
}

func TestTheFirstInvalidMessageOfABidiStreamEndsTheCall(t *testing.T) {
	p := startProbeHost(t, map[string]string{})
	replies, err := p.stream(t, "Chat", true,
		message(probe, map[string]any{"name": "Ada"}), message(probe, map[string]any{"name": ""}),
		message(probe, map[string]any{"name": "Alan"}))
	invalid(t, err, "name: must not be empty", violation{"name", "must not be empty", "name.not_blank"})
	if !reflect.DeepEqual(replies, []string{"1"}) {
		t.Fatalf("replies %q, want the first message's only", replies)
	}
	p.received(t, 1)
}

func TestAMessageWithoutRulesPasses(t *testing.T) {
	p := startProbeHost(t, map[string]string{})
	got, err := p.call("CheckPlain", message(plain, map[string]any{"text": strings.Repeat("\x00", 10000)}))
	if err != nil || got != "ok" {
		t.Fatalf("reply %q, %v", got, err)
	}
	p.received(t, 1)
}

func TestManyViolationsAreBoundedAsRpcerrBoundsThem(t *testing.T) {
	p := startProbeHost(t, map[string]string{})
	tags := make([]string, 20)
	for i := range tags {
		tags[i] = "ab"
	}
	_, err := p.call("Check", message(probe, map[string]any{"name": "Ada", "tags": tags}))
	want := make([]violation, rpcerr.MaxViolations)
	listed := make([]string, rpcerr.MaxViolations)
	for i := range want {
		want[i] = violation{fmt.Sprintf("tags[%d]", i), "must be at most 1 characters", "string.max_len"}
		listed[i] = want[i].field + ": " + want[i].description
	}
	invalid(t, err, strings.Join(listed, "; ")+"; and 12 more", want...)
	p.received(t, 0)
}

func TestALongRuleMessageIsCutToTheDescriptionBound(t *testing.T) {
	p := startProbeHost(t, map[string]string{})
	_, err := p.call("Check", message(probe, map[string]any{"name": "Ada", "essay": "x"}))
	cut := strings.Repeat("é", (rpcerr.MaxDescriptionBytes-len("…"))/2) + "…"
	invalid(t, err, "essay: "+cut, violation{"essay", cut, "essay.absent"})
}

func TestARuleThatDoesNotCompileStopsTheStart(t *testing.T) {
	service := Service{Name: "acme.validationtest.v1.BrokenService", Register: func(grpc.ServiceRegistrar) {}}
	_, err := NewHost(probeSettings(t, map[string]string{}), []Service{service}, NewLogger(io.Discard, "INFO", "json"))
	if err == nil || !strings.HasPrefix(err.Error(), "the buf.validate rules of acme.validationtest.v1.Broken: compilation error") {
		t.Fatalf("NewHost: %v, want the rules' compilation error", err)
	}
}

// The probe server's CheckBroken is not a method of ProbeService's descriptor (as a
// hand-written handler's may not be), so its rules are compiled on its first call.
func TestARuleThatCannotBeEvaluatedIsAnInternalError(t *testing.T) {
	p := startProbeHost(t, map[string]string{})
	_, err := p.call("CheckBroken", message(broken, map[string]any{"text": "x"}))
	if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Fatalf("status %v %q, want Internal \"internal error\"", st.Code(), st.Message())
	}
	if log := p.log.String(); !strings.Contains(log, `"unhandled error in /`+probeService+`/CheckBroken"`) ||
		!strings.Contains(log, "compilation error") {
		t.Fatalf("the broken rule is not logged:\n%s", log)
	}
	p.received(t, 0)
}

func TestAStrangerIsNotToldTheRules(t *testing.T) {
	p := startProbeHost(t, map[string]string{"AUTH_TOKENS": "secret"})
	req := message(probe, map[string]any{"name": ""})
	if _, err := p.call("Check", req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without a token: %v, want Unauthenticated", err)
	}
	_, err := p.call("Check", req, "authorization", "Bearer secret")
	invalid(t, err, "name: must not be empty", violation{"name", "must not be empty", "name.not_blank"})
}

package rpcerr

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/emptypb"
)

// errorCase is one case of testdata/errors_cases.json, written by acme_common
// (libs/common/tests/test_error_vocabulary.py): an error and its arguments, and the
// google.rpc.Status (proto3 JSON) the Python errors answer.
type errorCase struct {
	Error     string `json:"error"`
	Arguments struct {
		Violations   [][]string        `json:"violations"`
		ResourceType string            `json:"resource_type"`
		ResourceName string            `json:"resource_name"`
		Owner        string            `json:"owner"`
		Description  string            `json:"description"`
		Message      string            `json:"message"`
		Reason       string            `json:"reason"`
		Domain       string            `json:"domain"`
		Metadata     map[string]string `json:"metadata"`
	} `json:"arguments"`
	Status json.RawMessage `json:"status"`
}

func loadCases(t *testing.T) []errorCase {
	t.Helper()
	data, err := os.ReadFile("testdata/errors_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []errorCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

// build is the rpcerr error a case names, with its arguments.
func build(t *testing.T, c errorCase) *Error {
	t.Helper()
	a := c.Arguments
	resource := Resource{Type: a.ResourceType, Name: a.ResourceName, Owner: a.Owner, Description: a.Description}
	info := Info{Reason: a.Reason, Domain: a.Domain, Metadata: a.Metadata}
	switch c.Error {
	case "InvalidArgument", "OutOfRange":
		violations := make([]FieldViolation, len(a.Violations))
		for i, v := range a.Violations {
			violations[i] = FieldViolation{Field: v[0], Description: v[1]}
		}
		if c.Error == "OutOfRange" {
			return OutOfRange(violations...)
		}
		return InvalidArgument(violations...)
	case "FailedPrecondition":
		violations := make([]PreconditionViolation, len(a.Violations))
		for i, v := range a.Violations {
			violations[i] = PreconditionViolation{Type: v[0], Subject: v[1], Description: v[2]}
		}
		return FailedPrecondition(violations...)
	case "NotFound":
		return NotFound(resource)
	case "AlreadyExists":
		return AlreadyExists(resource)
	case "PermissionDenied":
		return PermissionDenied(a.Message, info)
	case "Unauthenticated":
		return Unauthenticated(a.Message, info)
	case "Aborted":
		return Aborted(a.Message, info)
	case "Unimplemented":
		return Unimplemented(a.Message, info)
	case "ResourceExhausted":
		return ResourceExhausted(a.Message)
	case "Unavailable":
		return Unavailable(a.Message)
	case "DeadlineExceeded":
		return DeadlineExceeded(a.Message)
	}
	t.Fatalf("no rpcerr constructor for %q", c.Error)
	return nil
}

// sameStatus fails t unless st, as proto3 JSON, is the case's status.
func sameStatus(t *testing.T, what string, st *status.Status, c errorCase) {
	t.Helper()
	data, err := protojson.Marshal(st.Proto())
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(c.Status, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: %s\nacme_common sends %s", what, data, c.Status)
	}
}

func TestEachErrorIsTheStatusAcmeCommonSends(t *testing.T) {
	cases := loadCases(t)
	if len(cases) == 0 {
		t.Fatal("no cases in testdata/errors_cases.json")
	}
	for i, c := range cases {
		sameStatus(t, strconv.Itoa(i)+" "+c.Error, build(t, c).GRPCStatus(), c)
	}
}

// TestEachErrorReachesAClientOverASocket: a grpc-go server on a loopback port answers method
// /test.v1.ErrorsService/<i> with case i's error; the client reads the same status.
func TestEachErrorReachesAClientOverASocket(t *testing.T) {
	cases := loadCases(t)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raise := func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		i, err := strconv.Atoi(method[strings.LastIndex(method, "/")+1:])
		if err != nil || i < 0 || i >= len(cases) {
			return New(3, "no such case: "+Echo(method))
		}
		return build(t, cases[i])
	}
	server := grpc.NewServer(grpc.UnknownServiceHandler(raise))
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()
	conn, err := grpc.NewClient(listener.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	for i, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := conn.Invoke(ctx, "/test.v1.ErrorsService/"+strconv.Itoa(i), &emptypb.Empty{}, &emptypb.Empty{})
		cancel()
		st, ok := status.FromError(err)
		if !ok || err == nil {
			t.Fatalf("case %d: %v is no status", i, err)
		}
		if st.Code() != build(t, c).Code {
			t.Errorf("case %d: code %v, want %v", i, st.Code(), build(t, c).Code)
		}
		sameStatus(t, "received "+strconv.Itoa(i)+" "+c.Error, st, c)
	}
}

func TestARuleReadsItsErrorBack(t *testing.T) {
	var err error = NotFound(Resource{Type: "order", Name: "o-1"})
	var rpcErr *Error
	if !errors.As(err, &rpcErr) || rpcErr.Message != "order 'o-1' not found" {
		t.Fatalf("%v", err)
	}
	if st, ok := status.FromError(err); !ok || st.Code().String() != "NotFound" || len(st.Details()) != 1 {
		t.Fatalf("status %v", st)
	}
}

func TestAReasonOrMetadataOutOfAIP193FormPanics(t *testing.T) {
	many := map[string]string{}
	for i := range MaxMetadataEntries + 1 {
		many["k"+strconv.Itoa(i)] = "v"
	}
	for _, c := range []struct {
		info      Info
		complaint string
	}{
		{Info{Reason: "not owner"}, "not UPPER_SNAKE_CASE"},
		{Info{Reason: strings.Repeat("A", 64)}, "not UPPER_SNAKE_CASE"},
		{Info{Reason: "NOT_OWNER_"}, "not UPPER_SNAKE_CASE"},
		{Info{Reason: "NOT_OWNER", Metadata: map[string]string{"Order": "o-1"}}, "'Order' is not lowerCamelCase"},
		{Info{Reason: "NOT_OWNER", Metadata: map[string]string{strings.Repeat("k", 65): "v"}}, "is not lowerCamelCase"},
		{Info{Reason: "NOT_OWNER", Metadata: many}, "9 entries, at most 8"},
	} {
		func() {
			defer func() {
				if p := recover(); p == nil || !strings.Contains(p.(string), c.complaint) {
					t.Errorf("%+v: panic %v, want one saying %q", c.info, p, c.complaint)
				}
			}()
			_ = PermissionDenied("no", c.info)
		}()
	}
}

package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"regexp"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Probes and tooling: open without a token, access-logged at DEBUG (acme_common.auth).
var openPrefixes = []string{"/grpc.health.v1.", "/grpc.reflection."}

func isOpen(method string) bool {
	for _, prefix := range openPrefixes {
		if strings.HasPrefix(method, prefix) {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------- auth

const unauthenticated = "missing or invalid bearer token"

// tokenChecker accepts `authorization: Bearer <token>` (scheme in any case) when the token
// is one of the configured ones, compared with every one in constant time.
type tokenChecker struct{ tokens [][]byte }

func newTokenChecker(tokens []string) *tokenChecker {
	if len(tokens) == 0 {
		return nil // authentication off
	}
	c := &tokenChecker{}
	for _, token := range tokens {
		c.tokens = append(c.tokens, []byte(token))
	}
	return c
}

func (c *tokenChecker) accepts(ctx context.Context) bool {
	presented, err := auth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return false
	}
	accepted := 0
	for _, token := range c.tokens {
		accepted |= subtle.ConstantTimeCompare([]byte(presented), token)
	}
	return accepted == 1
}

func (c *tokenChecker) authenticate(ctx context.Context) (context.Context, error) {
	if !c.accepts(ctx) {
		return nil, status.Error(codes.Unauthenticated, unauthenticated)
	}
	return ctx, nil
}

// unknownMethod answers a method the server does not have: UNIMPLEMENTED for a client that
// may call the server at all, UNAUTHENTICATED for one that may not (methods cannot be listed
// without a token). Not observed: a client's made-up names never become metric labels.
func unknownMethod(checker *tokenChecker) grpc.StreamHandler {
	return func(_ any, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		if checker != nil && !isOpen(method) && !checker.accepts(stream.Context()) {
			return status.Error(codes.Unauthenticated, unauthenticated)
		}
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
}

// ---------------------------------------------------------------------------- request ids

const (
	requestIDHeader    = "x-request-id"
	maxRequestIDLength = 128
)

type requestIDKey struct{}

// Visible ASCII only, what gRPC may send on (acme_common.request_ids).
var sendableRequestID = regexp.MustCompile(fmt.Sprintf(`^[\x21-\x7e]{1,%d}$`, maxRequestIDLength))

// requestID is the caller's x-request-id when it is sane, else 32 new random hex digits.
func requestID(ctx context.Context) string {
	if values := metadata.ValueFromIncomingContext(ctx, requestIDHeader); len(values) > 0 &&
		sendableRequestID.MatchString(values[0]) {
		return values[0]
	}
	var random [16]byte
	_, _ = rand.Read(random[:])
	return hex.EncodeToString(random[:])
}

// RequestID is the request id of the call being served ("" outside one).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func withRequestID(ctx context.Context) context.Context {
	return context.WithValue(ctx, requestIDKey{}, requestID(ctx))
}

// ---------------------------------------------------------------------------- limits

// limiter caps the RPCs running at once (GRPC_MAX_CONCURRENT_RPCS): more are answered
// RESOURCE_EXHAUSTED before anything else runs, as grpcio's maximum_concurrent_rpcs does.
type limiter struct {
	running atomic.Int64
	most    int64
}

func (l *limiter) enter() error {
	if l.running.Add(1) > l.most {
		l.running.Add(-1)
		return status.Error(codes.ResourceExhausted, "Concurrent RPC limit exceeded!")
	}
	return nil
}

func (l *limiter) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.running.Add(-1)
	return handler(ctx, req)
}

func (l *limiter) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.running.Add(-1)
	return handler(srv, ss)
}

// ---------------------------------------------------------------------------- malformed requests

type malformedKey struct{}

// takeMalformed (outermost, unary): a request whose bytes did not parse is noted in the
// context, and answered by rejectMalformed once the call is authenticated and observed.
func (c *tolerantCodec) takeMalformed(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := c.take(req); err != nil {
		ctx = context.WithValue(ctx, malformedKey{}, err)
	}
	return handler(ctx, req)
}

func rejectMalformed(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err, ok := ctx.Value(malformedKey{}).(error); ok {
		return nil, err
	}
	return handler(ctx, req)
}

// checkedStream: each streamed message whose bytes did not parse fails its RecvMsg.
func (c *tolerantCodec) checkedStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &checkedServerStream{ServerStream: ss, codec: c})
}

type checkedServerStream struct {
	grpc.ServerStream
	codec *tolerantCodec
}

func (s *checkedServerStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.codec.take(m)
}

// ---------------------------------------------------------------------------- statuses

// statuses turns what a handler returned into the status its client gets
// (acme_common.error_status): a status error stays; a call cut by the server's forced stop
// is UNAVAILABLE (what its client sees), one cut by its client CANCELLED or
// DEADLINE_EXCEEDED; anything else is logged with its error and answered INTERNAL
// "internal error", so no internal detail reaches the client.
type statuses struct {
	log     *slog.Logger
	forcing *atomic.Bool
}

func (s statuses) translate(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		if st.Code() == codes.Canceled && s.forcing.Load() {
			return status.Error(codes.Unavailable, "the server is shutting down")
		}
		return err
	}
	switch {
	case errors.Is(err, context.Canceled) && s.forcing.Load():
		return status.Error(codes.Unavailable, "the server is shutting down")
	case errors.Is(err, context.Canceled):
		return status.FromContextError(err).Err()
	case errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	logAt(ctx, s.log, slog.LevelError, "unhandled error in "+method,
		slog.String("method", method), slog.String("exception", err.Error()))
	return status.Error(codes.Internal, "internal error")
}

func (s statuses) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	reply, err := handler(ctx, req)
	return reply, s.translate(ctx, info.FullMethod, err)
}

func (s statuses) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return s.translate(ss.Context(), info.FullMethod, handler(srv, ss))
}

// panicked: a handler's panic is an unhandled error with its stack (recovery's handler).
func (s statuses) panicked(ctx context.Context, p any) error {
	logAt(ctx, s.log, slog.LevelError, "unhandled error",
		slog.String("exception", fmt.Sprintf("panic: %v\n%s", p, debug.Stack())))
	return status.Error(codes.Internal, "internal error")
}

// ---------------------------------------------------------------------------- access log

// accessLog is go-grpc-middleware's logging interceptor writing acme's access-log line: one
// `rpc` line (logger acme.access) per finished call with method, code, duration_ms, peer,
// instance and request_id; health and reflection at DEBUG; ACCESS_LOG picks which calls.
type accessLog struct {
	log      *slog.Logger
	instance string
	which    string // all, errors, off
}

func (a accessLog) options() []logging.Option {
	return []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithDurationField(func(d time.Duration) logging.Fields {
			return logging.Fields{"duration_ms", math.Round(float64(d.Nanoseconds())/1e3) / 1e3}
		}),
		logging.WithFieldsFromContext(func(ctx context.Context) logging.Fields {
			return logging.Fields{"request_id", RequestID(ctx)}
		}),
	}
}

func (a accessLog) logger() logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, _ logging.Level, _ string, fields ...any) {
		found := map[string]any{}
		for i := 0; i+1 < len(fields); i += 2 {
			if key, ok := fields[i].(string); ok {
				found[key] = fields[i+1]
			}
		}
		method := fmt.Sprintf("/%v/%v", found[logging.ServiceFieldKey], found[logging.MethodFieldKey])
		code := codeName(found["grpc.code"])
		if a.which == "off" || (a.which == "errors" && code == "OK") {
			return
		}
		level := slog.LevelInfo
		if isOpen(method) {
			level = slog.LevelDebug
		}
		peerAddress, _ := found["peer.address"].(string)
		logAt(ctx, a.log, level, "rpc",
			slog.String("method", method),
			slog.String("code", code),
			slog.Any("duration_ms", found["duration_ms"]),
			slog.String("peer", grpcPeer(peerAddress)),
			slog.String("instance", a.instance),
			slog.String("request_id", RequestID(ctx)),
		)
	})
}

// codeName is a code as the Python greeter names it: INVALID_ARGUMENT, not InvalidArgument.
func codeName(value any) string {
	text, _ := value.(string)
	for code := codes.OK; code <= codes.Unauthenticated; code++ {
		if code.String() == text {
			return upperSnake[code]
		}
	}
	return text
}

var upperSnake = map[codes.Code]string{
	codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN",
	codes.InvalidArgument: "INVALID_ARGUMENT", codes.DeadlineExceeded: "DEADLINE_EXCEEDED",
	codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
	codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED",
	codes.OutOfRange: "OUT_OF_RANGE", codes.Unimplemented: "UNIMPLEMENTED",
	codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE", codes.DataLoss: "DATA_LOSS",
	codes.Unauthenticated: "UNAUTHENTICATED",
}

// grpcPeer writes a peer as grpc core does (ipv4:127.0.0.1:5000, ipv6:[::1]:5000).
func grpcPeer(address string) string {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return address
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return "ipv6:" + address
	} else if ip != nil {
		return "ipv4:" + address
	}
	return address
}

// ---------------------------------------------------------------------------- compression

// compression answers in GRPC_COMPRESSION when the client accepts it (grpc-accept-encoding),
// else in the other algorithm it accepts, else uncompressed: what the Python greeter's
// compression level makes grpc core do.
func compression(preferred string) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	order := []string{preferred, "gzip", "deflate"}
	choose := func(ctx context.Context) {
		accepted, err := grpc.ClientSupportedCompressors(ctx)
		if err != nil {
			return
		}
		for _, name := range order {
			for _, candidate := range accepted {
				if candidate == name {
					_ = grpc.SetSendCompressor(ctx, name)
					return
				}
			}
		}
	}
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			choose(ctx)
			return handler(ctx, req)
		}, func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			choose(ss.Context())
			return handler(srv, ss)
		}
}

// ---------------------------------------------------------------------------- composition

// requestIDs puts the call's request id in its context (for every line it logs).
func requestIDs() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(withRequestID(ctx), req)
		}, func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			return handler(srv, &contextStream{ServerStream: ss, ctx: withRequestID(ss.Context())})
		}
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// notOpen selects the calls that need a token.
var notOpen = selector.MatchFunc(func(_ context.Context, call interceptors.CallMeta) bool {
	return !isOpen(call.FullMethod())
})

// authInterceptors: nil when authentication is off.
func authInterceptors(checker *tokenChecker) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	if checker == nil {
		return nil, nil
	}
	return selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(checker.authenticate), notOpen),
		selector.StreamServerInterceptor(auth.StreamServerInterceptor(checker.authenticate), notOpen)
}

func recoveryOption(s statuses) recovery.Option {
	return recovery.WithRecoveryHandlerContext(s.panicked)
}

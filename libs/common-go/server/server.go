// Package server hosts a gRPC service the way acme_common's run_service does, with
// grpc-go and go-grpc-middleware: settings from the environment (exit 2 naming each bad
// variable), JSON logs on stderr, bearer tokens, request ids, access log, Prometheus
// metrics, requests validated by their contract's protovalidate rules, health (NOT_SERVING
// on drain), reflection, channelz, the admin port, the limits of the memory budget,
// keepalive policy, TLS/mTLS and graceful drain on SIGTERM/SIGINT.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"buf.build/go/protovalidate"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/admin"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"acme.example/common/settings"
)

// Service is one gRPC service to host: its full proto name and how to register it.
type Service struct {
	Name     string
	Register func(grpc.ServiceRegistrar)
}

// Build returns the services of a process from its settings.
type Build func(*settings.Settings) []Service

// The buckets of acme_common.metrics (seconds).
var buckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Main runs a service until SIGTERM or SIGINT and returns the process's exit code: 2 for
// bad settings (each named on stderr), 1 when a port cannot be bound, 0 after a drain.
// With the one argument `probe` it is the image's health check instead (Probe).
func Main(model settings.Model, build Build) int {
	s, err := settings.Load(settings.Environ(), model)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	switch args := os.Args[1:]; {
	case len(args) == 1 && args[0] == "probe":
		return Probe(s)
	case len(args) > 0:
		fmt.Fprintf(os.Stderr, "usage: %s [probe] (configured by environment variables)\n", os.Args[0])
		return 2
	}
	log := NewLogger(os.Stderr, s.LogLevel, s.LogFormat)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	host, err := NewHost(s, build(s), log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := host.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.As(err, new(*ListenError)) {
			return 2 // a port setting that cannot be used: a bad setting (as acme_common)
		}
		return 1
	}
	<-ctx.Done()
	host.Stop()
	return 0
}

// Host is a started-and-stopped gRPC server hosting services plus health and reflection,
// with its admin server and metrics endpoint.
type Host struct {
	settings *settings.Settings
	services []Service
	log      *slog.Logger
	health   *healthServer
	forcing  atomic.Bool // the grace period is over: what still runs is cut (UNAVAILABLE)

	server         *grpc.Server
	admin          *grpc.Server
	metrics        *http.Server
	listener       net.Listener
	adminLn        net.Listener
	metricLn       net.Listener
	Port           int // the bound gRPC port
	AdminPortBound int
}

// NewHost builds the servers (nothing is bound yet); an error for TLS files that do not load
// or a contract rule (buf.validate) of a service that does not compile.
func NewHost(s *settings.Settings, services []Service, log *slog.Logger) (*Host, error) {
	h := &Host{settings: s, services: services, log: log, health: newHealthServer()}
	if s.TracingExporter != "none" {
		named(log, "acme.server").Warn("TRACING_EXPORTER is not implemented by this Go service; no spans are exported",
			slog.String("tracing_exporter", s.TracingExporter))
	}
	creds, err := serverCredentials(s, named(log, "acme.tls"))
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	codec := newTolerantCodec()
	checker := newTokenChecker(s.AuthTokens)
	limit := &limiter{most: int64(s.MaxConcurrentRPCs)}
	outcome := statuses{log: named(log, "acme.access"), forcing: &h.forcing}
	access := accessLog{log: named(log, "acme.access"), instance: s.InstanceName, which: s.AccessLog}

	registry := prometheus.NewRegistry()
	metrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(buckets)))
	inFlight := newInFlight()
	registry.MustRegister(metrics, inFlight.gauge, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	known := &methodSet{}
	idUnary, idStream := requestIDs()
	authUnary, authStream := authInterceptors(checker)
	unary := []grpc.UnaryServerInterceptor{
		codec.takeMalformed, limit.unary, idUnary, inFlight.unary, metrics.UnaryServerInterceptor(),
		logging.UnaryServerInterceptor(access.logger(), access.options()...),
	}
	stream := []grpc.StreamServerInterceptor{
		codec.checkedStream, limit.stream, known.only(idStream), known.only(inFlight.stream),
		known.only(metrics.StreamServerInterceptor()),
		known.only(logging.StreamServerInterceptor(access.logger(), access.options()...)),
	}
	if authUnary != nil {
		unary, stream = append(unary, authUnary), append(stream, known.only(authStream))
	}
	// Requests are validated once the call is authenticated, observed and parsed, and before
	// the service's code: INVALID_ARGUMENT is logged and counted, never told to a stranger.
	valid := validation{validator: protovalidate.GlobalValidator}
	if err := valid.prepare(services); err != nil {
		return nil, err
	}
	unary = append(unary, outcome.unary, recovery.UnaryServerInterceptor(recoveryOption(outcome)), rejectMalformed, valid.unary)
	stream = append(stream, known.only(outcome.stream), known.only(recovery.StreamServerInterceptor(recoveryOption(outcome))), valid.stream)
	if s.Compression != "none" {
		compressUnary, compressStream := compression(s.Compression)
		unary, stream = append(unary, compressUnary), append(stream, compressStream)
	}

	options := append(commonOptions(s),
		grpc.ForceServerCodecV2(codec),
		grpc.UnknownServiceHandler(unknownMethod(checker)),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	)
	if creds != nil {
		options = append(options, grpc.Creds(creds))
	}
	h.server = grpc.NewServer(options...)
	for _, service := range services {
		service.Register(h.server)
	}
	healthpb.RegisterHealthServer(h.server, h.health)
	if s.AdminServicesOnMainPort {
		if _, err := admin.Register(h.server); err != nil {
			return nil, err
		}
		reflection.Register(h.server)
	}
	methods := methodsOf(h.server)
	known.methods.Store(&methods)

	if s.AdminPort != nil { // plaintext, no token, the main server's limits, no observation
		h.admin = grpc.NewServer(append(commonOptions(s),
			grpc.ChainUnaryInterceptor(limit.unary), grpc.ChainStreamInterceptor(limit.stream))...)
		healthpb.RegisterHealthServer(h.admin, h.health)
		if _, err := admin.Register(h.admin); err != nil {
			return nil, err
		}
		reflection.Register(reflected{Server: h.admin, main: h.server})
	}
	if s.MetricsPort != 0 {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
		h.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	return h, nil
}

// commonOptions: the limits of the memory budget and the keepalive policy, on both servers.
func commonOptions(s *settings.Settings) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.MaxMessageBytes),
		grpc.MaxSendMsgSize(s.MaxMessageBytes),
		grpc.MaxConcurrentStreams(uint32(min(s.MaxConcurrentStreams, 1<<31))), //nolint:gosec // bounded
		// Pings from idle clients are welcome down to this interval; faster ones earn
		// strikes and, after 2 (grpc-go's fixed count, as the Python server's setting),
		// GOAWAY ENHANCE_YOUR_CALM too_many_pings.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: s.KeepaliveMinPingInterval, PermitWithoutStream: true,
		}),
		// Connections are recycled (GOAWAY, +-10 % jitter) so clients re-resolve and spread.
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge: s.MaxConnectionAge, MaxConnectionAgeGrace: s.MaxConnectionAgeGrace,
		}),
	}
}

// methodSet is the methods the main server has (set once its services are registered);
// other names (unknownMethod's) are not observed, so a client's made-up names never become
// metric labels or log lines.
type methodSet struct {
	methods atomic.Pointer[map[string]bool]
}

func methodsOf(server *grpc.Server) map[string]bool {
	methods := map[string]bool{}
	for service, info := range server.GetServiceInfo() {
		for _, method := range info.Methods {
			methods["/"+service+"/"+method.Name] = true
		}
	}
	return methods
}

func (m *methodSet) only(interceptor grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if known := m.methods.Load(); known == nil || !(*known)[info.FullMethod] {
			return handler(srv, ss)
		}
		return interceptor(srv, ss, info, handler)
	}
}

// reflected: the admin server's reflection lists the main server's services too.
type reflected struct {
	*grpc.Server
	main *grpc.Server
}

func (r reflected) GetServiceInfo() map[string]grpc.ServiceInfo {
	services := r.Server.GetServiceInfo()
	for name, info := range r.main.GetServiceInfo() {
		services[name] = info
	}
	return services
}

// ListenError is a configured port the host cannot listen on (taken, or not an address of
// this host): it names the setting, as acme_common does (`cannot listen on host:port
// (VARIABLE): reason`), and Main exits 2 for it, the exit code of a bad setting.
type ListenError struct {
	Variable string // GRPC_PORT, ADMIN_PORT or METRICS_PORT
	Address  string // host:port
	Err      error
}

func (e *ListenError) Error() string {
	reason := e.Err
	var errno syscall.Errno
	if errors.As(e.Err, &errno) {
		reason = errno // "address already in use", not the whole "listen tcp ...: bind: ..."
	}
	return fmt.Sprintf("cannot listen on %s (%s): %v", e.Address, e.Variable, reason)
}

func (e *ListenError) Unwrap() error { return e.Err }

// Start binds (the admin port first: a taken one stops the start before serving), serves,
// marks every service SERVING and logs the `serving` line with the bound address.
func (h *Host) Start() error {
	s := h.settings
	var err error
	if h.admin != nil {
		address := net.JoinHostPort(s.GRPCHost, strconv.Itoa(*s.AdminPort))
		if h.adminLn, err = net.Listen("tcp", address); err != nil {
			return &ListenError{"ADMIN_PORT", address, err}
		}
		h.AdminPortBound = h.adminLn.Addr().(*net.TCPAddr).Port
	}
	if h.metrics != nil {
		address := net.JoinHostPort(s.GRPCHost, strconv.Itoa(s.MetricsPort))
		if h.metricLn, err = net.Listen("tcp", address); err != nil {
			return &ListenError{"METRICS_PORT", address, err}
		}
		go func() { _ = h.metrics.Serve(h.metricLn) }()
		named(h.log, "acme.metrics").Info("metrics", slog.String("address", address), slog.String("path", "/metrics"))
	}
	address := net.JoinHostPort(s.GRPCHost, strconv.Itoa(s.GRPCPort))
	if h.listener, err = net.Listen("tcp", address); err != nil {
		return &ListenError{"GRPC_PORT", address, err}
	}
	h.Port = h.listener.Addr().(*net.TCPAddr).Port
	go func() { _ = h.server.Serve(h.listener) }()
	names := make([]string, len(h.services))
	for i, service := range h.services {
		names[i] = service.Name
	}
	for _, name := range slices.Concat([]string{""}, names) {
		h.health.set(name, healthpb.HealthCheckResponse_SERVING)
	}
	if h.admin != nil { // after SERVING: probes see a ready server
		go func() { _ = h.admin.Serve(h.adminLn) }()
	}
	var adminPort any
	if h.admin != nil {
		adminPort = h.AdminPortBound
	}
	named(h.log, "acme.server").Info("serving",
		slog.String("address", net.JoinHostPort(s.GRPCHost, strconv.Itoa(h.Port))),
		slog.Any("services", names),
		slog.Bool("tls", s.TLSCertFile != ""),
		slog.Bool("mtls", s.TLSClientCAFile != ""),
		slog.Bool("auth", len(s.AuthTokens) > 0),
		slog.Any("admin_port", adminPort),
	)
	return nil
}

// Stop reports NOT_SERVING, keeps serving for the drain delay while clients' health checks
// move traffic away, then refuses new calls, ends open health watches and gives in-flight
// calls the grace period; what still runs after it is cut (recorded UNAVAILABLE).
func (h *Host) Stop() {
	s := h.settings
	log := named(h.log, "acme.server")
	log.Info("draining", slog.Float64("drain_delay_seconds", seconds(s.DrainDelay)),
		slog.Float64("grace_seconds", seconds(s.GracePeriod)))
	h.health.drain()
	time.Sleep(s.DrainDelay)
	stopped := make(chan struct{})
	go func() {
		h.server.GracefulStop() // closes the listener and sends GOAWAY at once
		close(stopped)
	}()
	// GracefulStop has begun refusing calls before watchers could re-Watch (grpc's
	// health-checking clients restart a Watch that ended at once).
	time.Sleep(10 * time.Millisecond)
	h.health.endWatches()
	select {
	case <-stopped:
	case <-time.After(s.GracePeriod):
		h.forcing.Store(true)
		h.server.Stop()
		<-stopped
	}
	if h.metrics != nil {
		_ = h.metrics.Shutdown(context.Background())
	}
	if h.admin != nil { // last: its health said NOT_SERVING through the drain
		h.admin.Stop()
	}
	log.Info("stopped")
}

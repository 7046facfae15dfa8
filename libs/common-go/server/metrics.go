package server

import (
	"context"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// inFlight is grpc_server_in_flight (acme_common.metrics), which go-grpc-middleware's
// provider does not have: RPCs being served now, by grpc_type, grpc_service, grpc_method.
type inFlight struct{ gauge *prometheus.GaugeVec }

func newInFlight() inFlight {
	return inFlight{gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "grpc_server_in_flight", Help: "RPCs being served now.",
	}, []string{"grpc_type", "grpc_service", "grpc_method"})}
}

func splitMethod(full string) (string, string) {
	service, method, _ := strings.Cut(strings.TrimPrefix(full, "/"), "/")
	return service, method
}

func (f inFlight) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	service, method := splitMethod(info.FullMethod)
	gauge := f.gauge.WithLabelValues("unary", service, method)
	gauge.Inc()
	defer gauge.Dec()
	return handler(ctx, req)
}

func (f inFlight) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	kind := "bidi_stream"
	switch {
	case info.IsClientStream && !info.IsServerStream:
		kind = "client_stream"
	case !info.IsClientStream && info.IsServerStream:
		kind = "server_stream"
	}
	service, method := splitMethod(info.FullMethod)
	gauge := f.gauge.WithLabelValues(kind, service, method)
	gauge.Inc()
	defer gauge.Dec()
	return handler(srv, ss)
}

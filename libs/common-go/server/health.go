package server

import (
	"context"
	"sync"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthServer is grpc-go's health server plus endWatches (acme_common.health): grpc-go's
// Watch waits for the next change forever, so a graceful stop would wait out the whole grace
// period for its watchers and then cut them. Once the server refuses new calls, endWatches
// makes every open Watch send the current status if it has not, then end with OK.
type healthServer struct {
	*health.Server
	ending    context.Context // done once endWatches is called
	end       context.CancelFunc
	mu        sync.Mutex
	statusFor map[string]healthpb.HealthCheckResponse_ServingStatus
}

func newHealthServer() *healthServer {
	ending, end := context.WithCancel(context.Background())
	return &healthServer{
		Server: health.NewServer(), ending: ending, end: end,
		statusFor: map[string]healthpb.HealthCheckResponse_ServingStatus{},
	}
}

// set records and serves a service's status.
func (h *healthServer) set(service string, st healthpb.HealthCheckResponse_ServingStatus) {
	h.mu.Lock()
	h.statusFor[service] = st
	h.mu.Unlock()
	h.SetServingStatus(service, st)
}

// drain: every service NOT_SERVING, for good.
func (h *healthServer) drain() {
	h.mu.Lock()
	for service := range h.statusFor {
		h.statusFor[service] = healthpb.HealthCheckResponse_NOT_SERVING
	}
	h.mu.Unlock()
	h.Shutdown()
}

func (h *healthServer) endWatches() { h.end() }

func (h *healthServer) current(service string) healthpb.HealthCheckResponse_ServingStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st, ok := h.statusFor[service]; ok {
		return st
	}
	return healthpb.HealthCheckResponse_SERVICE_UNKNOWN
}

// Watch is grpc-go's, ended with OK (after the current status) once endWatches is called.
func (h *healthServer) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(h.ending, cancel)
	defer stop()
	watched := &watchStream{Health_WatchServer: stream, ctx: ctx, last: -1}
	err := h.Server.Watch(req, watched)
	select {
	case <-h.ending.Done():
		if stream.Context().Err() != nil {
			return err
		}
		if now := h.current(req.GetService()); watched.last != now {
			if sendErr := stream.Send(&healthpb.HealthCheckResponse{Status: now}); sendErr != nil {
				return sendErr
			}
		}
		return nil
	default:
		return err
	}
}

type watchStream struct {
	healthpb.Health_WatchServer
	ctx  context.Context
	mu   sync.Mutex
	last healthpb.HealthCheckResponse_ServingStatus
}

func (w *watchStream) Context() context.Context { return w.ctx }

func (w *watchStream) Send(response *healthpb.HealthCheckResponse) error {
	w.mu.Lock()
	w.last = response.GetStatus()
	w.mu.Unlock()
	return w.Health_WatchServer.Send(response)
}

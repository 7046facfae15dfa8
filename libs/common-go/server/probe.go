package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"acme.example/common/settings"
)

// probeTimeout bounds one probe: below the 5 s timeout of the image's and compose's checks.
const probeTimeout = 4 * time.Second

// Probe is the image's health check (`<binary> probe`, the HEALTHCHECK of a distroless image
// with no shell and no grpc-health-probe): a grpc.health.v1 Check of the whole server ("")
// over plaintext at 127.0.0.1, on ADMIN_PORT when one is set (plaintext even when the main
// port speaks TLS), else GRPC_PORT. Exit 0 when SERVING, 1 otherwise (NOT_SERVING from
// SIGTERM on, no answer); the answer goes to stderr.
func Probe(s *settings.Settings) int {
	port := s.GRPCPort
	if s.AdminPort != nil && *s.AdminPort != 0 {
		port = *s.AdminPort
	}
	address := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "probe %s: %v\n", address, err)
		return 1
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	answer, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "probe %s: %v\n", address, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "probe %s: %s\n", address, answer.GetStatus())
	if answer.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return 1
	}
	return 0
}

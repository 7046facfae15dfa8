// Command interop-server is grpc.testing.TestService, the service of gRPC's interop test
// cases (doc/interop-test-descriptions.md in grpc/grpc), hosted on the Go service stack
// exactly as greeter-go hosts Greeter: server.Main with the same settings and defaults
// (GRPC_MAX_MESSAGE_BYTES and the other limits, keepalive, tokens, request ids, access log,
// metrics, health, reflection, drain). The implementation of the service is grpc-go's own
// interop server (google.golang.org/grpc/interop); tests/interop/test_grpc_interop.py runs
// the cases against it.
package main

import (
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"acme.example/common/server"
	"acme.example/common/settings"
)

func build(*settings.Settings) []server.Service {
	return []server.Service{{
		Name: testgrpc.TestService_ServiceDesc.ServiceName,
		Register: func(r grpc.ServiceRegistrar) {
			testgrpc.RegisterTestServiceServer(r, interop.NewTestServer())
		},
	}}
}

func main() {
	os.Exit(server.Main(settings.Model{Name: "ServerSettings", Port: 50051}, build))
}

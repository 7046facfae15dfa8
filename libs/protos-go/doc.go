// Package protos is the Go twin of libs/protos: messages and gRPC stubs generated from
// proto/ by `nox -s codegen` (protoc-gen-go, protoc-gen-go-grpc at the versions
// tools/go/go.mod pins). The package path follows the proto package:
// acme.greeter.v1 -> acme.example/protos/acme/greeter/v1 (package greeterv1).
// Everything below acme/ is generated; `nox -s lint` fails when it differs from proto/.
package protos

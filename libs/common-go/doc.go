// Package common is the Go twin of libs/common (acme_common): what every Go service of the
// repository is built on. server hosts a service (server.Main: settings, interceptors, request
// validation by the contract's protovalidate rules, health, reflection, admin, metrics, TLS,
// logs, drain, the image's probe), settings reads the shared settings (ServerSettings) and a
// service's own (settings.Model), rpcerr makes the errors a rule returns (NotFound,
// FailedPrecondition, ...: acme_common's, with the same google.rpc details and bounds;
// docs/errors.md).
package common

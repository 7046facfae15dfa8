// Row 7, the physical-limit reference: acme.greeter.v1.GreeterService/SayHello in C++ with
// gRPC's callback API (Debian's libgrpc++-dev), same proto, same reply shape, no validation.
//
//   greeter_server 127.0.0.1:50070     (stops on SIGTERM / SIGINT)

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "acme/greeter/v1/greeter.grpc.pb.h"

namespace {

using acme::greeter::v1::GreeterService;
using acme::greeter::v1::SayHelloRequest;
using acme::greeter::v1::SayHelloResponse;

class Greeter final : public GreeterService::CallbackService {
  grpc::ServerUnaryReactor* SayHello(grpc::CallbackServerContext* context,
                                     const SayHelloRequest* request,
                                     SayHelloResponse* reply) override {
    reply->set_message("Hello, " + request->name() + "!");
    reply->set_served_by("bench-cpp");
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s HOST:PORT\n", argv[0]);
    return 2;
  }
  // Block the stop signals before gRPC starts its threads; main waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Greeter service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(argv[1], grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "cannot listen on %s\n", argv[1]);
    return 1;
  }
  std::printf("serving on %s\n", argv[1]);
  std::fflush(stdout);

  int received = 0;
  sigwait(&stop_signals, &received);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  return 0;
}

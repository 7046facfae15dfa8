"""The gateway: browsers and HTTP/JSON clients reach the gRPC services through it."""

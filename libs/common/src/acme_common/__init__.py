"""Shared building blocks of every acme gRPC service: settings, logging, server, channels."""

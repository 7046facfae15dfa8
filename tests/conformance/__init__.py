"""The Connect conformance suite (connectrpc.com/conformance) against the real edge: the
gateway, forwarding to a conformance service on acme_common's server stack
(docs/testing.md, "Connect conformance")."""

# The gateway calls the service with this deadline (CONFORMANCE_TIMEOUT, launcher.py) when its
# client set none. A deadline that far away is the gateway's default, not a client's timeout,
# which the suite's cases keep to a few seconds: the service does not echo it as the
# request's timeout_ms.
EDGE_DEFAULT_TIMEOUT = 300.0  # seconds
CLIENT_TIMEOUTS_BELOW = EDGE_DEFAULT_TIMEOUT - 30.0

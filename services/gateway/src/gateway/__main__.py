"""Entry point: `gateway` or `python -m gateway`; configured by environment variables."""

from __future__ import annotations

import sys

from acme_common import load_settings
from gateway.forwarding import find_service
from gateway.server import supervise
from gateway.settings import GatewaySettings, client_settings_type


def main() -> None:
    """Read the settings (exit 2 naming each bad variable or unknown service), then serve
    until SIGTERM/SIGINT (gateway.server, in this process); exit 1 when the port is taken."""
    settings = load_settings(GatewaySettings)
    for name in settings.gateway_services:
        try:
            find_service(name)
        except KeyError as error:
            print(f"invalid configuration: GATEWAY_SERVICES: {name}: {error}", file=sys.stderr)
            raise SystemExit(2) from None
    clients = [
        (name, load_settings(client_settings_type(name))) for name in settings.gateway_services
    ]
    if settings.gateway_pass_authorization:
        own = [name for name, client in clients if client.auth_token is not None]
        if own:
            # Two authorization headers would reach the service: which one counts is unclear.
            print(
                "invalid configuration: GATEWAY_PASS_AUTHORIZATION forwards the client's token; "
                f"unset the gateway's own token of {', '.join(own)} (<NAME>_AUTH_TOKEN)",
                file=sys.stderr,
            )
            raise SystemExit(2)
    supervise(settings)


if __name__ == "__main__":
    main()

"""Entry point: `greeter` or `python -m greeter`; configured by environment variables."""

from __future__ import annotations

from acme_common import run_service
from greeter.service import build
from greeter.settings import GreeterSettings


def main() -> None:
    run_service("greeter", GreeterSettings, build)


if __name__ == "__main__":
    main()

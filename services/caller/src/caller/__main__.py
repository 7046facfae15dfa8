"""Entry point: `caller` or `python -m caller`; configured by environment variables."""

from __future__ import annotations

from acme_common import run_service
from caller.service import build
from caller.settings import CallerSettings, GreeterClientSettings


def main() -> None:
    run_service("caller", CallerSettings, build, clients=[GreeterClientSettings])


if __name__ == "__main__":
    main()

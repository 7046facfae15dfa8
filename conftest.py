"""Every test of the repository runs without the settings exported in the developer's shell
(AUTH_TOKENS, GRPC_PORT, LOG_LEVEL, ...): tests that build settings in their own process read
the environment, and must not depend on it. Service processes get a clean environment from
acme_devkit too."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from acme_devkit.environment import clean_environment


@pytest.fixture(autouse=True, scope="session")
def _no_settings_from_the_shell() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        keep = clean_environment()
        for name in [name for name in os.environ if name not in keep]:
            patch.delenv(name)
        yield

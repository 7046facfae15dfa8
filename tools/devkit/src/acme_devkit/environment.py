"""The environment for a service process under test: the caller's, minus every variable a
service reads (so nothing exported in a developer's shell changes what a test runs), plus the
test's own settings. The variables are derived from the settings models, so a new setting,
or a new service, is covered without a list to keep in step."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Iterator, Mapping
from functools import cache

from pydantic_settings import BaseSettings

from acme_common import ClientSettings, ProcessSettings, ServerSettings

# The test harness's own switch (root conftest.py's --event-loop sets it): every service
# process it starts gets EVENT_LOOP=<its value>, so a whole suite runs on the other loop.
TEST_EVENT_LOOP = "ACME_TEST_EVENT_LOOP"

# Read by the services without being a settings field: grpc core's switches, OpenTelemetry's
# exporter configuration, the workers' plumbing, proxies.
OTHER_PREFIXES = ("GRPC_", "OTEL_")
OTHER_NAMES = frozenset(
    {"PROMETHEUS_MULTIPROC_DIR", "ACME_WORKER_INDEX", "HTTP_PROXY", "HTTPS_PROXY"}
    | {"ALL_PROXY", "NO_PROXY", "GRPC_PROXY"}
)


def _subclasses(base: type[BaseSettings]) -> Iterator[type[BaseSettings]]:
    for subclass in base.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


def _import_service_settings() -> None:
    """Import `<package>.settings` of every installed distribution that depends on
    acme-common (the services), so that their settings classes exist."""
    for distribution in importlib.metadata.distributions():
        requirements = distribution.requires or []
        if not any(r.split(";")[0].strip().startswith("acme-common") for r in requirements):
            continue
        packages = (distribution.read_text("top_level.txt") or "").split()
        packages += [name for name in _packages_of(distribution) if name not in packages]
        for package in packages:
            try:
                importlib.import_module(f"{package}.settings")
            except ImportError:
                continue


def _packages_of(distribution: importlib.metadata.Distribution) -> list[str]:
    """Top-level packages named by a distribution's console scripts (`name = "pkg.x:main"`)."""
    return [
        entry.value.split(":")[0].split(".")[0]
        for entry in distribution.entry_points
        if entry.group == "console_scripts"
    ]


@cache
def setting_variables() -> frozenset[str]:
    """Every variable the settings models read (upper case: pydantic-settings matches case
    insensitively), from ProcessSettings (ServerSettings among its subclasses), ClientSettings
    and every service's subclasses."""
    _import_service_settings()
    names: set[str] = set()
    # ClientSettings itself is never read (it has no prefix): its subclasses are.
    read: list[type[BaseSettings]] = [
        ProcessSettings,
        *_subclasses(ProcessSettings),
        *_subclasses(ClientSettings),
    ]
    for settings_type in read:
        prefix = str(settings_type.model_config.get("env_prefix") or "")
        names |= {(prefix + field).upper() for field in settings_type.model_fields}
    return frozenset(names)


def clean_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without any variable a service reads, plus EVENT_LOOP when the harness
    runs a suite on a chosen loop (TEST_EVENT_LOOP), plus overrides."""
    read = setting_variables() | OTHER_NAMES
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in read and not key.upper().startswith(OTHER_PREFIXES)
    }
    env["PYTHONUNBUFFERED"] = "1"
    loop = os.environ.get(TEST_EVENT_LOOP)
    if loop:
        env["EVENT_LOOP"] = loop
    env.update(overrides or {})
    return env


def harness_event_loop() -> str:
    """The loop the service processes started through clean_environment run on (unless a
    test sets EVENT_LOOP itself): TEST_EVENT_LOOP when set, else EVENT_LOOP's default."""
    default = str(ServerSettings.model_fields["event_loop"].default)
    return os.environ.get(TEST_EVENT_LOOP) or default

"""Every test of the repository runs without the settings exported in the developer's shell
(AUTH_TOKENS, GRPC_PORT, LOG_LEVEL, ...): tests that build settings in their own process read
the environment, and must not depend on it. Service processes get a clean environment from
acme_devkit too.

The event loop is the one exception, and only by an explicit option: `pytest --event-loop
uvloop|asyncio` (nox -s tests_other_loop) runs the in-process tests on that loop and has
acme_devkit start every service process with EVENT_LOOP set to it. Without the option both
run on the services' default loop (ServerSettings' EVENT_LOOP default)."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from typing import cast, get_args

import pytest

from acme_common import EventLoop, ServerSettings, loop_factory
from acme_devkit.environment import TEST_EVENT_LOOP, clean_environment

# The service processes' fixtures (greeter, caller, gateway, the per-test `services` factory),
# for tests/ and for each service's own tests in services/<name>/tests.
pytest_plugins = ["tests.processes"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--event-loop",
        choices=get_args(EventLoop),
        default=None,
        help="run the suite on this event loop: in-process tests and every service process "
        "(EVENT_LOOP); default: the services' default loop",
    )


# Suites marked integration that run tools, never a server of ours on an event loop: the
# scaffold (its generated service's own tests run in a child pytest on the default loop), buf
# breaking, codegen, the other-languages template, the manifests' invariants; and the docs'
# commands, which test what a reader pastes, not the loop of the stack they call.
TOOL_SUITES = (
    "tests/scaffold/",
    "tests/docs/",
    "tests/contracts/test_breaking.py",
    "tests/tools/test_codegen.py",
    "tests/interop/test_other_languages_template.py",
    "tests/k8s/test_manifests.py",
)


def depends_on_the_loop(item: pytest.Item) -> bool:
    """Whether --event-loop can change the outcome of a test: it runs on the loop (a coroutine
    test, or an async fixture) or starts our service processes (marked integration, outside
    TOOL_SUITES), which acme_devkit starts on that loop. A sync test that starts no process,
    such as a service's rules tests, cannot depend on it (asyncio.run inside one uses asyncio
    whatever the option says)."""
    path = item.path.relative_to(item.config.rootpath).as_posix()
    if item.get_closest_marker("integration") is not None:
        return not path.startswith(TOOL_SUITES)
    if inspect.iscoroutinefunction(getattr(item, "obj", None)):
        return True
    fixtures = getattr(item, "_fixtureinfo", None)
    definitions = fixtures.name2fixturedefs.values() if fixtures is not None else []
    return any(
        inspect.iscoroutinefunction(d.func) or inspect.isasyncgenfunction(d.func)
        for chain in definitions
        for d in chain
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark loop_independent what the event loop cannot change: `nox -s tests_other_loop`
    deselects those (`-m "not loop_independent"`), as they ran in `nox -s tests` already.
    (pluggy passes only the arguments named here.)"""
    for item in items:
        if not depends_on_the_loop(item):
            item.add_marker(pytest.mark.loop_independent)


def chosen_event_loop(config: pytest.Config) -> EventLoop:
    """The loop this session runs on: --event-loop, else the services' default."""
    option = config.getoption("--event-loop")
    default = ServerSettings.model_fields["event_loop"].default
    return cast("EventLoop", option or default)


def pytest_asyncio_loop_factories(
    config: pytest.Config,
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """pytest-asyncio's hook (pluggy passes only the arguments named here): every async
    test and fixture runs on the chosen loop."""
    name = chosen_event_loop(config)
    return {name: loop_factory(name)}


@pytest.fixture(autouse=True, scope="session")
def _no_settings_from_the_shell(pytestconfig: pytest.Config) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        keep = clean_environment()
        for name in [name for name in os.environ if name not in keep or name == TEST_EVENT_LOOP]:
            patch.delenv(name)
        if pytestconfig.getoption("--event-loop") is not None:
            patch.setenv(TEST_EVENT_LOOP, chosen_event_loop(pytestconfig))
        yield

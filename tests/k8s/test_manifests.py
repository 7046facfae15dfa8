"""The checks of tools/validate_k8s.py can fail: each test breaks one thing (in a copy of the
rendered objects, or of the source tree) and asserts the check reports it. `nox -s lint` runs
the checks themselves on the overlays as they are.
"""

from __future__ import annotations

import base64
import copy
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from acme_devkit.external import not_run
from acme_devkit.go import go_program
from tools.k8s_invariants import ADMIN_PORT, ROOT, TLS_DIR, Manifests, Obj, discovered_apps
from tools.validate_k8s import render, requires_mtls, with_optional_components

pytestmark = pytest.mark.integration  # runs kubectl, kube-score and tools/validate_k8s.py

K8S = ROOT / "deploy" / "k8s"
APPS = discovered_apps()
CERT_MANAGER = "prod+cert-manager"


@pytest.fixture(scope="session")
def overlays() -> Iterator[dict[str, Path]]:
    """dev, prod, and prod with its optional components/cert-manager enabled."""
    prod = K8S / "overlays" / "prod"
    with with_optional_components(prod) as variant:
        assert variant is not None, "prod no longer offers components/cert-manager"
        yield {"dev": K8S / "overlays" / "dev", "prod": prod, CERT_MANAGER: variant}


@cache
def rendered(overlay: Path) -> tuple[Obj, ...]:
    objects, warnings = render(overlay)
    assert not warnings
    return tuple(objects)


def problems(objects: list[Obj], overlay: Path) -> list[str]:
    return Manifests(objects, APPS, require_mtls=requires_mtls(overlay)).check()


# --- mutations of the rendered objects ----------------------------------------------------------


def find(objects: list[Obj], kind: str, prefix: str) -> Obj:
    """The one object of kind named prefix or prefix-<hash> (generated ConfigMaps, Secrets)."""
    found = [
        o
        for o in objects
        if o["kind"] == kind and prefix in (o["metadata"]["name"], o["metadata"]["name"][:-11])
    ]
    assert len(found) == 1, f"no single {kind} {prefix} to mutate"
    return found[0]


def container(objects: list[Obj], name: str) -> Obj:
    containers = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    mains: list[Obj] = [c for c in containers if c["name"] == name]
    assert len(mains) == 1, f"no container {name} to mutate"
    return mains[0]


def set_in(obj: Any, path: list[str | int], value: Any) -> None:
    for step in path[:-1]:
        obj = obj[step]
    obj[path[-1]] = value


Mutation = Callable[[list[Obj]], None]


def on_container(name: str, path: list[str | int], value: Any) -> Mutation:
    return lambda objects: set_in(container(objects, name), path, value)


def on(kind: str, name: str, path: list[str | int], value: Any) -> Mutation:
    return lambda objects: set_in(find(objects, kind, name), path, value)


def on_configmap(name: str, key: str, value: str) -> Mutation:
    return on("ConfigMap", name, ["data", key], value)


def replace_env(name: str, variable: str, entry: Obj | None) -> Mutation:
    """Replace (or, with None, drop) the container's `env` entry for variable."""

    def apply(objects: list[Obj]) -> None:
        env = container(objects, name)["env"]
        index = next(i for i, var in enumerate(env) if var["name"] == variable)
        env[index : index + 1] = [] if entry is None else [entry]

    return apply


def secret_value(name: str, key: str, value: bytes) -> Mutation:
    return on("Secret", name, ["data", key], base64.b64encode(value).decode())


def secret_ref(variable: str, secret: str) -> Obj:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": variable}}}


@dataclass(frozen=True)
class Case:
    id: str
    mutate: Mutation
    reported: str  # a fragment of the problem the checker must report
    overlays: tuple[str, ...] = ("dev", "prod")


READINESS = ["readinessProbe", "grpc"]
POLICY = ("NetworkPolicy", "acme-ingress")
INGRESS_PORTS: list[str | int] = ["spec", "ingress", 0, "ports"]
PROD, DEV, CERTS = ("prod",), ("dev",), (CERT_MANAGER,)
CASES = [
    # ports: the settings' defaults, the ConfigMaps, the container ports, the Services
    Case("grpc-port", on_configmap("greeter-config", "GRPC_PORT", "50060"), "GRPC_PORT 50060"),
    Case(
        "container-port",
        on_container("caller", ["ports", 0, "containerPort"], 50053),
        "container port named grpc is 50053",
    ),
    Case(
        "gateway-port",
        on_configmap("gateway-config", "GATEWAY_PORT", "8081"),
        "GATEWAY_PORT 8081 != container port named http 8080",
    ),
    Case(
        "metrics-annotation",
        on(
            "Deployment",
            "caller",
            ["spec", "template", "metadata", "annotations", "prometheus.io/port"],
            "8080",
        ),
        "prometheus.io/port 8080 must agree",
    ),
    Case("metrics-env", on_configmap("acme-common", "METRICS_PORT", "9100"), "METRICS_PORT 9100"),
    Case(
        "service-port",
        on("Service", "greeter", ["spec", "ports", 0, "port"], 50059),
        "port grpc must be 50051",
    ),
    Case(
        "service-selector",
        on("Service", "caller", ["spec", "selector", "app.kubernetes.io/name"], "greeter"),
        "selects Deployments ['greeter']",
    ),
    # settings names and sources
    Case(
        "variable-typo",
        replace_env("greeter", "AUTH_TOKENS", secret_ref("AUTH_TOKEN", "greeter-auth")),
        "AUTH_TOKEN is not a setting of greeter",
        DEV,
    ),
    Case(
        "own-configmap-typo",
        on_configmap("caller-config", "GREETER_TIMEOUTS", "5"),
        "GREETER_TIMEOUTS is not a setting of caller",
    ),
    Case(
        "port-not-from-configmap",
        lambda objects: container(objects, "greeter")["env"].append(
            {"name": "GRPC_PORT", "value": "50051"}
        ),
        "GRPC_PORT must come from a ConfigMap",
    ),
    Case(
        "token-in-plain-env",
        replace_env("greeter", "AUTH_TOKENS", {"name": "AUTH_TOKENS", "value": "s3cret"}),
        "AUTH_TOKENS must come from a Secret",
    ),
    Case(
        "host", on_configmap("acme-common", "GRPC_HOST", "127.0.0.1"), "GRPC_HOST must be 0.0.0.0"
    ),
    # probes on the admin port
    Case(
        "readiness-port",
        on_container("greeter", [*READINESS, "port"], 50099),
        "readinessProbe port 50099",
    ),
    Case(
        "liveness-port",
        on_container("caller", ["livenessProbe", "grpc", "port"], 50051),
        "livenessProbe port 50051",
    ),
    Case(
        "readiness-service-name",
        on_container("greeter", [*READINESS, "service"], "acme.greeter.v1.Greeter"),
        "readinessProbe service",
    ),
    Case(
        "liveness-service-name",
        on_container(
            "caller", ["livenessProbe", "grpc", "service"], "acme.caller.v1.CallerService"
        ),
        "livenessProbe service",
    ),
    Case(
        "exec-probe",
        on_container("greeter", ["readinessProbe"], {"exec": {"command": ["grpc-health-probe"]}}),
        "native gRPC probe",
    ),
    Case(
        "admin-port-in-configmap",
        on_configmap("acme-common", "ADMIN_PORT", "9092"),
        "ADMIN_PORT 9092 != container port named admin 9091",
    ),
    Case(
        "gateway-readiness-path",
        on_container("gateway", ["readinessProbe", "httpGet", "path"], "/health"),
        "readinessProbe must GET /healthz on port http",
    ),
    Case(
        "gateway-liveness-on-health-path",
        on_container(
            "gateway", ["livenessProbe"], {"httpGet": {"path": "/healthz", "port": "http"}}
        ),
        "livenessProbe must be a tcpSocket probe of port http",
    ),
    # the admin port stays inside the pod's node
    Case(
        "admin-port-exposed",
        on("Service", "caller", ["spec", "ports", 1], {"name": "admin", "port": ADMIN_PORT}),
        "exposes the plaintext admin port",
    ),
    Case(
        "admin-port-admitted",
        on(*POLICY, [*INGRESS_PORTS, 1, "port"], ADMIN_PORT),
        "a NetworkPolicy admits the plaintext admin port",
    ),
    Case(
        "every-port-admitted",
        on(*POLICY, ["spec", "ingress"], [{}]),
        "a NetworkPolicy admits the plaintext admin port",
    ),
    Case(
        "grpc-port-not-admitted",
        on(*POLICY, [*INGRESS_PORTS, 0, "port"], "grpcs"),
        "no NetworkPolicy admits the grpc port",
    ),
    Case(
        "no-network-policy",
        on(*POLICY, ["spec", "podSelector", "matchLabels"], {"x": "y"}),
        "no NetworkPolicy limits ingress",
    ),
    # shutdown: the pod outlives the drain
    Case(
        "grace-period",
        on_configmap("acme-common", "GRPC_GRACE_PERIOD", "30"),
        "must exceed GRPC_GRACE_PERIOD 30",
    ),
    Case(
        "termination-grace",
        on(
            "Deployment",
            "caller",
            ["spec", "template", "spec", "terminationGracePeriodSeconds"],
            10,
        ),
        "terminationGracePeriodSeconds 10",
    ),
    Case(
        "gateway-grace-period",
        on_configmap("gateway-config", "GATEWAY_GRACE_PERIOD", "40"),
        "must exceed GATEWAY_GRACE_PERIOD 40",
    ),
    # targets: headless Services, the pods' port, dialled as the server listens
    Case(
        "target-port",
        on_configmap("caller-config", "GREETER_TARGET", "dns:///greeter:50052"),
        "GREETER_TARGET port 50052",
    ),
    Case(
        "target-scheme",
        on_configmap("caller-config", "GREETER_TARGET", "greeter:50051"),
        "must be dns:///",
    ),
    Case(
        "target-service",
        on_configmap("caller-config", "GREETER_TARGET", "dns:///greeter-lb:50051"),
        "no Service greeter-lb of a gRPC service",
    ),
    Case(
        "target-namespace",
        on_configmap("caller-config", "GREETER_TARGET", "dns:///greeter.other.svc:50051"),
        "is not in namespace",
    ),
    Case(
        "gateway-target-port",
        on_configmap("gateway-config", "CALLER_TARGET", "dns:///caller:50051"),
        "CALLER_TARGET port 50051 != caller's grpc port 50052",
    ),
    Case(
        "not-headless",
        on("Service", "caller", ["spec", "clusterIP"], "10.0.0.1"),
        "Service/caller: must be headless",
    ),
    Case(
        "token-rejected",
        secret_value("greeter-auth", "AUTH_TOKENS", b"other"),
        "caller's GREETER_AUTH_TOKEN is not in greeter's AUTH_TOKENS",
        DEV,
    ),
    Case(
        "gateway-token-rejected",
        secret_value("gateway-auth", "CALLER_AUTH_TOKEN", b"x"),
        "gateway's CALLER_AUTH_TOKEN is not in caller's AUTH_TOKENS",
        DEV,
    ),
    Case(
        "secret-name-typo",
        replace_env("greeter", "AUTH_TOKENS", secret_ref("AUTH_TOKENS", "greeter-auht")),
        "used but not rendered: ['greeter-auht']",
        DEV,
    ),
    # TLS: settings the services read, files of the mounted Secret, mutual TLS in prod
    Case(
        "tls-writable",
        lambda objects: next(
            mount
            for mount in container(objects, "caller")["volumeMounts"]
            if mount["mountPath"] == TLS_DIR
        ).update(readOnly=False),
        "mounted readOnly",
        PROD,
    ),
    Case(
        "tls-client-missing",
        replace_env("caller", "GREETER_TLS_CA_FILE", None),
        "GREETER_TLS_CA_FILE must be set exactly when greeter sets TLS_CERT_FILE",
        PROD,
    ),
    Case(
        "tls-key-missing",
        replace_env("greeter", "TLS_KEY_FILE", None),
        "TLS_CERT_FILE and TLS_KEY_FILE must be set together",
        PROD,
    ),
    Case(
        "no-client-certificates",
        replace_env("greeter", "TLS_CLIENT_CA_FILE", None),
        "TLS_CLIENT_CA_FILE is not set: this overlay serves mutual TLS",
        PROD,
    ),
    Case(
        "gateway-without-client-certificate",
        replace_env("gateway", "CALLER_TLS_CERT_FILE", None),
        "caller requires client certificates: CALLER_TLS_CERT_FILE",
        PROD,
    ),
    Case(
        "reflection-on-main-port",
        on_configmap("acme-common", "ADMIN_SERVICES_ON_MAIN_PORT", "true"),
        "ADMIN_SERVICES_ON_MAIN_PORT must be false",
        PROD,
    ),
    Case(
        "tls-variable-typo",
        replace_env(
            "greeter",
            "TLS_CLIENT_CA_FILE",
            {"name": "TLS_CA_CLIENT_FILE", "value": f"{TLS_DIR}/ca.crt"},
        ),
        "TLS_CA_CLIENT_FILE is not a setting of greeter",
        PROD,
    ),
    Case(
        "tls-file-not-in-secret",
        replace_env("caller", "TLS_KEY_FILE", {"name": "TLS_KEY_FILE", "value": f"{TLS_DIR}/k"}),
        f"TLS_KEY_FILE {TLS_DIR}/k: not a key of the Secret",
        PROD,
    ),
    # a replica in another language (greeter-go): behind its twin's Service, on its terms
    Case(
        "go-replica-not-behind-the-service",
        on(
            "Deployment",
            "greeter-go",
            ["spec", "template", "metadata", "labels"],
            {
                "app.kubernetes.io/name": "greeter-go",
                "app.kubernetes.io/component": "server",
                "app.kubernetes.io/part-of": "acme",
            },
        ),
        "selects Deployments ['greeter']",
    ),
    Case(
        "go-replica-on-another-port",
        on_container("greeter-go", ["ports", 0, "containerPort"], 50061),
        "GREETER_TARGET port 50051 != greeter-go's grpc port 50061",
    ),
    Case(
        "go-replica-setting-typo",
        replace_env("greeter-go", "AUTH_TOKENS", {"name": "AUTH_TOKEN", "value": "x"}),
        "AUTH_TOKEN is not a setting of greeter-go",
    ),
    Case(
        "go-replica-without-client-certificates",
        replace_env("greeter-go", "TLS_CLIENT_CA_FILE", None),
        "TLS_CLIENT_CA_FILE is not set: this overlay serves mutual TLS",
        PROD,
    ),
    Case(
        "go-replica-with-its-own-certificate",
        lambda objects: next(
            volume
            for volume in find(objects, "Deployment", "greeter-go")["spec"]["template"]["spec"][
                "volumes"
            ]
            if volume["name"] == "tls"
        )["secret"].update(secretName="caller-tls"),
        "GREETER_TARGET host greeter is not in greeter-go's dnsNames",
        CERTS,
    ),
    # cert-manager: the Certificates issue the mounted Secrets for the names clients dial
    Case(
        "certificate-for-another-secret",
        on("Certificate", "greeter", ["spec", "secretName"], "greeter-cert"),
        "no Certificate writes the Secret greeter mounts",
        CERTS,
    ),
    Case(
        "certificate-without-the-dialled-name",
        on("Certificate", "greeter", ["spec", "dnsNames"], ["greeter.acme.svc"]),
        "GREETER_TARGET host greeter is not in greeter's dnsNames",
        CERTS,
    ),
    Case(
        "certificate-without-client-auth",
        on("Certificate", "caller", ["spec", "usages"], ["server auth"]),
        "lack 'client auth'",
        CERTS,
    ),
    Case(
        "certificates-from-two-issuers",
        on("Certificate", "caller", ["spec", "issuerRef", "name"], "other-ca"),
        "different issuers",
        CERTS,
    ),
]


@pytest.mark.parametrize(
    ("overlay", "case"), [pytest.param(o, c, id=f"{o}-{c.id}") for c in CASES for o in c.overlays]
)
def test_breaking_an_invariant_is_reported(
    overlay: str, case: Case, overlays: dict[str, Path]
) -> None:
    path = overlays[overlay]
    objects = list(rendered(path))
    assert problems(objects, path) == []
    mutated = copy.deepcopy(objects)
    case.mutate(mutated)
    assert mutated != objects, "the mutation changed nothing"
    found = problems(mutated, path)
    assert any(case.reported in problem for problem in found), found


# --- tools/validate_k8s.py on a broken copy of the tree -------------------------------------------


def run_validator(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "validate_k8s.py"), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path} has no {old!r}"
    path.write_text(text.replace(old, new))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of deploy/k8s to break."""
    shutil.copytree(K8S, tmp_path / "k8s")
    return tmp_path / "k8s"


def test_contradicting_source_files_are_reported(tree: Path) -> None:
    """A longer grace period without a longer terminationGracePeriodSeconds, and a greeter port
    that the Deployment and caller's target do not follow."""
    base = tree / "base" / "kustomization.yaml"
    edit(base, "GRPC_GRACE_PERIOD=10", "GRPC_GRACE_PERIOD=15")
    edit(base, "GRPC_PORT=50051", "GRPC_PORT=50055")
    result = run_validator(tree / "overlays" / "dev")
    assert result.returncode == 1
    assert "must exceed GRPC_GRACE_PERIOD 15" in result.stdout
    assert "GRPC_PORT 50055 != container port named grpc 50051" in result.stdout


def test_objects_the_schema_forbids_are_reported(tree: Path) -> None:
    edit(tree / "base" / "greeter" / "service.yaml", "clusterIP: None", "clusterIp: None")
    edit(tree / "base" / "caller" / "service.yaml", "port: 50052", 'port: "50052"')
    edit(tree / "components" / "cert-manager" / "issuer.yaml", "kind: Issuer\n", "kind: Isuer\n")
    result = run_validator(tree / "overlays" / "dev", tree / "overlays" / "prod")
    assert result.returncode == 1
    assert "Service/acme-dev/greeter [1.30]: spec: Additional properties" in result.stdout
    assert "'clusterIp' was unexpected" in result.stdout
    assert "Service/acme/caller [1.30]: spec.ports.0.port: '50052' is not of type" in result.stdout
    # Only the known cert-manager kinds pass unchecked; a misspelt kind is an error.
    assert "no schema for cert-manager.io/v1 Isuer" in result.stdout
    assert "dev: FAILED" in result.stdout
    assert "prod+cert-manager: FAILED" in result.stdout


def test_a_component_patch_that_no_longer_applies_fails_the_render(tree: Path) -> None:
    """components/server-pod inserts into each Deployment's env: one without env fails loudly
    instead of rendering a pod without its variables."""
    deployment = tree / "base" / "greeter" / "deployment.yaml"
    text = deployment.read_text()
    start, end = text.index("          env:\n"), text.index("          readinessProbe:\n")
    deployment.write_text(text[:start] + text[end:])
    result = run_validator(tree / "overlays" / "dev")
    assert result.returncode == 1
    assert "dev: kustomize failed" in result.stdout


def test_kube_score_reports_what_it_checks(tree: Path) -> None:
    """The hardening of components/server-pod, undone, is kube-score's finding."""
    if go_program("kube-score") is None:
        not_run(
            "kube-score's findings",
            "kube-score is not installed",
            'it with GOWORK=off GOBIN="$(go env GOPATH)/bin" go -C tools/go install tool',
            "ACME_REQUIRE_GO_TOOLS",
        )
    edit(
        tree / "components" / "server-pod" / "pod.yaml",
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: false",
    )
    result = run_validator(tree / "overlays" / "dev")
    assert result.returncode == 1
    finding = "(greeter) The pod has a container with a writable root filesystem"
    assert f"kube-score [CRITICAL] greeter/acme-dev apps/v1/Deployment: {finding}" in result.stdout

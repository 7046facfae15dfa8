"""Cross-file invariants of the Kubernetes manifests in deploy/k8s (tests/k8s/manifests.py).

The overlays as they are must pass every check; the mutation tests break one invariant at a
time in a copy of the rendered objects (and one in a copy of the source tree) and assert the
checker reports it, so no check passes vacuously. tools/validate_k8s.py (schemas) runs here too.
"""

from __future__ import annotations

import base64
import copy
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.manifests import (
    ADMIN_PORT,
    APPS,
    GRPC_APPS,
    K8S,
    NAME_LABEL,
    OVERLAYS,
    PART_OF,
    ROOT,
    TLS_DIR,
    TMP_DIR,
    TUNED,
    Manifests,
    Obj,
    check_invariants,
    check_overlay,
    dig,
    kustomize_images,
    named,
    overlay_dir,
    quantity,
    render,
    requires_mtls,
)

pytestmark = pytest.mark.integration  # runs kubectl and tools/validate_k8s.py as processes

# --- the overlays as they are ----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_invariants_hold(overlay: str) -> None:
    assert check_overlay(overlay_dir(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_base_names_the_images_the_overlay_sets(overlay: str) -> None:
    images = kustomize_images(overlay_dir(overlay))
    assert sorted(images) == sorted(app.image for app in APPS.values())
    base = [
        yaml.safe_load((K8S / "base" / app.name / "deployment.yaml").read_text())
        for app in APPS.values()
    ]
    base_images = {c["image"] for d in base for c in d["spec"]["template"]["spec"]["containers"]}
    assert base_images == set(images)


def replicas(objects: list[Obj]) -> dict[str, int]:
    manifests = Manifests(objects, {})
    return {
        name: manifests.floor_replicas(deployment)
        for name in APPS
        if (deployment := manifests.find("Deployment", name)) is not None
    }


def limits(objects: list[Obj], name: str) -> tuple[float, float]:
    deployment = Manifests(objects, {}).find("Deployment", name)
    container = named(dig(deployment, "spec", "template", "spec", "containers"), name)
    resources = dig(container, "resources", "limits")
    return quantity(resources["cpu"]), quantity(resources["memory"])


def test_dev_runs_one_caller_and_two_greeters_with_placeholder_secrets() -> None:
    objects = render(overlay_dir("dev"))
    assert {name: replicas(objects)[name] for name in TUNED} == {"greeter": 2, "caller": 1}
    names = [o["metadata"]["name"] for o in objects if o["kind"] == "Secret"]
    assert {name.rsplit("-", 1)[0] for name in names} >= {"greeter-auth", "caller-auth"}


def test_prod_scales_up_pins_images_and_ships_no_secret() -> None:
    dev, prod = render(overlay_dir("dev")), render(overlay_dir("prod"))
    for name in TUNED:
        assert replicas(prod)[name] > replicas(dev)[name]
        assert all(p > d for p, d in zip(limits(prod, name), limits(dev, name), strict=True))
    for reference in kustomize_images(overlay_dir("prod")).values():
        assert re.search(r"(:[0-9]+\.[0-9]+\.[0-9]+[^/]*|@sha256:[0-9a-f]{64})$", reference)
    # Real tokens and certificates come from the cluster's secret manager, never from the repo.
    assert [o for o in prod if o["kind"] == "Secret"] == []


# RFC 1123: what the API server accepts as the name of a ConfigMap, Secret, Service, ...
RFC_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_name_and_reference_is_a_valid_kubernetes_name(overlay: str) -> None:
    objects = render(overlay_dir(overlay))
    names = [dig(o, "metadata", "name") for o in objects]
    for deployment in [o for o in objects if o["kind"] == "Deployment"]:
        pod = dig(deployment, "spec", "template", "spec", default={}) or {}
        for container in pod.get("containers") or []:
            names += [dig(s, "configMapRef", "name") for s in container.get("envFrom") or []]
            names += [
                dig(var, "valueFrom", "secretKeyRef", "name")
                for var in container.get("env") or []
                if dig(var, "valueFrom", "secretKeyRef")
            ]
    bad = [name for name in names if name is not None and not RFC_1123.fullmatch(str(name))]
    assert bad == []


def test_prod_logs_json() -> None:
    manifests = Manifests(render(overlay_dir("prod")), {})
    for name in APPS:
        deployment = manifests.find("Deployment", name)
        container = named(dig(deployment, "spec", "template", "spec", "containers"), name) or {}
        assert manifests.environment(name, container)["LOG_FORMAT"].value == "json"
    assert manifests.problems == []


def test_prod_serves_mutual_tls_and_probes_the_admin_port() -> None:
    """prod turns components/tls on: every main port requires client certificates, caller
    presents one to greeter, and the kubelet's plaintext probes go to the admin port."""
    prod = overlay_dir("prod")
    manifests = Manifests(render(prod), kustomize_images(prod), require_mtls=True)
    manifests.check()
    for name in GRPC_APPS:
        deployment = manifests.find("Deployment", name)
        container = named(dig(deployment, "spec", "template", "spec", "containers"), name) or {}
        env = manifests.envs[name]
        assert env["TLS_CLIENT_CA_FILE"].value == f"{TLS_DIR}/ca.crt"
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == TLS_DIR)
        volume = named(dig(deployment, "spec", "template", "spec", "volumes"), mount["name"])
        assert mount["readOnly"] is True
        assert dig(volume, "secret", "secretName") == f"{name}-tls"
        probes = [container[kind]["grpc"]["port"] for kind in ("readinessProbe", "livenessProbe")]
        assert probes == [ADMIN_PORT, ADMIN_PORT]
        assert env["ADMIN_PORT"].value == str(ADMIN_PORT)
        assert env["ADMIN_SERVICES_ON_MAIN_PORT"].value == "false"
    assert {"GREETER_TLS_CA_FILE", "GREETER_TLS_CERT_FILE"} <= manifests.envs["caller"].keys()
    # The gateway's HTTP port is plaintext (TLS ends at the Ingress); its calls to caller are mTLS.
    assert {"CALLER_TLS_CA_FILE", "CALLER_TLS_CERT_FILE"} <= manifests.envs["gateway"].keys()
    assert manifests.problems == []


@pytest.fixture(scope="session")
def prod_cert_manager(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prod with components/cert-manager enabled as its kustomization says (the commented
    line uncommented), in a copy of deploy/k8s."""
    tree = tmp_path_factory.mktemp("cert-manager") / "k8s"
    shutil.copytree(K8S, tree)
    overlay = tree / "overlays" / "prod-cert-manager"
    shutil.copytree(tree / "overlays" / "prod", overlay)
    kustomization = overlay / "kustomization.yaml"
    disabled = "  # - ../../components/cert-manager\n"
    assert disabled in kustomization.read_text(), "prod no longer offers the component"
    kustomization.write_text(
        kustomization.read_text().replace(disabled, "  - ../../components/cert-manager\n")
    )
    return overlay


def test_cert_manager_issues_every_services_secret(prod_cert_manager: Path, tmp_path: Path) -> None:
    """With components/cert-manager, a Certificate from the namespace's CA issues each TLS
    Secret the pods mount; everything but the cert-manager kinds passes the strict schemas."""
    objects = render(prod_cert_manager)
    assert check_overlay(prod_cert_manager) == []
    certificates = {
        o["spec"]["secretName"]: o
        for o in objects
        if o["kind"] == "Certificate" and not o["spec"].get("isCA")
    }
    assert sorted(certificates) == sorted(f"{name}-tls" for name in APPS)
    [ca] = [o for o in objects if o["kind"] == "Certificate" and o["spec"].get("isCA")]
    [ca_issuer] = [o for o in objects if o["kind"] == "Issuer" and "ca" in o["spec"]]
    assert ca_issuer["spec"]["ca"]["secretName"] == ca["spec"]["secretName"]
    assert {c["spec"]["issuerRef"]["name"] for c in certificates.values()} == {
        ca_issuer["metadata"]["name"]
    }
    result = run_validator(prod_cert_manager)
    assert result.returncode == 0, result.stdout + result.stderr
    custom = len([o for o in objects if o["apiVersion"] == "cert-manager.io/v1"])
    assert f"{custom} of them custom resources, not schema-checked" in result.stdout
    # Only the known cert-manager kinds pass unchecked; a misspelt kind is still an error.
    tree = tmp_path / "k8s"
    shutil.copytree(prod_cert_manager.parents[1], tree)
    issuer = tree / "components" / "cert-manager" / "issuer.yaml"
    issuer.write_text(issuer.read_text().replace("kind: Issuer\n", "kind: Isuer\n", 1))
    result = run_validator(tree / "overlays" / prod_cert_manager.name)
    assert result.returncode == 1
    assert "no schema for cert-manager.io/v1 Isuer" in result.stdout


# --- breaking an invariant is detected ----------------------------------------------------------


def deployment(objects: list[Obj], name: str) -> Obj:
    found = Manifests(objects, {}).find("Deployment", name)
    assert found is not None, f"no Deployment {name} to mutate"
    return found


def container(objects: list[Obj], name: str) -> Obj:
    found = named(deployment(objects, name)["spec"]["template"]["spec"]["containers"], name)
    assert found is not None, f"no container {name} to mutate"
    return found


def configmap(objects: list[Obj], prefix: str) -> Obj:
    """The generated ConfigMap `prefix-<hash>`."""
    found = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(prefix)
    ]
    assert len(found) == 1, f"no single ConfigMap {prefix}-* to mutate"
    return found[0]


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = Manifests(objects, {}).find(kind, name)
    assert found is not None, f"no {kind} {name} to mutate"
    return found


def secret(objects: list[Obj], prefix: str) -> Obj:
    found = [
        o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"].startswith(prefix)
    ]
    assert len(found) == 1, f"no single Secret {prefix}-* to mutate"
    return found[0]


def set_in(path: list[str | int], value: Any) -> Callable[[Obj], None]:
    def apply(obj: Obj) -> None:
        parent: Any = obj
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = value

    return apply


def remove_in(path: list[str | int]) -> Callable[[Obj], None]:
    def apply(obj: Obj) -> None:
        parent: Any = obj
        for step in path[:-1]:
            parent = parent[step]
        del parent[path[-1]]

    return apply


Mutation = Callable[[list[Obj]], None]


def on_container(name: str, change: Callable[[Obj], None]) -> Mutation:
    return lambda objects: change(container(objects, name))


def on_pod(name: str, change: Callable[[Obj], None]) -> Mutation:
    return lambda objects: change(deployment(objects, name)["spec"]["template"]["spec"])


def on_configmap(prefix: str, key: str, value: str) -> Mutation:
    return lambda objects: configmap(objects, prefix)["data"].__setitem__(key, value)


def on(kind: str, name: str, change: Callable[[Obj], None]) -> Mutation:
    return lambda objects: change(one(objects, kind, name))


def replace_env(name: str, variable: str, entry: Obj) -> Mutation:
    def apply(objects: list[Obj]) -> None:
        env = container(objects, name)["env"]
        index = next(i for i, var in enumerate(env) if var["name"] == variable)
        env[index] = entry

    return apply


def drop_env(name: str, variable: str) -> Mutation:
    def apply(objects: list[Obj]) -> None:
        env = container(objects, name)["env"]
        assert any(var["name"] == variable for var in env), f"{name} has no {variable} to drop"
        env[:] = [var for var in env if var["name"] != variable]

    return apply


def remove_tmp_mount(objects: list[Obj]) -> None:
    mounts = container(objects, "greeter")["volumeMounts"]
    mounts[:] = [m for m in mounts if m["mountPath"] != TMP_DIR]


def unsafe_tls_mount(objects: list[Obj]) -> None:
    for mount in container(objects, "caller")["volumeMounts"]:
        if mount["mountPath"] == TLS_DIR:
            mount["readOnly"] = False


def reject_callers_token(objects: list[Obj]) -> None:
    secret(objects, "greeter-auth")["data"]["AUTH_TOKENS"] = base64.b64encode(b"other").decode()


def reject_gateways_token(objects: list[Obj]) -> None:
    secret(objects, "gateway-auth")["data"]["CALLER_AUTH_TOKEN"] = base64.b64encode(b"x").decode()


def drop_label(objects: list[Obj]) -> None:
    del one(objects, "Service", "caller")["metadata"]["labels"][PART_OF[0]]


def allow_root(objects: list[Obj]) -> None:
    pod = deployment(objects, "greeter")["spec"]["template"]["spec"]
    del pod["securityContext"]["runAsNonRoot"]
    del container(objects, "greeter")["securityContext"]["runAsNonRoot"]


def expose_admin_port(service: Obj) -> None:
    service["spec"]["ports"].append({"name": "admin", "port": ADMIN_PORT, "targetPort": "admin"})


def add_root_sidecar(objects: list[Obj]) -> None:
    pod = deployment(objects, "caller")["spec"]["template"]["spec"]
    pod["initContainers"] = [{"name": "setup", "image": "busybox", "securityContext": {}}]


@dataclass(frozen=True)
class Case:
    id: str
    mutate: Mutation
    reported: str  # a fragment of the problem the checker must report
    overlays: tuple[str, ...] = OVERLAYS


READINESS = ["readinessProbe", "grpc"]
POLICY = ("NetworkPolicy", "acme-ingress")
ANNOTATIONS = ["spec", "template", "metadata", "annotations"]
CASES = [
    Case(
        "readiness-port",
        on_container("greeter", set_in([*READINESS, "port"], 50099)),
        "readinessProbe port 50099",
    ),
    Case(
        "liveness-port",
        on_container("caller", set_in(["livenessProbe", "grpc", "port"], 50051)),
        "livenessProbe port 50051",
    ),
    Case(
        "grpc-port-in-configmap",
        on_configmap("greeter-config", "GRPC_PORT", "50060"),
        "GRPC_PORT 50060",
    ),
    Case(
        "container-port",
        on_container("caller", set_in(["ports", 0, "containerPort"], 50053)),
        "container port named grpc is 50053",
    ),
    Case(
        "readiness-service-name",
        on_container("greeter", set_in([*READINESS, "service"], "acme.greeter.v1.Greeter")),
        "readinessProbe service",
    ),
    Case(
        "liveness-service-name",
        on_container(
            "caller", set_in(["livenessProbe", "grpc", "service"], "acme.caller.v1.CallerService")
        ),
        "livenessProbe service",
    ),
    Case(
        "exec-probe",
        on_container(
            "greeter",
            set_in(["readinessProbe"], {"exec": {"command": ["grpc-health-probe"]}}),
        ),
        "native gRPC probe",
    ),
    Case(
        "root-pod",
        on_pod("caller", set_in(["securityContext", "runAsUser"], 0)),
        "runAsUser",
    ),
    Case("no-run-as-non-root", allow_root, "runAsNonRoot must be true"),
    Case(
        "root-init-container",
        add_root_sidecar,
        "container setup: readOnlyRootFilesystem",
    ),
    Case(
        "writable-root-fs",
        on_container("greeter", set_in(["securityContext", "readOnlyRootFilesystem"], False)),
        "readOnlyRootFilesystem must be true",
    ),
    Case(
        "privilege-escalation",
        on_container("caller", set_in(["securityContext", "allowPrivilegeEscalation"], True)),
        "allowPrivilegeEscalation",
    ),
    Case(
        "capabilities",
        on_container("caller", set_in(["securityContext", "capabilities"], {"drop": ["NET_RAW"]})),
        "drop ALL",
    ),
    Case(
        "seccomp",
        on_pod("greeter", remove_in(["securityContext", "seccompProfile"])),
        "seccompProfile must be RuntimeDefault",
    ),
    Case("no-tmp", remove_tmp_mount, f"{TMP_DIR} must be an emptyDir"),
    Case(
        "not-headless",
        on("Service", "greeter", remove_in(["spec", "clusterIP"])),
        "must be headless",
    ),
    Case(
        "service-selector",
        on("Service", "caller", set_in(["spec", "selector", NAME_LABEL], "greeter")),
        "selects Deployments ['greeter']",
    ),
    Case(
        "greeter-target-port",
        on_configmap("caller-config", "GREETER_TARGET", "dns:///greeter:50052"),
        "GREETER_TARGET port 50052",
    ),
    Case(
        "greeter-target-scheme",
        on_configmap("caller-config", "GREETER_TARGET", "greeter:50051"),
        "must be dns:///",
    ),
    Case(
        "greeter-target-service",
        on_configmap("caller-config", "GREETER_TARGET", "dns:///greeter-lb:50051"),
        "no Service greeter-lb of a gRPC service",
    ),
    Case(
        "greeter-target-namespace",
        on_configmap("caller-config", "GREETER_TARGET", "dns:///greeter.other.svc:50051"),
        "is not in namespace",
    ),
    Case(
        "grace-period",
        on_configmap("acme-common", "GRPC_GRACE_PERIOD", "30"),
        "must exceed GRPC_GRACE_PERIOD 30",
    ),
    Case(
        "termination-grace",
        on_pod("caller", set_in(["terminationGracePeriodSeconds"], 10)),
        "terminationGracePeriodSeconds 10",
    ),
    Case(
        "hpa-target",
        on("HorizontalPodAutoscaler", "greeter", set_in(["spec", "scaleTargetRef", "name"], "gr")),
        "no HPA targets Deployment greeter",
    ),
    Case(
        "hpa-min-replicas",
        on("HorizontalPodAutoscaler", "greeter", set_in(["spec", "minReplicas"], 1)),
        "minReplicas must be >= 2",
    ),
    Case(
        "replicas-beside-hpa",
        on("Deployment", "greeter", set_in(["spec", "replicas"], 2)),
        "sets replicas",
    ),
    Case(
        "pdb-selector",
        on("PodDisruptionBudget", "greeter", set_in(["spec", "selector", "matchLabels"], {})),
        "no PDB selects Deployment greeter",
    ),
    Case(
        "pdb-blocks-drains",
        on("PodDisruptionBudget", "greeter", set_in(["spec", "maxUnavailable"], 0)),
        "allows no disruption",
    ),
    Case(
        "image-not-from-images",
        on_container("greeter", set_in(["image"], "acme/greeter:latest")),
        "image acme/greeter:latest is not",
    ),
    Case(
        "missing-configmap",
        on_container("caller", set_in(["envFrom", 1, "configMapRef", "name"], "caller-config")),
        "envFrom ConfigMap caller-config is not rendered",
    ),
    Case(
        "port-not-from-configmap",
        lambda objects: container(objects, "greeter")["env"].append(
            {"name": "GRPC_PORT", "value": "50051"}
        ),
        "GRPC_PORT must come from a ConfigMap",
    ),
    Case(
        "metrics-annotation",
        on("Deployment", "caller", set_in([*ANNOTATIONS, "prometheus.io/port"], "8080")),
        "prometheus.io/port 8080",
    ),
    Case(
        "metrics-env",
        on_configmap("acme-common", "METRICS_PORT", "9100"),
        "METRICS_PORT 9100",
    ),
    Case(
        "no-limits",
        on_container("greeter", remove_in(["resources", "limits"])),
        "needs cpu requests and limits",
    ),
    Case(
        "request-above-limit",
        on_container("caller", set_in(["resources", "requests", "memory"], "2Gi")),
        "memory request 2Gi > limit",
    ),
    Case(
        "token-in-plain-env",
        replace_env("greeter", "AUTH_TOKENS", {"name": "AUTH_TOKENS", "value": "s3cret"}),
        "AUTH_TOKENS must come from a Secret",
    ),
    Case(
        "instance-name",
        replace_env("caller", "INSTANCE_NAME", {"name": "INSTANCE_NAME", "value": "caller"}),
        "INSTANCE_NAME must come from the pod name",
    ),
    Case(
        "token-rejected",
        reject_callers_token,
        "GREETER_AUTH_TOKEN is not in greeter's AUTH_TOKENS",
        overlays=("dev",),
    ),
    Case(
        "secret-name-typo",
        replace_env(
            "greeter",
            "AUTH_TOKENS",
            {
                "name": "AUTH_TOKENS",
                "valueFrom": {"secretKeyRef": {"name": "greeter-auht", "key": "AUTH_TOKENS"}},
            },
        ),
        "used but not rendered: ['greeter-auht']",
        overlays=("dev",),
    ),
    Case("tls-writable", unsafe_tls_mount, "mounted readOnly", overlays=("prod",)),
    Case(
        "tls-client-missing",
        drop_env("caller", "GREETER_TLS_CA_FILE"),
        "GREETER_TLS_CA_FILE must be set exactly when greeter sets TLS_CERT_FILE",
        overlays=("prod",),
    ),
    Case(
        "tls-key-missing",
        drop_env("greeter", "TLS_KEY_FILE"),
        "TLS_CERT_FILE and TLS_KEY_FILE must be set together",
        overlays=("prod",),
    ),
    Case(
        "admin-port-in-configmap",
        on_configmap("acme-common", "ADMIN_PORT", "9092"),
        "ADMIN_PORT 9092 != container port named admin 9091",
    ),
    Case(
        "admin-port-exposed",
        on("Service", "caller", expose_admin_port),
        "exposes the plaintext admin port",
    ),
    Case(
        "admin-port-admitted",
        on(*POLICY, set_in(["spec", "ingress", 0, "ports", 1, "port"], ADMIN_PORT)),
        "a NetworkPolicy admits the plaintext admin port",
    ),
    Case(
        "every-port-admitted",
        on(*POLICY, set_in(["spec", "ingress"], [{}])),
        "a NetworkPolicy admits the plaintext admin port",
    ),
    Case(
        "grpc-port-not-admitted",
        on(*POLICY, remove_in(["spec", "ingress", 0, "ports", 0])),
        "no NetworkPolicy admits the grpc port",
    ),
    Case(
        "no-network-policy",
        on(*POLICY, set_in(["spec", "podSelector", "matchLabels"], {"x": "y"})),
        "no NetworkPolicy limits ingress",
    ),
    Case(
        "prod-without-client-certificates",
        drop_env("greeter", "TLS_CLIENT_CA_FILE"),
        "TLS_CLIENT_CA_FILE is not set: this overlay serves mutual TLS",
        overlays=("prod",),
    ),
    Case(
        "prod-reflection-on-main-port",
        on_configmap("acme-common", "ADMIN_SERVICES_ON_MAIN_PORT", "true"),
        "ADMIN_SERVICES_ON_MAIN_PORT must be false",
        overlays=("prod",),
    ),
    Case(
        "tls-variable-typo",
        replace_env(
            "greeter",
            "TLS_CLIENT_CA_FILE",
            {"name": "TLS_CA_CLIENT_FILE", "value": f"{TLS_DIR}/ca.crt"},
        ),
        "TLS_CA_CLIENT_FILE is not a setting of greeter",
        overlays=("prod",),
    ),
    Case(
        "tls-file-not-in-secret",
        replace_env("caller", "TLS_KEY_FILE", {"name": "TLS_KEY_FILE", "value": f"{TLS_DIR}/k"}),
        "the Secret has no key 'k'",
        overlays=("prod",),
    ),
    Case(
        "certificate-for-another-secret",
        on("Certificate", "greeter", set_in(["spec", "secretName"], "greeter-cert")),
        "no Certificate writes the Secret greeter mounts",
        overlays=("prod-cert-manager",),
    ),
    Case(
        "certificate-without-the-dialled-name",
        on("Certificate", "greeter", set_in(["spec", "dnsNames"], ["greeter.acme.svc"])),
        "GREETER_TARGET host greeter is not in greeter's dnsNames",
        overlays=("prod-cert-manager",),
    ),
    Case(
        "certificate-without-client-auth",
        on("Certificate", "caller", set_in(["spec", "usages"], ["server auth"])),
        "lack 'client auth'",
        overlays=("prod-cert-manager",),
    ),
    Case(
        "certificates-from-two-issuers",
        on("Certificate", "caller", set_in(["spec", "issuerRef", "name"], "other-ca")),
        "different issuers",
        overlays=("prod-cert-manager",),
    ),
    Case(
        "gateway-readiness-path",
        on_container("gateway", set_in(["readinessProbe", "httpGet", "path"], "/health")),
        "readinessProbe must GET /healthz on port http",
    ),
    Case(
        "gateway-liveness-on-health-path",
        on_container(
            "gateway", set_in(["livenessProbe"], {"httpGet": {"path": "/healthz", "port": "http"}})
        ),
        "livenessProbe must be a tcpSocket probe of port http",
    ),
    Case(
        "gateway-port-in-configmap",
        on_configmap("gateway-config", "GATEWAY_PORT", "8081"),
        "GATEWAY_PORT 8081 != container port named http 8080",
    ),
    Case(
        "gateway-grace-period",
        on_configmap("gateway-config", "GATEWAY_GRACE_PERIOD", "40"),
        "must exceed GATEWAY_GRACE_PERIOD 40",
    ),
    Case(
        "gateway-http-port-not-admitted",
        on(*POLICY, remove_in(["spec", "ingress", 0, "ports", 1])),
        "Deployment/gateway: no NetworkPolicy admits the http port",
    ),
    Case(
        "gateway-target-port",
        on_configmap("gateway-config", "CALLER_TARGET", "dns:///caller:50051"),
        "CALLER_TARGET port 50051 != caller's grpc port 50052",
    ),
    Case(
        "caller-not-headless",
        on("Service", "caller", remove_in(["spec", "clusterIP"])),
        "Service/caller: must be headless",
    ),
    Case(
        "gateway-token-rejected",
        reject_gateways_token,
        "gateway's CALLER_AUTH_TOKEN is not in caller's AUTH_TOKENS",
        overlays=("dev",),
    ),
    Case(
        "gateway-without-client-certificate",
        drop_env("gateway", "CALLER_TLS_CERT_FILE"),
        "caller requires client certificates: CALLER_TLS_CERT_FILE",
        overlays=("prod",),
    ),
    Case("missing-label", drop_label, "needs label app.kubernetes.io/part-of"),
]


@pytest.mark.parametrize(
    ("overlay", "case"),
    [pytest.param(o, c, id=f"{o}-{c.id}") for c in CASES for o in c.overlays],
)
def test_breaking_an_invariant_is_reported(
    overlay: str, case: Case, prod_cert_manager: Path
) -> None:
    path = prod_cert_manager if overlay == prod_cert_manager.name else overlay_dir(overlay)
    objects = render(path)
    mtls = requires_mtls(path)
    baseline = check_invariants(objects, kustomize_images(path), require_mtls=mtls)
    assert baseline == []
    mutated = copy.deepcopy(objects)
    case.mutate(mutated)
    assert mutated != objects, "the mutation changed nothing"
    problems = check_invariants(mutated, kustomize_images(path), require_mtls=mtls)
    assert any(case.reported in problem for problem in problems), problems


def test_breaking_the_source_files_is_reported(tmp_path: Path) -> None:
    """An edit to one file that another contradicts: a longer grace period without a longer
    terminationGracePeriodSeconds, and a greeter port that caller's target does not follow."""
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    kustomization = tree / "base" / "kustomization.yaml"
    text = kustomization.read_text()
    for old, new in [("GRPC_GRACE_PERIOD=10", "GRPC_GRACE_PERIOD=15"), ("=50051", "=50055")]:
        assert old in text
        text = text.replace(old, new)
    kustomization.write_text(text)
    problems = check_overlay(tree / "overlays" / "dev")
    assert any("must exceed GRPC_GRACE_PERIOD 15" in p for p in problems), problems
    assert any("GRPC_PORT 50055 != container port named grpc 50051" in p for p in problems)


# --- tools/validate_k8s.py ------------------------------------------------------------------------


def run_validator(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "validate_k8s.py"), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_validator_accepts_every_overlay() -> None:
    result = run_validator()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for overlay in OVERLAYS:
        assert any(line.startswith(f"{overlay}: OK") for line in lines), lines


def test_validator_rejects_objects_the_schema_forbids(tmp_path: Path) -> None:
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree)
    service = tree / "base" / "greeter" / "service.yaml"
    service.write_text(service.read_text().replace("clusterIP: None", "clusterIp: None"))
    caller = tree / "base" / "caller" / "service.yaml"
    caller.write_text(caller.read_text().replace("port: 50052", 'port: "50052"'))
    result = run_validator(tree / "overlays" / "dev", tree / "overlays" / "prod")
    assert result.returncode == 1
    assert "Service/acme-dev/greeter [1.30]: spec: Additional properties" in result.stdout
    assert "'clusterIp' was unexpected" in result.stdout
    assert "Service/acme/caller [1.30]: spec.ports.0.port: '50052' is not of type" in result.stdout
    assert "dev: FAILED" in result.stdout
    assert "prod: FAILED" in result.stdout

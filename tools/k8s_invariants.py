"""The checks of the rendered Kubernetes overlays that derive from the code: what one manifest
says (a port, a variable, a probe, a certificate path, a target) must agree with what the
services' settings and protos, or another manifest, say.

tools/validate_k8s.py runs them on every overlay (`nox -s lint`); tests/k8s/test_manifests.py
breaks each one to prove it can fail. Generic hardening (non-root, read-only root filesystem,
capabilities, resources, replicas, PodDisruptionBudgets, image tags) is kube-score's job, and
the namespaces enforce the "restricted" Pod Security Standard.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acme_common import ClientSettings, ProcessSettings, ServerSettings

ROOT = Path(__file__).resolve().parent.parent
Obj = dict[str, Any]

HEALTH_PATH = "/healthz"  # an HTTP process's health endpoint (200 serving, 503 draining)
METRICS_PORT = 9090
ADMIN_PORT = 9091  # where the probes go: plaintext whatever the main port speaks
TLS_DIR = "/etc/acme/tls"
# The keys of a <service>-tls Secret: what cert-manager writes for a Certificate, and what
# components/tls asks of Secrets made out of band.
TLS_SECRET_KEYS = ("tls.crt", "tls.key", "ca.crt")
CERT_MANAGER = "cert-manager.io/v1"
TLS_FILE = re.compile(r"(^|_)TLS_[A-Z_]*FILE$")
SECRET_LIKE = re.compile(r"TOKEN|PASSWORD|SECRET|_KEY$")
CLUSTER_DOMAIN = ["svc", "cluster", "local"]
# What a service declares about itself (tests/implementations.py reads its contract sections).
DESCRIPTOR = "service.toml"
NOT_SETTINGS = frozenset({"PYTHONDONTWRITEBYTECODE"})  # read by Python itself


@dataclass(frozen=True)
class App:
    """What the code says about one service (its settings.py, its proto, acme_common)."""

    name: str
    port: int  # the gRPC port (kind grpc) or the HTTP port (kind http)
    health: str  # the readiness probe's grpc.health.v1 service, or HTTP path
    variables: frozenset[str]  # every environment variable its settings read
    kind: str = "grpc"  # "grpc": a ServerSettings service; "http": an HTTP process (the gateway)
    replica_of: str = ""  # another app it implements, serving behind that app's Service
    language: str = "python"

    @property
    def service(self) -> str:
        """The Service its pods are behind: its own, or that of the app it is a replica of."""
        return self.replica_of or self.name

    @property
    def prefix(self) -> str:
        """Its own variables' prefix: GRPC_PORT, GRPC_GRACE_PERIOD, ... or GATEWAY_PORT, ..."""
        return "GRPC" if self.kind == "grpc" else self.name.replace("-", "_").upper()


def discovered_apps(root: Path = ROOT) -> dict[str, App]:
    """Every service under services/ as its code says. A gRPC service (a ServerSettings): its
    settings' default gRPC port and the health name of its proto service
    (acme.<name>.v1.<Name>Service, the scaffold's convention). An HTTP process (a
    ProcessSettings only, the gateway): its `<package>_port` and HEALTH_PATH. The Kubernetes
    name is the package name with dashes. A service in another language says in the [deploy]
    section of its services/<name>/service.toml (declared_apps) what a Python one's settings.py
    says."""
    return declared_apps(python_apps(), root)


def declared_apps(apps: dict[str, App], root: Path = ROOT) -> dict[str, App]:
    """apps and the services in other languages under root/services, from the [deploy] section
    of their DESCRIPTOR: either `replica_of`, the Python service it implements (the same
    settings, port and health name, its pods behind that service's Service), or a service of
    its own: its `port` (GRPC_PORT's default), and `variables`, the settings it reads besides
    acme_common's ServerSettings (the Go server's settings mirror them)."""
    apps = dict(apps)
    for declaration in sorted(root.glob(f"services/*/{DESCRIPTOR}")):
        name = declaration.parent.name
        declared = tomllib.loads(declaration.read_text(encoding="utf-8"))
        language = str(declared.get("language", "python"))
        if language == "python":  # its settings.py says it (python_apps)
            continue
        deploy = declared.get("deploy", {})
        if "replica_of" in deploy:
            twin = apps.get(str(deploy["replica_of"]))
            if twin is None or twin.language != "python":
                raise ValueError(f"{declaration}: replica_of names no Python service ({deploy})")
            apps[name] = dataclasses.replace(
                twin, name=name, replica_of=twin.name, language=language
            )
        elif isinstance(deploy.get("port"), int):
            package = name.replace("-", "_")
            camel = "".join(part[:1].upper() + part[1:] for part in package.split("_"))
            variables = {field.upper() for field in ServerSettings.model_fields}
            variables |= {str(variable).upper() for variable in deploy.get("variables", [])}
            apps[name] = App(
                name,
                deploy["port"],
                f"acme.{package}.v1.{camel}Service",
                frozenset(variables),
                language=language,
            )
        else:
            raise ValueError(
                f"{declaration}: [deploy] needs replica_of (a Python service) or port ({deploy})"
            )
    return apps


def python_apps() -> dict[str, App]:
    """The Python services, from their settings.py (discovered_apps)."""
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
            app = App(name, port, f"acme.{package}.v1.{camel}Service", frozenset(variables))
        else:
            port = settings_type.model_fields[f"{package}_port"].default
            app = App(name, port, HEALTH_PATH, frozenset(variables), "http")
        apps[name] = app
    return apps


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


@dataclass(frozen=True)
class EnvVar:
    """One environment variable of a container as the kubelet would set it."""

    value: str | None  # None: known only at run time (downward API, a Secret made elsewhere)
    source: str  # "value", "configmap", "secret" or "field:<path>"
    origin: str = ""  # the ConfigMap or Secret it comes from


UNSET = EnvVar(None, "unset")


class Manifests:
    """The rendered objects of one overlay, and the problems found in them."""

    def __init__(
        self, objects: list[Obj], apps: dict[str, App], *, require_mtls: bool = False
    ) -> None:
        self.objects = objects
        self.apps = apps
        self.require_mtls = require_mtls  # every main port must speak mutual TLS
        self.problems: list[str] = []
        self.envs: dict[str, dict[str, EnvVar]] = {}  # app name -> its container's environment
        self.tls_secrets: dict[str, str] = {}  # app name -> the Secret its TLS files come from
        self.certificates_by_secret: dict[str, Obj] = {}  # cert-manager's, by the Secret written
        self.shared_configmaps: set[str] = set()  # read by several Deployments (acme-common)

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def of_kind(self, kind: str) -> list[Obj]:
        return [obj for obj in self.objects if obj.get("kind") == kind]

    def find(self, kind: str, name: str) -> Obj | None:
        return next((o for o in self.of_kind(kind) if dig(o, "metadata", "name") == name), None)

    def container(self, name: str) -> Obj | None:
        """The main container (named like its app) of Deployment `name`."""
        deployment = self.find("Deployment", name)
        return named(dig(deployment, "spec", "template", "spec", "containers"), name)

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
                    env[prefix + key] = EnvVar(str(value), "configmap", name)
            elif "secretRef" in source:
                name = source["secretRef"]["name"]
                for key, value in (self.secret_data(name) or {}).items():
                    env[prefix + key] = EnvVar(value, "secret", name)
        for var in container.get("env") or []:
            name = var["name"]
            value_from = var.get("valueFrom") or {}
            if "value" in var or not value_from:
                env[name] = EnvVar(str(var.get("value", "")), "value")
            elif "secretKeyRef" in value_from:
                ref = value_from["secretKeyRef"]
                secret = self.secret_data(ref["name"])
                if secret is not None and ref["key"] not in secret and not ref.get("optional"):
                    self.problem(where, f"{name}: Secret {ref['name']} has no key {ref['key']}")
                    continue
                env[name] = EnvVar((secret or {}).get(ref["key"]), "secret", ref["name"])
            elif "fieldRef" in value_from:
                env[name] = EnvVar(None, f"field:{value_from['fieldRef']['fieldPath']}")
            else:
                env[name] = EnvVar(None, "other")
        return env

    # -- checks ---------------------------------------------------------------------------

    def check(self) -> list[str]:
        references = [
            dig(source, "configMapRef", "name")
            for deployment in self.of_kind("Deployment")
            for container in dig(deployment, "spec", "template", "spec", "containers") or []
            for source in container.get("envFrom") or []
        ]
        self.shared_configmaps = {name for name in references if references.count(name) > 1}
        for app in self.apps.values():
            self.check_deployment(app)
        for name in sorted({app.service for app in self.apps.values()}):
            self.check_service(name)
        self.check_certificates()
        self.check_targets()
        self.check_secrets_shipped()
        return self.problems

    def check_deployment(self, app: App) -> None:
        where = f"Deployment/{app.name}"
        deployment = self.find("Deployment", app.name)
        container = self.container(app.name)
        if deployment is None or container is None:
            self.problem(where, f"not rendered, or no container named {app.name}")
            return
        template = deployment["spec"]["template"]
        env = self.envs[app.name] = self.environment(where, container)
        self.check_variables(where, app, env)
        self.check_ports(where, app, container, env, template)
        if app.kind == "grpc":
            self.check_grpc_probes(where, app, container, env)
        else:
            self.check_http_probes(where, app, container)
        self.check_ingress(where, template, container, app.kind)
        self.check_shutdown(where, app, template["spec"], container, env)
        self.check_tls(where, app, template["spec"], container, env)

    def check_variables(self, where: str, app: App, env: dict[str, EnvVar]) -> None:
        """Every variable is a setting the service reads (a ConfigMap that several services
        share may hold another's); the main port, grace period and log settings come from a
        ConfigMap (a change rolls the pods); tokens come from Secrets."""
        everyone = frozenset().union(*(a.variables for a in self.apps.values()))
        for name, var in env.items():
            if name in app.variables or name in NOT_SETTINGS:
                continue
            if not (var.origin in self.shared_configmaps and name in everyone):
                self.problem(where, f"{name} is not a setting of {app.name} (a typo?)")
        for name in (f"{app.prefix}_PORT", f"{app.prefix}_GRACE_PERIOD", "LOG_LEVEL"):
            if env.get(name, UNSET).source != "configmap":
                self.problem(where, f"{name} must come from a ConfigMap")
        host = env.get(f"{app.prefix}_HOST", UNSET).value
        if host != "0.0.0.0" and not (host is None and app.kind == "http"):  # noqa: S104
            self.problem(where, f"{app.prefix}_HOST must be 0.0.0.0 in a pod")  # http: default
        if "AUTH_TOKENS" not in env:
            self.problem(where, "AUTH_TOKENS is not set")
        for name, var in env.items():
            if SECRET_LIKE.search(name) and var.source != "secret":
                self.problem(where, f"{name} must come from a Secret, not {var.source}")

    def check_ports(
        self, where: str, app: App, container: Obj, env: dict[str, EnvVar], template: Obj
    ) -> None:
        """The main port (named grpc or http, set by GRPC_PORT or <PREFIX>_PORT) and the
        metrics port agree with the settings and the Prometheus annotations."""
        kind, variable = app.kind, f"{app.prefix}_PORT"
        main_port = dig(named(container.get("ports"), kind), "containerPort")
        if main_port != app.port:
            self.problem(where, f"container port named {kind} is {main_port}, not {app.port}")
        if env.get(variable, UNSET).value != str(main_port):
            got = env.get(variable, UNSET).value
            self.problem(where, f"{variable} {got} != container port named {kind} {main_port}")
        metrics_port = dig(named(container.get("ports"), "metrics"), "containerPort")
        configured = env.get("METRICS_PORT", UNSET).value
        annotated = dig(template, "metadata", "annotations", "prometheus.io/port")
        if not str(metrics_port) == configured == annotated:
            self.problem(
                where,
                f"METRICS_PORT {configured}, port named metrics {metrics_port} and "
                f"prometheus.io/port {annotated} must agree",
            )

    def check_grpc_probes(
        self, where: str, app: App, container: Obj, env: dict[str, EnvVar]
    ) -> None:
        """Native gRPC probes on ADMIN_PORT, the container port named admin: plaintext even
        where the main port is mTLS (the kubelet presents no client certificate). Readiness
        asks for the service's own health name, liveness and startup for the server ("")."""
        port = dig(named(container.get("ports"), "admin"), "containerPort")
        configured = env.get("ADMIN_PORT", UNSET).value
        if configured != str(port):
            self.problem(where, f"ADMIN_PORT {configured} != container port named admin {port}")
        expected = {"readinessProbe": app.health, "livenessProbe": "", "startupProbe": ""}
        for kind, service in expected.items():
            grpc = dig(container, kind, "grpc")
            if not isinstance(grpc, dict):
                self.problem(where, f"{kind} must be a native gRPC probe (grpc:)")
                continue
            if grpc.get("port") != port:
                self.problem(where, f"{kind} port {grpc.get('port')} != admin port {port}")
            if grpc.get("service", "") != service:
                self.problem(where, f"{kind} service {grpc.get('service')!r} is not {service!r}")

    def check_http_probes(self, where: str, app: App, container: Obj) -> None:
        """An HTTP process: startup and readiness GET its health path on its port (503 from
        SIGTERM on takes it out of the endpoints); liveness asks no more than the port (the
        health path is 503 through the drain)."""
        port = (app.kind, app.port)
        for kind in ("startupProbe", "readinessProbe"):
            get = dig(container, kind, "httpGet", default={})
            if get.get("path") != app.health or get.get("port") not in port:
                self.problem(where, f"{kind} must GET {app.health} on port {app.kind}")
        if dig(container, "livenessProbe", "tcpSocket", "port") not in port:
            self.problem(where, f"livenessProbe must be a tcpSocket probe of port {app.kind}")

    def check_ingress(self, where: str, template: Obj, container: Obj, main: str) -> None:
        """NetworkPolicies admit the main and metrics ports and not the admin port (which
        answers anyone without a token; the node's probes are always admitted)."""
        labels = dig(template, "metadata", "labels", default={})
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
        """terminationGracePeriodSeconds > preStop sleep + drain delay + grace period."""
        grace_name, delay_name = f"{app.prefix}_GRACE_PERIOD", f"{app.prefix}_DRAIN_DELAY"
        try:
            grace = float(env.get(grace_name, UNSET).value or "")
            delay = float(env.get(delay_name, EnvVar("0", "default")).value or 0)
        except ValueError:
            self.problem(where, f"{grace_name} and {delay_name} must be numbers of seconds")
            return
        sleep = float(dig(container, "lifecycle", "preStop", "sleep", "seconds", default=0))
        termination = pod.get("terminationGracePeriodSeconds", 30)
        if not termination > grace + delay + sleep:
            self.problem(
                where,
                f"terminationGracePeriodSeconds {termination} must exceed {grace_name} "
                f"{grace:g} + {delay_name} {delay:g} + preStop sleep {sleep:g}",
            )

    def check_tls(
        self, where: str, app: App, pod: Obj, container: Obj, env: dict[str, EnvVar]
    ) -> None:
        """TLS files: settings the service reads, set in pairs, read from the keys of a
        read-only Secret volume; in a mutual-TLS overlay, the main port requires client
        certificates, every client presents one and the admin services are off the main port."""
        clients = [name.removesuffix("TARGET") for name in env if name.endswith("_TARGET")]
        if self.require_mtls:
            needed = [f"{c}{n}" for c in clients for n in ("TLS_CA_FILE", "TLS_CERT_FILE")]
            if app.kind == "grpc":
                needed += ["TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE"]
                if env.get("ADMIN_SERVICES_ON_MAIN_PORT", UNSET).value != "false":
                    self.problem(where, "ADMIN_SERVICES_ON_MAIN_PORT must be false with mutual TLS")
            for name in needed:
                if name not in env:
                    self.problem(where, f"{name} is not set: this overlay serves mutual TLS")
        files = {n: v for n, v in env.items() if TLS_FILE.search(n)}
        if not files:
            return
        for prefix in ["", *clients]:
            cert, key = f"{prefix}TLS_CERT_FILE", f"{prefix}TLS_KEY_FILE"
            if (cert in env) != (key in env):
                self.problem(where, f"{cert} and {key} must be set together")
        mounts: list[Obj] = container.get("volumeMounts") or []
        mount: Obj = next((m for m in mounts if m.get("mountPath") == TLS_DIR), {})
        volume = named(pod.get("volumes"), mount.get("name", ""))
        secret_name = dig(volume, "secret", "secretName")
        if secret_name is None or mount.get("readOnly") is not True:
            self.problem(where, f"TLS files need a Secret volume mounted readOnly at {TLS_DIR}")
        if dig(volume, "secret", "items"):
            self.problem(where, "the TLS Secret volume must project every key (no items:)")
        rendered = self.secret_data(secret_name) if secret_name else None
        keys = tuple(rendered) if rendered is not None else TLS_SECRET_KEYS
        for name, var in files.items():
            directory, _, file = (var.value or "").rpartition("/")
            if directory != TLS_DIR or file not in keys:
                self.problem(where, f"{name} {var.value}: not a key of the Secret at {TLS_DIR}")
        if secret_name:
            self.tls_secrets[app.name] = secret_name

    def behind(self, service: str) -> list[App]:
        """The apps whose pods the Service `service` should select: the app of that name and
        its replicas in other languages."""
        return [app for app in self.apps.values() if app.service == service]

    def check_service(self, name: str) -> None:
        """The Service selects the pods of its app and of that app's replicas (in other
        languages) only, exposes their main port under the same name and never the admin
        port (the kubelet's probes reach pods directly)."""
        where = f"Service/{name}"
        service = self.find("Service", name)
        if service is None:
            self.problem(where, "not rendered")
            return
        apps = self.behind(name)
        selector = dig(service, "spec", "selector", default={})
        selected = sorted(
            dig(d, "metadata", "name")
            for d in self.of_kind("Deployment")
            if selector
            and selector.items() <= dig(d, "spec", "template", "metadata", "labels").items()
        )
        if selected != sorted(app.name for app in apps):
            self.problem(where, f"selector {selector} selects Deployments {selected}")
        for exposed in dig(service, "spec", "ports", default=[]):
            if exposed.get("targetPort") in ("admin", ADMIN_PORT) or exposed.get("name") == "admin":
                self.problem(where, "exposes the plaintext admin port (probes reach pods directly)")
        for app in apps:
            port = named(dig(service, "spec", "ports"), app.kind) or {}
            if port.get("port") != app.port or port.get("targetPort") not in (app.kind, app.port):
                self.problem(
                    where,
                    f"port {app.kind} must be {app.port} -> targetPort {app.kind} ({app.name})",
                )

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
            names = set(dig(certificate, "spec", "dnsNames", default=[]))
            service = self.apps[app_name].service  # the name its clients dial
            for dialled in (service, f"{service}.{namespace}.svc"):
                if dialled not in names:
                    self.problem(where, f"dnsNames {sorted(names)} lack {dialled}")
            usages = set(dig(certificate, "spec", "usages", default=[]))
            client = any(n.endswith("_TLS_CERT_FILE") for n in self.envs.get(app_name, {}))
            server = self.apps[app_name].kind == "grpc"
            needed = [*(["server auth"] if server else []), *(["client auth"] if client else [])]
            for usage in needed:
                if usage not in usages:
                    self.problem(where, f"usages {sorted(usages)} lack {usage!r}")

    def check_targets(self) -> None:
        """Every `<PREFIX>_TARGET` of every app: dns:///<Service>:<port> of a gRPC app's
        headless Service (DNS gives pod IPs: round_robin balances per call, and the port is
        the pods' grpc port), dialled the way that app listens (TLS, a client certificate for
        mTLS, a token it accepts, a name in its Certificate)."""
        for client, env in self.envs.items():
            for variable, target in env.items():
                if variable.endswith("_TARGET"):
                    prefix = variable.removesuffix("TARGET")
                    self.check_target(client, prefix, target.value or "")

    def check_target(self, client: str, prefix: str, text: str) -> None:
        where, variable = f"Deployment/{client}", f"{prefix}TARGET"
        match = re.fullmatch(r"dns:///([a-z0-9.-]+?)\.?:([0-9]+)", text)
        if match is None:
            self.problem(where, f"{variable} {text!r} must be dns:///<service>:<port>")
            return
        host, port = match.group(1).split("."), int(match.group(2))
        name = host[0]
        service = self.find("Service", name)
        if service is None or self.apps.get(name, App("", 0, "", frozenset(), "")).kind != "grpc":
            self.problem(where, f"{variable} {text}: no Service {name} of a gRPC service")
            return
        self.check_dialled_service(where, f"{variable} {text}", name, service, host)
        for app in self.behind(name):  # every implementation its calls may reach
            self.check_dialled_app(where, client, prefix, app.name, match.group(1), port)

    def check_dialled_service(
        self, where: str, target: str, name: str, service: Obj, host: list[str]
    ) -> None:
        """The Service a target dials: in the client's namespace, headless, ready pods only."""
        namespace = dig(service, "metadata", "namespace")
        if host[1:] not in ([], [namespace], [namespace, "svc"], [namespace, *CLUSTER_DOMAIN]):
            self.problem(where, f"{target} is not in namespace {namespace}")
        if dig(service, "spec", "clusterIP") != "None":
            self.problem(f"Service/{name}", "must be headless (clusterIP: None) for round_robin")
        if dig(service, "spec", "publishNotReadyAddresses"):
            self.problem(f"Service/{name}", "must not publish pods that are not ready")

    def check_dialled_app(
        self, where: str, client: str, prefix: str, name: str, dialled: str, port: int
    ) -> None:
        """What a client of the Service must agree on with one app behind it (`name`): its
        grpc port, TLS, client certificates, tokens and certificate names."""
        variable = f"{prefix}TARGET"
        pods_port = dig(named(dig(self.container(name), "ports"), "grpc"), "containerPort")
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
        accepted = server.get("AUTH_TOKENS", UNSET).value
        presented = client_env.get(f"{prefix}AUTH_TOKEN", UNSET).value
        tokens = [token.strip() for token in (accepted or "").split(",")]
        if accepted is not None and presented is not None and presented not in tokens:  # dev
            self.problem("Secret", f"{client}'s {prefix}AUTH_TOKEN is not in {name}'s AUTH_TOKENS")
        certificate = self.certificates_by_secret.get(self.tls_secrets.get(name, ""))
        names = dig(certificate, "spec", "dnsNames", default=[])
        if certificate is not None and dialled not in names:
            self.problem(where, f"{variable} host {dialled} is not in {name}'s dnsNames {names}")

    def check_secrets_shipped(self) -> None:
        """An overlay ships every Secret its pods use (dev) or none of them (prod: the
        cluster's secret manager makes them), so a misspelt name cannot pass as 'external'."""
        rendered = {dig(o, "metadata", "name") for o in self.of_kind("Secret")}
        used: set[str | None] = set()  # None: dig found no name
        for deployment in self.of_kind("Deployment"):
            pod = dig(deployment, "spec", "template", "spec", default={})
            used |= {dig(v, "secret", "secretName") for v in pod.get("volumes") or []}
            for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
                used |= {dig(s, "secretRef", "name") for s in container.get("envFrom") or []}
                used |= {
                    dig(var, "valueFrom", "secretKeyRef", "name")
                    for var in container.get("env") or []
                    if not dig(var, "valueFrom", "secretKeyRef", "optional")
                }
        missing = sorted(str(name) for name in used - rendered if name is not None)
        if rendered and missing:
            self.problem("Secret", f"used but not rendered: {missing}")


def check_invariants(
    objects: list[Obj], apps: dict[str, App], *, require_mtls: bool = False
) -> list[str]:
    """Every broken invariant in one overlay's rendered objects (empty: all hold)."""
    return Manifests(objects, apps, require_mtls=require_mtls).check()

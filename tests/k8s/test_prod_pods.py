"""The prod overlay's gRPC pods, run as local processes (a Go service as the binary `go
build` makes of it): every gRPC service started with the
environment its rendered Deployment gives it (ConfigMaps, Secrets, the TLS files of
components/tls laid out as the kubelet lays out a Secret volume, certificates shaped like
components/cert-manager's), then probed as the kubelet probes it and called as its clients
call it over mutual TLS.

What is not the cluster's is swapped for loopback: free ports for GRPC_PORT, ADMIN_PORT and
METRICS_PORT (the probes' port follows ADMIN_PORT), 127.0.0.1 for GRPC_HOST, and a
`dns:///<service>:<port>` target for that service's local port, its certificate still
verified for the Service name (`<PREFIX>_TLS_SERVER_NAME`), as in the cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from acme.caller.v1 import caller_pb2, caller_pb2_grpc
from acme_common import check_health
from acme_devkit.certificates import CertificateAuthority, KeyPair
from acme_devkit.ports import HOST, free_port
from acme_devkit.processes import ServiceProcess
from tools.k8s_invariants import (
    ROOT,
    TLS_DIR,
    App,
    EnvVar,
    Manifests,
    Obj,
    dig,
    discovered_apps,
    named,
)
from tools.validate_k8s import render

pytestmark = pytest.mark.integration

TOKEN = "prod-pods-token"  # noqa: S105 - a test value; every AUTH_TOKENS and <PREFIX>_AUTH_TOKEN Secret value
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
RPC_TIMEOUT = 5.0
K8S = ROOT / "deploy" / "k8s"
APPS = discovered_apps()
GRPC_APPS = {name: app for name, app in APPS.items() if app.kind == "grpc"}


@dataclass
class Pod:
    app: App
    container: Obj  # the rendered container
    env: dict[str, str]  # what the process was started with
    process: ServiceProcess

    @property
    def main_address(self) -> str:
        return f"{HOST}:{self.env['GRPC_PORT']}"

    @property
    def admin_address(self) -> str:
        return f"{HOST}:{self.env['ADMIN_PORT']}"

    def readiness(self) -> str | None:
        """None when the readiness probe passes, else its status (ServiceProcess.wait_ready)."""
        status = self.probe("readinessProbe")
        return None if status == "SERVING" else f"readinessProbe: {status}"

    def probe(self, kind: str) -> str:
        """The kubelet's native gRPC probe `kind`: plaintext Check of its service at its port
        (the manifest's port, which must be ADMIN_PORT, mapped to the local one)."""
        grpc_probe = self.container[kind]["grpc"]
        assert grpc_probe["port"] == int(self.app_admin_port), f"{self.app.name} {kind}"
        return check_health(self.admin_address, grpc_probe.get("service", ""), timeout=1.0)

    @property
    def app_admin_port(self) -> str:
        return str(dig(named(self.container["ports"], "admin"), "containerPort"))


def secret_volume(tls_dir: Path, files: dict[str, bytes]) -> None:
    """files laid out as the kubelet mounts a Secret: <key> -> ..data/<key> -> ..<stamp>/<key>
    (the layout its atomic updates swap)."""
    stamp = tls_dir / "..2026_11_30_00_00_00.000000001"
    stamp.mkdir(parents=True)
    for key, data in files.items():
        (stamp / key).write_bytes(data)
        (tls_dir / key).symlink_to(Path("..data") / key)
    (tls_dir / "..data").symlink_to(stamp.name)


def issue_like_cert_manager(ca: CertificateAuthority, app: App) -> KeyPair:
    """A certificate with the dnsNames and usages of the app's components/cert-manager file
    (for a replica in another language, its twin's: it mounts that Secret)."""
    spec = yaml.safe_load((K8S / "components" / "cert-manager" / f"{app.service}.yaml").read_text())
    usages = spec["spec"]["usages"]
    assert "server auth" in usages
    return ca.issue(
        app.name,
        server=True,
        also_client="client auth" in usages,
        dns_names=spec["spec"]["dnsNames"],
    )


def pod_environment(
    app: App, env: dict[str, EnvVar], ports: dict[str, dict[str, int]], tls_dir: Path
) -> dict[str, str]:
    """The rendered container environment, made runnable on loopback (see the module doc)."""
    result: dict[str, str] = {}
    for name, var in env.items():
        if var.source == "secret":
            value = TOKEN
        elif var.source.startswith("field:"):
            value = f"{app.name}-0"
        else:
            assert var.value is not None, f"{app.name}: {name} has no value"
            value = var.value
        if value.startswith(f"{TLS_DIR}/"):
            value = str(tls_dir / value.removeprefix(f"{TLS_DIR}/"))
        result[name] = value
    own = ports[app.name]
    result |= {
        "GRPC_HOST": HOST,
        "GRPC_PORT": str(own["grpc"]),
        "ADMIN_PORT": str(own["admin"]),
        "METRICS_PORT": str(own["metrics"]),
    }
    for name, value in list(result.items()):
        target = re.fullmatch(r"dns:///([a-z0-9-]+):[0-9]+", value)
        if name.endswith("_TARGET") and target is not None:
            server_name = name.removesuffix("TARGET") + "TLS_SERVER_NAME"
            assert server_name in app.variables, f"{app.name} reads no {server_name}"
            result[name] = f"{HOST}:{ports[target.group(1)]['grpc']}"
            result[server_name] = target.group(1)
    return result


def command(app: App, build_dir: Path) -> list[str]:
    """How to start the app: a Python service as its module, a Go service as the binary
    `go build` makes of services/<name> (skipped loudly without Go; ACME_REQUIRE_GO_TOOLS=1:
    fails)."""
    if app.language == "python":
        return [sys.executable, "-m", app.name.replace("-", "_")]
    go = shutil.which("go")
    if app.language != "go" or go is None:
        message = f"NOT RUN: {app.name} is in {app.language} and `go` is not on PATH"
        if os.environ.get("ACME_REQUIRE_GO_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    binary = build_dir / app.name  # go build makes build_dir
    module = ROOT / "services" / app.name
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=module, check=True, timeout=600)
    return [str(binary)]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority("acme-ca", tmp_path_factory.mktemp("prod-ca"))


@pytest.fixture(scope="module")
def pods(
    tmp_path_factory: pytest.TempPathFactory, ca: CertificateAuthority
) -> Iterator[dict[str, Pod]]:
    objects, _ = render(K8S / "overlays" / "prod")
    manifests = Manifests(objects, APPS, require_mtls=True)
    assert manifests.check() == []
    root = tmp_path_factory.mktemp("prod-pods")
    ports = {name: {p: free_port() for p in ("grpc", "admin", "metrics")} for name in GRPC_APPS}
    started: dict[str, Pod] = {}
    try:
        for name, app in GRPC_APPS.items():
            container = manifests.container(name)
            assert container is not None
            pair = issue_like_cert_manager(ca, app)
            tls_dir = root / name / "tls"
            secret_volume(tls_dir, {
                "tls.crt": pair.cert.read_bytes(),
                "tls.key": pair.key.read_bytes(),
                "ca.crt": ca.pem.read_bytes(),
            })  # fmt: skip
            env = pod_environment(app, manifests.envs[name], ports, tls_dir)
            log = root / f"{name}.log"
            argv = command(app, root / "bin")
            process = ServiceProcess(name, argv, log, env, ports[name]["grpc"])
            started[name] = Pod(app, container, env, process.start())
        for pod in started.values():
            pod.process.wait_ready(pod.readiness)
        yield started
    finally:
        for pod in started.values():
            pod.process.stop()


def mtls_channel(address: str, ca: CertificateAuthority, client: KeyPair | None, name: str) -> Any:
    credentials = grpc.ssl_channel_credentials(
        ca.pem.read_bytes(),
        None if client is None else client.key.read_bytes(),
        None if client is None else client.cert.read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", name), ("grpc.enable_http_proxy", 0)]
    return grpc.secure_channel(address, credentials, options)


def test_the_kubelets_plaintext_probes_pass_on_the_admin_port_only(pods: dict[str, Pod]) -> None:
    for pod in pods.values():
        assert {kind: pod.probe(kind) for kind in PROBES if kind in pod.container} == {
            kind: "SERVING" for kind in PROBES if kind in pod.container
        }, pod.app.name
        # The same plaintext probe at the main port: it speaks TLS only.
        assert check_health(pod.main_address, "", timeout=1.0) == "UNAVAILABLE"


def test_the_main_port_requires_a_client_certificate_from_the_ca(
    pods: dict[str, Pod], ca: CertificateAuthority
) -> None:
    client = ca.issue("client", server=False)
    for pod in pods.values():
        request = health_pb2.HealthCheckRequest(service=pod.app.health)
        with mtls_channel(pod.main_address, ca, None, pod.app.service) as channel:
            with pytest.raises(grpc.RpcError) as refused:
                health_pb2_grpc.HealthStub(channel).Check(request, timeout=RPC_TIMEOUT)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        with mtls_channel(pod.main_address, ca, client, pod.app.service) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=RPC_TIMEOUT)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_caller_reaches_greeter_over_mutual_tls_by_its_service_name(
    pods: dict[str, Pod], ca: CertificateAuthority
) -> None:
    """caller verifies greeter's certificate for `greeter` (the host of dns:///greeter:50051)
    and presents its own, both issued as the cert-manager component issues them."""
    client = ca.issue("client", server=False)
    with mtls_channel(pods["caller"].main_address, ca, client, "caller") as channel:
        reply = caller_pb2_grpc.CallerServiceStub(channel).Introduce(
            caller_pb2.IntroduceRequest(name="Ada"),
            metadata=[("authorization", f"Bearer {TOKEN}")],
            timeout=RPC_TIMEOUT,
        )
    assert "Ada" in reply.message
    assert reply.greeter_instance == "greeter-0"


def list_services(channel: Any, metadata: list[tuple[str, str]]) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [reply] = stub.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=RPC_TIMEOUT)
    return [service.name for service in reply.list_services_response.service]


def test_reflection_is_served_on_the_admin_port_not_the_main_port(
    pods: dict[str, Pod], ca: CertificateAuthority
) -> None:
    """ADMIN_SERVICES_ON_MAIN_PORT=false in prod: reflection reveals the API only to the
    cluster network."""
    client = ca.issue("client", server=False)
    token = [("authorization", f"Bearer {TOKEN}")]
    for pod in pods.values():
        with grpc.insecure_channel(pod.admin_address) as channel:
            assert pod.app.health in list_services(channel, [])
        with mtls_channel(pod.main_address, ca, client, pod.app.service) as channel:
            with pytest.raises(grpc.RpcError) as refused:
                list_services(channel, token)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_after_all_of_that_no_pod_logged_an_error(pods: dict[str, Pod]) -> None:
    for pod in pods.values():
        errors = [r for r in pod.process.log_records() if r.get("level") in ("ERROR", "CRITICAL")]
        assert errors == [], pod.app.name

"""The [deploy] section of services/<name>/service.toml, as tools/k8s_invariants.py reads it:
a replica of a Python service takes its twin's settings, port and Service; a service of its
own declares its port and extra settings; anything else is refused, naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.k8s_invariants import DESCRIPTOR, App, declared_apps, discovered_apps

TWIN = App("greeter", 50051, "acme.greeter.v1.GreeterService", frozenset({"GRPC_PORT", "X"}))


def declare(root: Path, name: str, text: str) -> None:
    (root / "services" / name).mkdir(parents=True)
    (root / "services" / name / DESCRIPTOR).write_text(text)


def test_the_repository_declares_greeter_go_a_replica_of_greeter() -> None:
    app = discovered_apps()["greeter-go"]
    assert (app.replica_of, app.language, app.service) == ("greeter", "go", "greeter")
    assert app.port == discovered_apps()["greeter"].port


def test_a_replica_takes_its_twins_terms(tmp_path: Path) -> None:
    declare(tmp_path, "greeter-rust", 'language = "rust"\n[deploy]\nreplica_of = "greeter"\n')
    app = declared_apps({"greeter": TWIN}, tmp_path)["greeter-rust"]
    assert (app.port, app.health, app.variables) == (TWIN.port, TWIN.health, TWIN.variables)
    assert (app.service, app.language) == ("greeter", "rust")


def test_a_service_of_its_own_declares_port_and_settings(tmp_path: Path) -> None:
    declare(
        tmp_path,
        "billing",
        'language = "go"\n[deploy]\nport = 50053\nvariables = ["BILLING_LIMIT"]\n',
    )
    app = declared_apps({}, tmp_path)["billing"]
    assert (app.port, app.health, app.service) == (
        50053,
        "acme.billing.v1.BillingService",
        "billing",
    )
    assert {"GRPC_PORT", "AUTH_TOKENS", "BILLING_LIMIT"} <= app.variables


def test_a_python_service_is_read_from_its_code(tmp_path: Path) -> None:
    declare(tmp_path, "greeter", 'language = "python"\nimplements = []\n')
    assert declared_apps({"greeter": TWIN}, tmp_path) == {"greeter": TWIN}


@pytest.mark.parametrize(
    "deploy",
    ['replica_of = "nope"', 'port = "50053"', ""],
    ids=["unknown-twin", "port-not-a-number", "nothing"],
)
def test_a_bad_deploy_section_names_the_file(tmp_path: Path, deploy: str) -> None:
    declare(tmp_path, "odd", f'language = "go"\n[deploy]\n{deploy}\n')
    with pytest.raises(ValueError, match=r"odd/service\.toml"):
        declared_apps({"greeter": TWIN}, tmp_path)

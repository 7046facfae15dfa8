"""acmectl.plan: what the local stack runs, where, and with which settings, decided before
anything starts, on made-up services (so nothing here depends on the repository's own):
the wiring of each <NAME>_TARGET, the edge's exposures, ports, per-service settings, and every
refusal (exit 2) naming the variable or flag. tests/tools/test_stack.py runs the real one."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path

import pytest

from acme_common import ServerSettings
from acmectl.plan import Options, Plan, Refused, check_ports_free, make_plan
from acmectl.services import Service, variables_of
from tests.processes import HOST, free_port

SERVER = variables_of(ServerSettings)


def grpc_service(
    name: str, port: int, *, clients: tuple[str, ...] = (), replica_of: str | None = None
) -> Service:
    package = (replica_of or name).replace("-", "_")
    client_variables = {f"{prefix}{v}" for prefix in clients for v in ("TARGET", "TIMEOUT")}
    return Service(
        name=name,
        directory=Path("services") / name,
        language="python",
        command=("{python}", "-m", package),
        host_variable="GRPC_HOST",
        port_variable="GRPC_PORT",
        default_port=port,
        implements=(f"acme.{package}.v1.{package.title()}Service",),
        clients=clients,
        variables=SERVER | client_variables | {f"{package.upper()}_MAX_ITEMS"},
        replica_of=replica_of,
    )


EDGE = Service(
    name="edge",
    directory=Path("services/edge"),
    language="python",
    command=("{python}", "-m", "edge"),
    host_variable="EDGE_HOST",
    port_variable="EDGE_PORT",
    default_port=8080,
    variables=frozenset({"EDGE_HOST", "EDGE_PORT", "EDGE_SERVICES", "LOG_LEVEL", "METRICS_PORT"}),
    edge_services="EDGE_SERVICES",
)
STORE = grpc_service("store", 50061)
SHOP = grpc_service("shop", 50062, clients=("STORE_",))
STORE_GO = grpc_service("store-go", 50061, replica_of="store")
SERVICES = [EDGE, SHOP, STORE, STORE_GO]


def plan(environ: Mapping[str, str] | None = None, **options: object) -> Plan:
    return make_plan(SERVICES, Options(**options), environ or {})  # type: ignore[arg-type]


def env_of(made: Plan, name: str) -> dict[str, str]:
    process = made.process(name)
    assert process is not None, f"{name} is not in the stack"
    return process.env


def test_every_service_but_the_replica_starts_callees_first_and_the_edge_last() -> None:
    made = plan()
    assert [p.name for p in made.processes] == ["store", "shop", "edge"]
    assert {p.name: p.port for p in made.processes} == {"store": 50061, "shop": 50062, "edge": 8080}


def test_each_target_is_wired_and_every_service_exposed_at_the_edge() -> None:
    made = plan()
    assert env_of(made, "shop")["STORE_TARGET"] == f"{HOST}:50061"
    edge = env_of(made, "edge")
    assert edge["EDGE_SERVICES"] == "acme.shop.v1.ShopService,acme.store.v1.StoreService"
    assert edge["STORE_TARGET"] == f"{HOST}:50061"
    assert edge["SHOP_TARGET"] == f"{HOST}:50062"
    assert (edge["EDGE_HOST"], edge["EDGE_PORT"]) == (HOST, "8080")
    assert env_of(made, "store")["INSTANCE_NAME"] == "store-local"


def test_expose_narrows_what_the_edge_serves() -> None:
    edge = env_of(plan(expose=frozenset({"shop"})), "edge")
    assert edge["EDGE_SERVICES"] == "acme.shop.v1.ShopService"
    assert "STORE_TARGET" not in edge


def test_a_replica_asked_for_gets_its_own_port_and_joins_its_twins_target() -> None:
    made = plan(with_=frozenset({"store-go"}))
    replica = made.process("store-go")
    assert replica is not None
    assert replica.port not in {50061, 50062, 8080}
    balanced = f"ipv4:{HOST}:50061,{HOST}:{replica.port}"
    assert env_of(made, "shop")["STORE_TARGET"] == balanced
    assert env_of(made, "edge")["STORE_TARGET"] == balanced


def test_without_leaves_a_service_out_and_its_callers_are_told() -> None:
    made = plan(without=frozenset({"store"}))
    assert [p.name for p in made.processes] == ["shop", "edge"]
    assert "STORE_TARGET" not in env_of(made, "shop")
    assert any("SHOP__STORE_TARGET" in note for note in made.notes)


def test_base_port_numbers_in_start_order_and_port_moves_one() -> None:
    made = plan(base_port=47000, ports={"shop": 47400})
    ports = {p.name: p.port for p in made.processes}
    assert ports == {"store": 47000, "shop": 47400, "edge": 47002}
    assert env_of(made, "edge")["SHOP_TARGET"] == f"{HOST}:47400"


def test_base_port_0_takes_free_ports() -> None:
    ports = [p.port for p in plan(base_port=0).processes]
    assert len(set(ports)) == len(ports)
    assert all(port > 0 for port in ports)


def test_a_prefixed_setting_reaches_only_its_service_and_a_shared_one_all() -> None:
    made = plan({"SHOP__LOG_LEVEL": "DEBUG", "LOG_LEVEL": "WARNING", "OTEL_SERVICE_X": "1"})
    assert env_of(made, "shop")["LOG_LEVEL"] == "DEBUG"
    assert env_of(made, "store")["LOG_LEVEL"] == "WARNING"
    assert env_of(made, "edge")["LOG_LEVEL"] == "WARNING"
    assert all(p.env["OTEL_SERVICE_X"] == "1" for p in made.processes)
    assert all(p.env["LOG_FORMAT"] == "text" for p in made.processes)  # the terminal's default


def test_a_setting_one_service_reads_goes_to_it_only() -> None:
    made = plan({"STORE_MAX_ITEMS": "3"})
    assert env_of(made, "store")["STORE_MAX_ITEMS"] == "3"
    assert "STORE_MAX_ITEMS" not in env_of(made, "shop")


def test_a_prefixed_target_points_one_service_elsewhere() -> None:
    made = plan({"SHOP__STORE_TARGET": "dns:///store.example:443"})
    assert env_of(made, "shop")["STORE_TARGET"] == "dns:///store.example:443"
    assert env_of(made, "edge")["STORE_TARGET"] == f"{HOST}:50061"


@pytest.mark.parametrize(
    ("environ", "options", "said"),
    [
        # One value read by several processes: a port they would all listen on.
        ({"METRICS_PORT": "9090"}, {}, "METRICS_PORT=9090 is read by store, shop, edge"),
        ({"AUTH_TOKENS": "secret"}, {}, "AUTH_TOKENS is read by store, shop:"),
        ({"GRPC_PORT": "5000"}, {}, "GRPC_PORT: set by the stack for store"),
        ({"EDGE_SERVICES": "x.v1.X"}, {}, "EDGE_SERVICES: set by the stack for edge"),
        ({"SHOP__GRPC_PORT": "5000"}, {}, "SHOP__GRPC_PORT: set by the stack for shop"),
        ({"STORE_TARGET": "x:1"}, {}, "STORE_TARGET: set by the stack for shop"),
        ({"SHOP__NOT_A_SETTING": "1"}, {}, "SHOP__NOT_A_SETTING: shop reads no NOT_A_SETTING"),
        ({"SHOPP__LOG_LEVEL": "DEBUG"}, {}, "SHOPP__LOG_LEVEL: no service SHOPP"),
        (
            {"SHOP__METRICS_PORT": "9090", "STORE__METRICS_PORT": "9090"},
            {},
            "port 9090 is asked twice: METRICS_PORT of store (STORE__METRICS_PORT) and "
            "METRICS_PORT of shop (SHOP__METRICS_PORT)",
        ),
        ({"SHOP__METRICS_PORT": "8080"}, {}, "port 8080 is asked twice"),
        ({}, {"ports": {"shop": 50061}}, "port 50061 is asked of store (GRPC_PORT), shop"),
        ({}, {"with_": frozenset({"nope"})}, "--with: no service nope"),
        ({}, {"expose": frozenset({"nope"})}, "--expose: no service nope"),
    ],
)
def test_what_cannot_be_placed_is_refused_naming_it(
    environ: dict[str, str], options: dict[str, object], said: str
) -> None:
    with pytest.raises(Refused) as refused:
        plan(environ, **options)
    assert said in str(refused.value)


def test_a_taken_port_is_refused_naming_the_variable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as occupant:
        occupant.bind((HOST, 0))
        occupant.listen()
        taken = occupant.getsockname()[1]
        made = plan({"STORE__METRICS_PORT": str(taken)}, base_port=0)
        with pytest.raises(Refused) as refused:
            check_ports_free(made)
    assert f"port {taken} is taken" in str(refused.value)
    assert "METRICS_PORT of store (STORE__METRICS_PORT)" in str(refused.value)
    check_ports_free(plan({"STORE__METRICS_PORT": str(free_port())}, base_port=0))

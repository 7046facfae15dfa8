"""The codegen check passes on the committed stubs and fails, naming files, after a proto edit;
both modes refuse a contract `buf lint` refuses, before generating anything."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acme_devkit.external import not_run
from acme_devkit.node import npm_ci

pytestmark = pytest.mark.integration  # runs tools (buf, kubectl, uv, ...) as processes

ROOT = Path(__file__).resolve().parents[2]


def copy_of_repo(tmp_path: Path) -> Path:
    """The parts codegen reads and writes, copied so the real tree is never touched: the
    protos (ours and third_party/) and buf.yaml, the Python and Go stubs, the Go module pinning
    the Go plugins, and the gateway's web page with its generators (tools/webgen.py; the copy
    links to the real node_modules, installed here when npm can)."""
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    shutil.copytree(ROOT / "third_party", tmp_path / "third_party")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "libs" / "protos" / "src", tmp_path / "libs" / "protos" / "src")
    shutil.copytree(ROOT / "libs" / "protos-go", tmp_path / "libs" / "protos-go")
    (tmp_path / "tools").mkdir()
    shutil.copytree(
        ROOT / "tools" / "go",
        tmp_path / "tools" / "go",
        ignore=shutil.ignore_patterns("golangci-lint"),
    )
    for script in ("codegen.py", "webgen.py"):
        shutil.copy(ROOT / "tools" / script, tmp_path / "tools" / script)
    web = Path("services") / "gateway" / "web"
    shutil.copytree(ROOT / web, tmp_path / web, ignore=shutil.ignore_patterns("node_modules"))
    static = Path("services") / "gateway" / "src" / "gateway" / "static"
    shutil.copytree(ROOT / static, tmp_path / static)
    npm = shutil.which("npm")
    if npm is not None:
        problem = npm_ci(npm, ROOT / web)
        assert problem is None, problem
        (tmp_path / web / "node_modules").symlink_to(ROOT / web / "node_modules")
    return tmp_path


def codegen(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(repo / "tools" / "codegen.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_passes_on_committed_stubs(tmp_path: Path) -> None:
    result = codegen(copy_of_repo(tmp_path), "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stubs match proto/" in result.stdout


def test_check_fails_after_unregenerated_proto_edit_and_regeneration_fixes_it(
    tmp_path: Path,
) -> None:
    repo = copy_of_repo(tmp_path)
    proto = repo / "proto" / "acme" / "greeter" / "v1" / "greeter.proto"
    proto.write_text(
        proto.read_text().replace(
            "  string served_by = 2;\n",
            "  string served_by = 2;\n  // Added without regenerating.\n  int32 extra = 3;\n",
        )
    )
    result = codegen(repo, "--check")
    assert result.returncode == 1
    assert "codegen check FAILED" in result.stdout
    assert "acme/greeter/v1/greeter_pb2.py" in result.stdout
    assert "acme/greeter/v1/greeter_pb2.pyi" in result.stdout
    assert "caller_pb2.py" not in result.stdout
    if shutil.which("go") is not None:  # the Go stubs are checked too
        assert "libs/protos-go/acme/greeter/v1/greeter.pb.go" in result.stdout
        assert "caller.pb.go" not in result.stdout

    regenerated = codegen(repo)
    assert regenerated.returncode == 0, regenerated.stderr
    assert codegen(repo, "--check").returncode == 0


def test_check_reports_stale_files(tmp_path: Path) -> None:
    repo = copy_of_repo(tmp_path)
    (repo / "libs" / "protos" / "src" / "acme" / "greeter" / "v1" / "old_pb2.py").write_text("")
    result = codegen(repo, "--check")
    assert result.returncode == 1
    assert "old_pb2.py (stale" in result.stdout


def test_generation_is_deterministic(tmp_path: Path) -> None:
    repo = copy_of_repo(tmp_path)
    assert codegen(repo).returncode == 0
    assert "0 file(s) changed" in codegen(repo).stdout


# A contract of its own (no service of the repository): an RPC that returns its entity itself.
ENTITY_AS_RESPONSE = """syntax = "proto3";

package acme.lintprobe.v1;

// LintprobeService exists only in this test.
service LintprobeService {
  // GetOrder returns the order itself: buf's STANDARD rules want a GetOrderResponse.
  rpc GetOrder(GetOrderRequest) returns (Order);
}

// GetOrderRequest names the order.
message GetOrderRequest {
  // The order's id.
  string id = 1;
}

// Order is the entity.
message Order {
  // The order's id.
  string id = 1;
}
"""


def generated_files(repo: Path) -> dict[str, str]:
    """sha256 of every file of a copy outside proto/: what codegen may write (Python and Go
    stubs, the web page) and the tools (node_modules, a link to the real one, left out)."""
    return {
        path.relative_to(repo).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(repo.rglob("*"))
        if path.is_file()
        and not {"proto", "node_modules", "__pycache__"}.intersection(path.relative_to(repo).parts)
    }


@pytest.mark.parametrize("mode", [[], ["--check"]], ids=["generate", "check"])
def test_a_contract_buf_lint_refuses_stops_codegen_before_it_generates(
    tmp_path: Path, mode: list[str]
) -> None:
    repo = copy_of_repo(tmp_path)
    probe = repo / "proto" / "acme" / "lintprobe" / "v1" / "lintprobe.proto"
    probe.parent.mkdir(parents=True)
    probe.write_text(ENTITY_AS_RESPONSE)
    before = generated_files(repo)
    result = codegen(repo, *mode)
    assert result.returncode == 1, result.stdout + result.stderr
    # buf's own message, with the rule's name and where it broke.
    assert (
        "proto/acme/lintprobe/v1/lintprobe.proto(8,42) : error RPC_RESPONSE_STANDARD_NAME :"
        ' RPC response type "Order" should be named "GetOrderResponse"'
    ) in result.stderr
    assert "nothing was generated" in result.stderr
    assert "codegen check" not in result.stdout  # it stopped before comparing anything
    assert generated_files(repo) == before
    assert not (repo / "libs" / "protos" / "src" / "acme" / "lintprobe").exists()


def test_check_fails_when_the_pages_copy_of_buf_validate_differs_from_the_pinned_one(
    tmp_path: Path,
) -> None:
    """The page reads the rules with @bufbuild/protovalidate's own buf/validate (tools/webgen.py:
    one copy in the bundle); a pinned validate.proto that says a rule differently (here a
    message) fails the check, so the browser and the servers cannot drift apart."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        not_run(
            "WEB CODEGEN TEST", "`node` or `npm` is not on PATH", "Node.js >= 18 and npm",
            "ACME_REQUIRE_NODE",
        )  # fmt: skip
    repo = copy_of_repo(tmp_path)
    pinned = repo / "third_party" / "protovalidate" / "buf" / "validate" / "validate.proto"
    rule = "'must be at most %s characters'"
    assert rule in pinned.read_text()
    pinned.write_text(pinned.read_text().replace(rule, "'must have at most %s characters'"))
    result = codegen(repo, "--check")
    assert result.returncode == 1
    assert "@bufbuild/protovalidate's buf/validate/validate.proto differs" in result.stderr

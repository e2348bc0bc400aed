"""End to end: the real operator (``infercost run`` as a process) against the cluster, with
simulated inference servers and DCGM exporters serving traffic, read back with kubectl the way
users do: statuses, printer columns and ``kubectl describe`` Events.

Simulated pods and nodes only exist on the emulator: on a real cluster (``--k8s-kubeconfig``)
the traffic test skips, and the TDP-only profile test runs against whatever nodes exist.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infercost.kube.client import load_api_client
from infercost.kube.rest import NODES, PODS, ConflictError, RestClient
from infercost.testing.kubefixtures import eventually
from infercost.testing.simservers.fixtures import SimServers
from infercost.testing.simservers.objects import make_dcgm_exporter_pod, make_node, make_pod

REPO = Path(__file__).resolve().parents[1]
KINDS = ("costprofiles", "usagereports", "tokenbudgets")
OPERATOR_NS = "infercost-system"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def operator(cluster, pytestconfig) -> Iterator[subprocess.Popen[str]]:  # type: ignore[no-untyped-def]
    kubeconfig = str(pytestconfig.getoption("k8s_kubeconfig"))
    rest = RestClient(load_api_client(kubeconfig))
    with contextlib.suppress(ConflictError):  # already there
        rest.create(
            _resource_namespaces(),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NS}},
        )
    env = dict(os.environ)
    env.update(
        {
            "INFERCOST_KUBECONFIG": kubeconfig,
            "INFERCOST_NAMESPACE": OPERATOR_NS,
            "INFERCOST_LEADER_ELECT": "false",
            "INFERCOST_SCRAPE_INTERVAL": "1s",
            "INFERCOST_SCRAPE_TIMEOUT": "800ms",
            "INFERCOST_STATUS_INTERVAL": "1s",
            "INFERCOST_METRICS_BIND": f"127.0.0.1:{_free_port()}",
            "INFERCOST_HEALTH_BIND": f"127.0.0.1:{_free_port()}",
            "INFERCOST_LOG_FORMAT": "console",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "infercost", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def _resource_namespaces() -> Any:
    from infercost.kube.rest import Resource

    return Resource("", "v1", "namespaces", "Namespace", False)


def _apply(cluster: Any, tmp_path: Path, docs: list[dict[str, Any]]) -> None:
    path = tmp_path / f"{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    cluster.kubectl(["apply", "-f", str(path)], as_dict=False)


def _condition(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond["type"] == kind:
            return dict(cond)
    return {}


def _create_pod(rest: RestClient, pod: dict[str, Any]) -> None:
    ns = pod["metadata"]["namespace"]
    with contextlib.suppress(ConflictError):
        rest.create(_resource_namespaces(), {"metadata": {"name": ns}})
    rest.create(PODS, pod, ns)
    rest.merge_patch(PODS, pod["metadata"]["name"], {"status": pod["status"]}, ns, "status")


def test_costs_of_simulated_traffic_reach_reports_columns_and_events(  # type: ignore[no-untyped-def]
    cluster, namespace, operator, pytestconfig, sim_servers: SimServers, tmp_path
) -> None:
    kubeconfig = str(pytestconfig.getoption("k8s_kubeconfig"))
    if "kubesim" not in Path(kubeconfig).read_text():
        pytest.skip("simulated nodes and pods need the emulator (a real cluster has real ones)")
    rest = RestClient(load_api_client(kubeconfig))
    node = f"gpu-{namespace}"
    pool = namespace
    rest.create(NODES, make_node(node, gpus=2, labels={"pool": pool}))
    exporter = sim_servers.dcgm(gpus=2, node=node, clock=time.time)
    exporter.set_power(0, 350.0)
    exporter.set_power(1, 80.0)
    team = f"{namespace}-team"
    exporter.assign(0, team, "vllm-0")
    _create_pod(rest, make_dcgm_exporter_pod(node, exporter.host, name=f"dcgm-{namespace}"))
    vllm = sim_servers.inference(
        "vllm", models=["meta-llama/Llama-3.1-8B-Instruct"], clock=time.time
    )
    vllm.set_rate(400.0, 100.0)
    _create_pod(
        rest,
        make_pod(
            "vllm-0",
            namespace=team,
            ip=vllm.host,
            node=node,
            annotations={"infercost.ai/backend": "vllm"},
            gpus=1,
            start_time="2020-01-01T00:00:00Z",
        ),
    )
    _apply(
        cluster,
        tmp_path,
        [
            {
                "apiVersion": "finops.infercost.ai/v1alpha1",
                "kind": "CostProfile",
                "metadata": {"name": "pool", "namespace": namespace},
                "spec": {
                    "hardware": {"gpuModel": "H100", "gpuCount": 2, "purchasePriceUSD": 60000},
                    "electricity": {"ratePerKWh": 0.12, "pueFactor": 1.3},
                    "nodeSelector": {"pool": pool},
                },
            },
            {
                "apiVersion": "finops.infercost.ai/v1alpha1",
                "kind": "UsageReport",
                "metadata": {"name": "today", "namespace": namespace},
                "spec": {"costProfileRef": "pool"},
            },
        ],
    )

    def report() -> dict[str, Any]:
        return cluster.kubectl(["get", "ureport", "today", "-n", namespace])

    eventually(
        lambda: (
            (report().get("status") or {}).get("inputTokens", 0) > 0
            and _condition(report()).get("status") == "True"
        ),
        timeout=60,
        what="the report counts tokens",
    )
    status = report()["status"]
    assert status["estimatedCostUSD"] > 0
    assert status["byModel"][0]["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert status["byModel"][0]["namespace"] == team
    assert status["costPerMillionTokens"] > 0
    assert any("equivalentTo" in c for c in status["cloudComparison"])
    profile = cluster.kubectl(["get", "cprof", "pool", "-n", namespace])
    assert _condition(profile)["reason"] == "CostComputed"
    assert profile["status"]["powerSource"] == "DCGM"

    table = cluster.kubectl(["get", "ureport", "-n", namespace], as_dict=False).splitlines()
    header, row = table[0].split(), table[1].split()
    assert header[:3] == ["NAME", "PERIOD", "COST"]
    assert row[0] == "today" and row[1] == status["period"]
    assert float(row[2]) > 0
    described = cluster.kubectl(["describe", "ureport", "today", "-n", namespace], as_dict=False)
    assert "ReportComputed" in described
    assert "Estimated Cost USD" in described

    operator.send_signal(signal.SIGTERM)
    out, _ = operator.communicate(timeout=20)
    assert operator.returncode == 0, out[-3000:]
    assert "Traceback" not in out


def test_a_tdp_only_profile_without_exporters(cluster, namespace, operator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What runs on any cluster, GPUs or not: a profile over nodes without DCGM costs its
    amortization and TDP power, and says why in DCGMReachable."""
    _apply(
        cluster,
        tmp_path,
        [
            {
                "apiVersion": "finops.infercost.ai/v1alpha1",
                "kind": "CostProfile",
                "metadata": {"name": "tdp", "namespace": namespace},
                "spec": {
                    "hardware": {
                        "gpuModel": "L4",
                        "gpuCount": 1,
                        "purchasePriceUSD": 8760,
                        "amortizationYears": 1,
                        "tdpWatts": 72,
                    },
                    "electricity": {"ratePerKWh": 0.1},
                    "nodeSelector": {"e2e.infercost.ai/pool": namespace},
                },
            }
        ],
    )
    profile = eventually(
        lambda: (
            (p := cluster.kubectl(["get", "cprof", "tdp", "-n", namespace]))
            and _condition(p, "DCGMReachable")
            and p
        ),
        timeout=60,
        what="the profile's status",
    )
    assert profile["status"]["amortizationRatePerHour"] == pytest.approx(1.0)
    assert _condition(profile, "DCGMReachable")["reason"] == "DCGMNotFound"

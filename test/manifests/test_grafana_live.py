"""Every Grafana panel returns data from a real Prometheus that scraped a running operator.

The demo's simulated cluster (emulator, DCGM exporters, vLLM / SGLang / llama.cpp servers,
reports and budgets) runs in-process, ``infercost run`` runs against it, and a real Prometheus
(Debian's ``prometheus``) scrapes the operator every second. One inference pod answers 500 and
the watches restart once, so the error panels have something to show. Then every query of
``manifests/grafana/infercost.json`` — template variables resolved through Prometheus the way
Grafana resolves them — must return at least one series.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infercost.testing.demoscenario import SimulatedCluster, load_scenario
from infercost.testing.kubefixtures import eventually

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "manifests" / "grafana" / "infercost.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, SimulatedCluster, Any]]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus; .ci/run does)")
    with SimulatedCluster(load_scenario()) as cluster:
        assert cluster.harness is not None
        failing = cluster.harness.inference(
            "broken-0", node=cluster.spec.nodes[0].name, namespace="team-a", gpus=0
        )
        metrics_port, prom_port = _free_port(), _free_port()
        env = dict(os.environ)
        env.update(
            {
                "INFERCOST_KUBECONFIG": cluster.kubeconfig,
                "INFERCOST_LEADER_ELECT": "false",
                "INFERCOST_SCRAPE_INTERVAL": "1s",
                "INFERCOST_SCRAPE_TIMEOUT": "800ms",
                "INFERCOST_STATUS_INTERVAL": "1s",
                "INFERCOST_METRICS_BIND": f"127.0.0.1:{metrics_port}",
                "INFERCOST_HEALTH_BIND": f"127.0.0.1:{_free_port()}",
            }
        )
        operator = subprocess.Popen(
            [sys.executable, "-m", "infercost", "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: infercost\n"
            "    honor_labels: true\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
        )
        prometheus = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield f"http://127.0.0.1:{prom_port}", cluster, failing.server
        finally:
            for proc in (prometheus, operator):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in (prometheus, operator):
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _query(base: str, expr: str) -> list[Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = _get(url)
    assert answer["status"] == "success", (expr, answer)
    return list(answer["data"]["result"])


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield from _panels(panel.get("panels") or [])
        if panel.get("targets"):
            yield panel


def _label_values(base: str, query: str, variables: dict[str, str]) -> list[str]:
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
    assert match, query
    selector, label = _substitute(match.group(1), variables), match.group(2)
    return sorted({r["metric"].get(label, "") for r in _query(base, selector)} - {""})


def _regex_literal(value: str) -> str:
    """``value`` as a regex literal inside a PromQL string (backslashes doubled)."""
    return re.sub(r"([.*+?^${}()|\[\]\\])", r"\\\\\1", value)


def _substitute(expr: str, variables: dict[str, str]) -> str:
    for name, value in variables.items():
        expr = expr.replace(f"${name}", value)
    return expr.replace("$__rate_interval", "30s").replace("$__range", "2m")


def test_every_panel_returns_data_from_a_prometheus_that_scraped_the_operator(
    stack: tuple[str, SimulatedCluster, Any],
) -> None:
    base, cluster, broken = stack
    dashboard = json.loads(DASHBOARD.read_text())

    def has(expr: str) -> bool:
        try:
            return bool(_query(base, expr))
        except OSError:
            return False

    # data flows: reports, budgets and per-model cost rates
    eventually(
        lambda: (
            has("infercost_usagereport_cost_usd")
            and has("infercost_budget_used_ratio")
            and has("rate(infercost_cost_usd_total[30s]) > 0")
        ),
        timeout=120,
        interval=0.5,
        what="report, budget and cost series in Prometheus",
    )
    # the error panels: one pod (scraped fine so far) answers 500, the watches restart once
    broken.set_fault("status", status=500)
    # (a watch the server simply ends is renewed, not restarted: expire the resourceVersions
    # first, so the renewed watches get 410 Gone and relist, which counts as a restart)
    for fault in ({"expireResourceVersions": True}, {"dropWatches": True}):
        request = urllib.request.Request(
            f"{cluster.url}/_kubesim/faults",
            data=json.dumps(fault).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).close()
    eventually(
        lambda: has("rate(infercost_scrape_errors_total[30s]) > 0"),
        timeout=60,
        interval=0.5,
        what="scrape errors in Prometheus",
    )
    eventually(
        lambda: has("infercost_watch_restarts_total"),
        timeout=60,
        interval=0.5,
        what="watch restarts in Prometheus",
    )

    variables: dict[str, str] = {}
    for var in dashboard["templating"]["list"]:
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        values = _label_values(base, query, variables)
        assert values, f"variable {var['name']} resolves to nothing"
        # Grafana's multi-value form: an alternation, regex specials escaped for PromQL
        variables[var["name"]] = "(" + "|".join(_regex_literal(v) for v in values) + ")"

    empty = []
    for panel in _panels(dashboard["panels"]):
        for target in panel["targets"]:
            expr = _substitute(target["expr"], variables)
            if not _query(base, expr):
                empty.append(f"{panel['title']}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)

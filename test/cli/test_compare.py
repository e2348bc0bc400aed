"""``infercost compare REPORT``: a report's cloud comparison as a table and in words, honest
when the cloud is cheaper, with each price's check date and source from the catalog in force,
and a warning for stale prices; one report produced by the real ledger and reconciler."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from typing import Any

import pytest
import yaml

from infercost.cli import compare
from infercost.cli.main import build_parser, main
from infercost.controllers.operator import CUSTOM_RESOURCES
from infercost.kube.clock import FakeClock
from infercost.kube.rest import CONFIGMAPS, NODES, PODS
from infercost.testing.kubefixtures import KubeEnv
from infercost.testing.ledgerrig import COSTPROFILES, USAGEREPORTS, LedgerRig
from infercost.testing.simservers.fixtures import SimServers
from infercost.testing.simservers.objects import make_dcgm_exporter_pod, make_node, make_pod


def create(kube: KubeEnv, kind: str, namespace: str, name: str, spec: dict, status=None) -> None:
    """Create a CR and, like the operator, write its status through the status subresource."""
    kube.sim.create_namespace(namespace)
    resource = CUSTOM_RESOURCES[kind]
    body = {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }
    kube.rest.create(resource, body, namespace)
    if status is not None:
        kube.rest.merge_patch(resource, name, {"status": status}, namespace, "status")


READY = [
    {
        "type": "Ready",
        "status": "True",
        "reason": "ReportComputed",
        "message": "figures are current",
        "lastTransitionTime": "2026-12-06T00:00:00Z",
        "observedGeneration": 1,
    }
]

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"
TODAY = dt.date(2026, 12, 6)

COMPARISON = [
    {  # an open-weight equivalent cheaper than on-prem
        "provider": "groq",
        "model": "llama-3.3-70b-versatile",
        "estimatedCloudCostUSD": 0.40,
        "savingsUSD": -0.35,
        "savingsPercent": -87.5,
        "equivalentTo": [LLAMA],
    },
    {  # an equivalent on-prem beats
        "provider": "bedrock",
        "model": "llama-3.3-70b-instruct",
        "estimatedCloudCostUSD": 1.20,
        "savingsUSD": 0.45,
        "savingsPercent": 37.5,
        "equivalentTo": [LLAMA],
        "breakEvenTokensPerDay": 12_300_000,
    },
    {  # a flagship, covering the whole report
        "provider": "openai",
        "model": "gpt-5.5",
        "estimatedCloudCostUSD": 30.0,
        "savingsUSD": 28.0,
        "savingsPercent": 93.33,
        "breakEvenTokensPerDay": 450_000,
    },
]


def make_report(kube: KubeEnv, comparison: list[dict[str, Any]] | None = None) -> None:
    create(
        kube,
        "UsageReport",
        "infra",
        "h100-daily",
        {"costProfileRef": "h100"},
        {
            "period": "2026-12-06",
            "estimatedCostUSD": 2.0,
            "costPerMillionTokens": 1.6,
            "inputTokens": 1_000_000,
            "outputTokens": 250_000,
            "cloudComparison": COMPARISON if comparison is None else comparison,
            "observedGeneration": 1,
            "lastUpdated": "2026-12-06T10:00:00Z",
            "conditions": READY,
        },
    )


def run_compare(capsys, *argv: str, today: dt.date = TODAY) -> tuple[int, str, str]:
    args: argparse.Namespace = build_parser().parse_args(["compare", *argv])
    code = compare.run(args, today=today)
    out = capsys.readouterr()
    return code, out.out, out.err


def cells(out: str, first: str) -> list[str]:
    for line in out.splitlines():
        if line.startswith(first + " "):
            return re.split(r"\s{2,}", line.strip())
    raise AssertionError(f"no row starting with {first!r} in:\n{out}")


def test_table_shows_signed_savings_on_prem_cost_and_says_when_cloud_is_cheaper(
    kube: KubeEnv, capsys
) -> None:
    make_report(kube)
    code, out, err = run_compare(
        capsys, "h100-daily", "-n", "infra", "--kubeconfig", kube.sim.kubeconfig
    )
    assert code == 0, err
    assert "UsageReport infra/h100-daily (CostProfile h100, daily, period 2026-12-06)" in out
    assert "On-prem: $2.00 for 1M input and 250k output tokens, $1.60 per 1M tokens" in out
    assert cells(out, "groq") == [
        "groq",
        "llama-3.3-70b-versatile",
        LLAMA,
        "$0.40",
        "$0.75",  # on-prem = cloud - savings = 0.40 + 0.35
        "-$0.35",
        "-87.5%",
        "never",
        "2025-08-12",
    ]
    assert cells(out, "bedrock")[3:] == [
        "$1.20",
        "$0.75",
        "+$0.45",
        "+37.5%",
        "12.3M/day",
        "2026-08-21",
    ]
    assert cells(out, "openai")[2:7] == ["whole report", "$30.00", "$2.00", "+$28.00", "+93.3%"]
    assert "On-prem cost less than 2 of the 3 cloud prices listed; 1 would have been cheaper" in out
    assert (
        "Cloud cheaper: groq/llama-3.3-70b-versatile would have cost $0.40; on-prem cost $0.75, "
        "which is $0.35 (87.5%) more." in out
    )
    # every price with its check date and source, from the bundled catalog
    assert "from the bundled catalog (no ConfigMap infercost-system/infercost-pricing)" in out
    assert (
        "groq/llama-3.3-70b-versatile: 0.59 / - / 0.79  checked 2025-08-12 (stale: older than "
        "180 days)  https://groq.com/pricing/" in out
    )
    assert "openai/gpt-5.5: 5 / 0.5 / 30  checked 2026-04-24 (stale" in out
    assert "bedrock/llama-3.3-70b-instruct: 0.72 / - / 0.72  checked 2026-08-21  https://aws" in out
    # stale prices: one warning line on stderr naming them (bedrock was checked 107 days ago)
    (warning,) = err.strip().splitlines()
    assert warning.startswith(
        "warning: 2 prices checked more than 180 days before today "
        "(2026-12-06): groq/llama-3.3-70b-versatile, openai/gpt-5.5;"
    )


def test_when_every_cloud_price_is_cheaper_it_says_so(kube: KubeEnv, capsys) -> None:
    make_report(
        kube,
        [
            {
                "provider": "openai",
                "model": "gpt-5.4",
                "estimatedCloudCostUSD": 1.5,
                "savingsUSD": -0.5,
                "savingsPercent": -33.33,
            }
        ],
    )
    code, out, _ = run_compare(
        capsys,
        "h100-daily",
        "-n",
        "infra",
        "--kubeconfig",
        kube.sim.kubeconfig,
        today=dt.date(2026, 4, 1),
    )
    assert code == 0
    assert "The cloud would have been cheaper: all 1 cloud prices listed cost less" in out
    assert cells(out, "openai")[3:7] == ["$1.50", "$2.00", "-$0.50", "-33.3%"]


def catalog_document(checked: dt.date) -> dict[str, Any]:
    flagships = [
        ("openai", "gpt-5.5"),
        ("openai", "gpt-5.4"),
        ("anthropic", "claude-opus-5"),
        ("anthropic", "claude-sonnet-4.6"),
        ("google", "gemini-3.1-pro-preview"),
    ]
    entries = [
        {
            "provider": provider,
            "model": model,
            "input": 1.0,
            "output": 2.0,
            "flagship": True,
            "source": f"https://example.com/{provider}",
            "checked": checked.isoformat(),
        }
        for provider, model in flagships
    ]
    entries.append(
        {
            "provider": "groq",
            "model": "llama-3.3-70b-versatile",
            "openWeight": "llama-3.3-70b",
            "input": 0.5,
            "cachedInput": 0.25,
            "output": 0.7,
            "source": "https://example.com/negotiated-groq",
            "checked": checked.isoformat(),
        }
    )
    return {"entries": entries}


def test_dates_and_sources_come_from_the_live_pricing_configmap(kube: KubeEnv, capsys) -> None:
    make_report(kube)
    fresh = TODAY - dt.timedelta(days=10)
    kube.rest.create(
        CONFIGMAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "infercost-pricing"},
            "data": {"pricing.yaml": yaml.safe_dump(catalog_document(fresh))},
        },
        "infercost-system",
    )
    code, out, err = run_compare(
        capsys, "h100-daily", "-n", "infra", "--kubeconfig", kube.sim.kubeconfig
    )
    assert code == 0
    assert "from ConfigMap infercost-system/infercost-pricing:" in out
    assert (
        f"groq/llama-3.3-70b-versatile: 0.5 / 0.25 / 0.7  checked {fresh.isoformat()}  "
        "https://example.com/negotiated-groq" in out
    )
    # bedrock is not in the ConfigMap's catalog: said so, not invented
    assert (
        "bedrock/llama-3.3-70b-instruct: not in ConfigMap infercost-system/infercost-pricing" in out
    )
    assert cells(out, "bedrock")[-1] == "?"
    assert err == ""  # nothing stale


def test_an_invalid_pricing_configmap_falls_back_to_the_bundled_dates(
    kube: KubeEnv, capsys
) -> None:
    make_report(kube)
    kube.rest.create(
        CONFIGMAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "infercost-pricing"},
            "data": {"prices.yaml": "entries: []"},
        },
        "infercost-system",
    )
    code, out, err = run_compare(
        capsys, "h100-daily", "-n", "infra", "--kubeconfig", kube.sim.kubeconfig, "-o", "json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["catalog"]["origin"] == "the bundled catalog"
    groq = next(e for e in data["entries"] if e["provider"] == "groq")
    assert (groq["checked"], groq["stale"], groq["onPremCostUSD"]) == ("2025-08-12", True, 0.75)
    assert (
        "note: ConfigMap infercost-system/infercost-pricing is invalid and the operator ignores "
        "it (ConfigMap infercost-pricing: missing key pricing.yaml (keys present: prices.yaml))"
        in err
    )


def test_unknown_report_names_the_reports_there(kube: KubeEnv, capsys) -> None:
    make_report(kube)
    code = main(["compare", "h100-weekly", "-n", "infra", "--kubeconfig", kube.sim.kubeconfig])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [
        "infercost compare: error: UsageReport 'h100-weekly' not found in namespace infra "
        "(UsageReports there: h100-daily; use -n for another namespace)"
    ]


def test_report_without_comparison_yet(kube: KubeEnv, capsys) -> None:
    create(kube, "UsageReport", "infra", "new", {"costProfileRef": "h100"})
    code, out, _ = run_compare(capsys, "new", "-n", "infra", "--kubeconfig", kube.sim.kubeconfig)
    assert code == 0
    assert "no cloud comparison yet: the operator writes it with the report's figures" in out


# -- against the real ledger and UsageReport reconciler ---------------------------------------


def _pod(kube: KubeEnv, pod: dict[str, Any]) -> None:
    ns = pod["metadata"]["namespace"]
    kube.sim.create_namespace(ns)
    kube.rest.create(PODS, pod, ns)
    kube.rest.merge_patch(PODS, pod["metadata"]["name"], {"status": pod["status"]}, ns, "status")


def test_compare_and_status_on_a_report_the_operator_computed(
    kube: KubeEnv, sim_servers: SimServers, capsys
) -> None:
    kube.sim.create_namespace("infra")
    kube.rest.create(NODES, make_node("gpu-1", gpus=2, labels={"pool": "a"}))
    exporter = sim_servers.dcgm(gpus=2, node="gpu-1")
    exporter.set_power(0, 400.0)
    exporter.set_power(1, 100.0)
    exporter.assign(0, "team-a", "vllm-0")
    exporter.assign(1, "team-b", "train-0")
    _pod(kube, make_pod("train-0", namespace="team-b", ip=None, node="gpu-1", gpus=1))
    _pod(kube, make_dcgm_exporter_pod("gpu-1", exporter.host))
    vllm = sim_servers.inference("vllm", models=[LLAMA])
    _pod(
        kube,
        make_pod(
            "vllm-0",
            namespace="team-a",
            ip=vllm.host,
            node="gpu-1",
            gpus=1,
            annotations={"infercost.ai/backend": "vllm"},
        ),
    )
    kube.rest.create(
        COSTPROFILES,
        {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "CostProfile",
            "metadata": {"name": "pool-a", "namespace": "infra"},
            "spec": {
                "hardware": {"gpuModel": "H100", "gpuCount": 2, "purchasePriceUSD": 52_560.0},
                "electricity": {"ratePerKWh": 0.12},
                "nodeSelector": {"pool": "a"},
            },
        },
        "infra",
    )
    kube.rest.create(
        USAGEREPORTS,
        {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "UsageReport",
            "metadata": {"name": "daily", "namespace": "infra"},
            "spec": {"costProfileRef": "pool-a"},
        },
        "infra",
    )
    clock = FakeClock(dt.datetime.fromtimestamp(sim_servers.clock(), dt.UTC))
    with LedgerRig(kube.rest, clock) as rig:
        rig.wait_cached(pods=3)
        rig.sampler.sample_once()
        for _ in range(6):
            vllm.serve(40_000, 9_000, cached_tokens=10_000, model=LLAMA)
            rig.sample(30.0, sim_servers.clock)
        status = rig.report("infra", "daily")
    capsys.readouterr()  # the rig's logs

    kubeconfig = kube.sim.kubeconfig
    code, out, err = run_compare(
        capsys,
        "daily",
        "-n",
        "infra",
        "--kubeconfig",
        kubeconfig,
        "-o",
        "json",
        today=clock.now().date(),
    )
    assert code == 0, err
    data = json.loads(out)
    entries = data["entries"]
    assert [(e["provider"], e["model"]) for e in entries] == [
        (c["provider"], c["model"]) for c in status["cloudComparison"]
    ]
    flagships = [e for e in entries if not e["equivalentTo"]]
    equivalents = [e for e in entries if e["equivalentTo"]]
    assert len(flagships) == 5 and equivalents
    for entry in flagships:  # a flagship covers the whole report
        assert entry["onPremCostUSD"] == pytest.approx(status["estimatedCostUSD"], rel=1e-9)
    for entry in equivalents:  # an equivalent covers the llama lines, not training
        assert entry["equivalentTo"] == [LLAMA]
        assert 0 < entry["onPremCostUSD"] < status["estimatedCostUSD"]
    assert all(e["checked"] and e["source"].startswith("https://") for e in entries)

    code, out, _ = run_compare(
        capsys, "daily", "-n", "infra", "--kubeconfig", kubeconfig, today=clock.now().date()
    )
    assert code == 0
    assert "UsageReport infra/daily (CostProfile pool-a, daily, period" in out
    assert "cloud prices listed" in out

    code = main(["status", "-n", "infra", "--kubeconfig", kubeconfig, "-o", "json"])
    (report,) = json.loads(capsys.readouterr().out)["usageReports"]
    assert report["inputTokens"] == status["inputTokens"] == 6 * 40_000
    assert report["outputTokens"] == 6 * 9_000
    assert report["estimatedCostUSD"] == status["estimatedCostUSD"] > 0
    assert report["ready"]["reason"] == "ReportComputed"

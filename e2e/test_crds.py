"""Install InferCost's CRDs and samples with kubectl and read them back the way users do."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
KINDS = ("costprofiles", "usagereports", "tokenbudgets")


def test_api_resources_list_the_three_kinds_with_short_names(cluster) -> None:  # type: ignore[no-untyped-def]
    out = cluster.kubectl(
        ["api-resources", "--api-group=finops.infercost.ai", "--no-headers"], as_dict=False
    )
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert set(rows) == set(KINDS)
    assert "cprof" in rows["costprofiles"]
    assert "ureport" in rows["usagereports"]
    assert "tbudget" in rows["tokenbudgets"]


def test_samples_apply_and_show_printer_columns(cluster, namespace) -> None:  # type: ignore[no-untyped-def]
    cluster.kubectl(
        ["apply", "-n", namespace, "-k", str(REPO / "manifests" / "samples")], as_dict=False
    )
    expected = {
        doc["metadata"]["name"]
        for path in (REPO / "manifests" / "samples").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "CostProfile"
    }
    listed = cluster.kubectl(["get", "cprof", "-n", namespace])
    assert {item["metadata"]["name"] for item in listed["items"]} == expected
    # Defaults come from the CRD schema: a profile without pueFactor gets 1.0.
    for item in listed["items"]:
        assert item["spec"]["electricity"]["pueFactor"] >= 1.0
        assert item["spec"]["hardware"]["amortizationYears"] > 0

    table = cluster.kubectl(["get", "costprofiles", "-n", namespace], as_dict=False)
    header = table.splitlines()[0].split()
    for column in ("NAME", "GPU", "MODEL", "GPUS", "$/HR", "POWER", "(W)", "SOURCE", "READY"):
        assert column in header
    wide = cluster.kubectl(["get", "usagereports", "-n", namespace, "-o", "wide"], as_dict=False)
    assert "MARGINAL" in wide.splitlines()[0]


def test_reapplying_samples_is_unchanged(cluster, namespace) -> None:  # type: ignore[no-untyped-def]
    samples = str(REPO / "manifests" / "samples")
    cluster.kubectl(["apply", "-n", namespace, "-k", samples], as_dict=False)
    again = cluster.kubectl(["apply", "-n", namespace, "-k", samples], as_dict=False)
    assert again.strip()
    assert all(line.endswith("unchanged") for line in again.strip().splitlines())


def test_invalid_costprofile_is_rejected_naming_the_field(cluster, namespace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": "CostProfile",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {
            "hardware": {"gpuModel": "L4", "gpuCount": 0, "purchasePriceUSD": 2500},
            "electricity": {"ratePerKWh": 0.1, "pueFactor": 5},
        },
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(RuntimeError) as err:
        cluster.kubectl(["apply", "-f", str(path)], as_dict=False)
    message = str(err.value)
    assert "spec.hardware.gpuCount" in message
    assert "spec.electricity.pueFactor" in message


def test_unknown_field_is_rejected_by_strict_validation(cluster, namespace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": "TokenBudget",
        "metadata": {"name": "typo", "namespace": namespace},
        "spec": {"scope": {"namespace": "team-a"}, "monthlyLimitUSD": 100, "monthlyLimit": 5},
    }
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(RuntimeError) as err:
        cluster.kubectl(["apply", "-f", str(path)], as_dict=False)
    assert 'unknown field "spec.monthlyLimit"' in str(err.value)


def test_explain_describes_spec_fields(cluster) -> None:  # type: ignore[no-untyped-def]
    out = cluster.kubectl(["explain", "costprofiles.spec.hardware"], as_dict=False)
    for field in ("gpuModel", "gpuCount", "purchasePriceUSD", "amortizationYears"):
        assert field in out

"""Parsing CR dicts into typed, defaulted models, and rejecting bad ones by field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import attrs
import pytest

from infercost.api import (
    AlertThreshold,
    BudgetState,
    Condition,
    ConditionStatus,
    CostProfile,
    FrozenMap,
    Hardware,
    PowerSource,
    Schedule,
    Severity,
    TokenBudget,
    TokenBudgetSpec,
    UsageReport,
    ValidationError,
    find_condition,
    parse_costprofile,
    parse_resource,
    parse_tokenbudget,
    parse_usagereport,
    resource_to_dict,
)
from infercost.cli.validate import load_documents

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "manifests" / "samples"
DATA = REPO / "test" / "data" / "crs"


def _ours(path: Path) -> list[dict[str, Any]]:
    docs = list(load_documents(path.read_text()))
    return [
        d
        for d in docs
        if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith("finops.infercost.ai/")
    ]


def load_one(path: Path) -> dict[str, Any]:
    (doc,) = _ours(path)
    return doc


def invalid_variants() -> list[Path]:
    return sorted((DATA / "invalid").glob("*.yaml"))


def expectations(path: Path) -> tuple[list[str], str]:
    errors, schema = [], ""
    for line in path.read_text().splitlines():
        if line.startswith("# error: "):
            errors.append(line.removeprefix("# error: "))
        elif line.startswith("# schema: "):
            schema = line.removeprefix("# schema: ")
    return errors, schema


SAMPLE_FILES = sorted(p for p in SAMPLES.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_every_sample_parses(path: Path) -> None:
    for doc in _ours(path):
        resource = parse_resource(doc)
        assert resource.metadata.name == doc["metadata"]["name"]


def test_samples_cover_the_three_kinds_and_eight_gpu_profiles() -> None:
    kinds: dict[str, int] = {}
    for path in SAMPLE_FILES:
        for doc in _ours(path):
            kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    assert kinds == {"CostProfile": 9, "UsageReport": 1, "TokenBudget": 1}


def test_every_sample_costprofile_has_a_node_selector_and_a_sourced_comment() -> None:
    for path in SAMPLE_FILES:
        for doc in _ours(path):
            if doc["kind"] != "CostProfile":
                continue
            profile = parse_costprofile(doc)
            assert profile.spec.node_selector, path.name
            assert profile.spec.hardware.tdp_watts is not None, path.name
            text = path.read_text()
            assert "PUE" in text and "TDP" in text, path.name


def test_sample_budget_has_the_spec_thresholds() -> None:
    budget = parse_tokenbudget(load_one(SAMPLES / "tokenbudget.yaml"))
    assert [(t.percent, t.severity) for t in budget.spec.alert_thresholds] == [
        (50, Severity.INFO),
        (80, Severity.WARNING),
        (100, Severity.CRITICAL),
    ]


def test_defaults_are_applied() -> None:
    docs = {d["kind"]: d for d in _ours(DATA / "valid" / "minimal.yaml")}
    profile = parse_costprofile(docs["CostProfile"])
    assert profile.spec.hardware.amortization_years == 3.0
    assert profile.spec.hardware.maintenance_percent_per_year == 0.0
    assert profile.spec.hardware.tdp_watts is None
    assert profile.spec.hardware.purchase_date is None
    assert profile.spec.electricity.pue_factor == 1.0
    assert profile.spec.node_selector == {}
    report = parse_usagereport(docs["UsageReport"])
    assert report.spec.schedule is Schedule.DAILY
    assert report.spec.history_limit == 12
    assert report.spec.namespaces == ()
    budget = parse_tokenbudget(docs["TokenBudget"])
    assert budget.spec.forecast_alert is True
    assert budget.spec.alert_thresholds == ()
    assert profile.status is None and report.status is None and budget.status is None


def test_status_is_parsed_into_typed_values() -> None:
    docs = {d["kind"]: d for d in _ours(DATA / "valid" / "with-status.yaml")}
    profile = parse_resource(docs["CostProfile"])
    assert isinstance(profile, CostProfile)
    assert profile.metadata.generation == 3
    assert profile.metadata.uid == "6f1c1b9e-51a6-4b7e-9a55-3c1f1f4f4a10"
    assert profile.metadata.creation_timestamp == dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)
    assert profile.metadata.labels == {"team": "platform"}
    assert profile.spec.hardware.purchase_date == dt.date(2025, 3, 1)
    status = profile.status
    assert status is not None
    assert status.power_source is PowerSource.PARTIAL
    assert status.matched_nodes == ("gpu-node-1",)
    dcgm = find_condition(status.conditions, "DCGMReachable")
    assert dcgm is not None and dcgm.status is ConditionStatus.UNKNOWN
    # +01:00 is normalised to UTC.
    assert dcgm.last_transition_time == dt.datetime(2026, 11, 27, 8, tzinfo=dt.UTC)
    report = parse_resource(docs["UsageReport"])
    assert isinstance(report, UsageReport) and report.status is not None
    assert report.spec.history_limit == 0
    assert report.status.last_updated == dt.datetime(2026, 11, 27, 10, 0, 30, 500000, dt.UTC)
    assert report.status.by_model[1].cost_per_million_tokens is None
    assert report.status.cloud_comparison[0].savings_usd == -394.4
    budget = parse_resource(docs["TokenBudget"])
    assert isinstance(budget, TokenBudget) and budget.status is not None
    assert budget.status.state is BudgetState.WARNING
    assert budget.status.prometheus_rule_ref is not None
    assert budget.status.prometheus_rule_ref.name == "infercost-budget-team-a"


def test_status_serialises_to_the_spec_json_names_and_omits_absent_fields() -> None:
    doc = load_one_kind(DATA / "valid" / "with-status.yaml", "TokenBudget")
    budget = parse_tokenbudget(doc)
    assert budget.status is not None
    out = budget.status.to_dict()
    assert out == doc["status"]
    assert "projectedExhaustion" not in out
    report = parse_usagereport(load_one_kind(DATA / "valid" / "with-status.yaml", "UsageReport"))
    assert report.status is not None
    out = report.status.to_dict()
    assert out["byModel"][1] == {
        "model": "(no-traffic)",
        "namespace": "team-b",
        "inputTokens": 0,
        "outputTokens": 0,
        "estimatedCostUSD": 12.5,
    }
    assert out["lastUpdated"] == "2026-11-27T10:00:30.5Z"
    assert out["periodEnd"] == "2026-11-30T00:00:00Z"


def load_one_kind(path: Path, kind: str) -> dict[str, Any]:
    (doc,) = [d for d in _ours(path) if d["kind"] == kind]
    return doc


@pytest.mark.parametrize(
    "path", [DATA / "valid" / "with-status.yaml", SAMPLES / "costprofile.yaml"]
)
def test_whole_object_round_trips(path: Path) -> None:
    for doc in _ours(path):
        resource = parse_resource(doc)
        assert parse_resource(resource_to_dict(resource)) == resource


def test_there_are_at_least_25_invalid_variants() -> None:
    assert len(invalid_variants()) >= 25


@pytest.mark.parametrize("path", invalid_variants(), ids=lambda p: p.stem)
def test_invalid_variant_is_rejected_naming_the_field(path: Path) -> None:
    expected, _ = expectations(path)
    assert expected, f"{path.name} declares no expected error"
    with pytest.raises(ValidationError) as caught:
        parse_resource(load_one(path))
    assert [str(e) for e in caught.value.errors] == expected
    for error in caught.value.errors:
        assert error.path.split(".")[0].split("[")[0] in {
            "spec",
            "status",
            "metadata",
            "apiVersion",
        }


def test_all_problems_are_reported_at_once() -> None:
    doc = load_one(SAMPLES / "costprofile.yaml")
    doc["spec"]["hardware"]["gpuCount"] = 0
    doc["spec"]["hardware"]["tdpWatts"] = -5
    doc["spec"]["electricity"]["pueFactor"] = "high"
    doc["spec"]["extra"] = 1
    with pytest.raises(ValidationError) as caught:
        parse_costprofile(doc)
    assert [e.path for e in caught.value.errors] == [
        "spec.hardware.gpuCount",
        "spec.hardware.tdpWatts",
        "spec.electricity.pueFactor",
        "spec.extra",
    ]
    assert str(caught.value).startswith("spec.hardware.gpuCount: must be an integer >= 1, got 0; ")


def test_wrong_kind_for_the_specific_parser() -> None:
    doc = load_one(SAMPLES / "tokenbudget.yaml")
    with pytest.raises(ValidationError, match=r"kind: must be 'CostProfile'"):
        parse_costprofile(doc)


def test_unknown_kind_in_our_group() -> None:
    with pytest.raises(ValidationError, match=r"kind: must be one of 'CostProfile'"):
        parse_resource({"apiVersion": "finops.infercost.ai/v1alpha1", "kind": "Budget"})


def test_null_counts_as_absent() -> None:
    doc = load_one(SAMPLES / "usagereport.yaml")
    doc["spec"]["schedule"] = None
    assert parse_usagereport(doc).spec.schedule is Schedule.DAILY
    doc["spec"]["costProfileRef"] = None
    with pytest.raises(ValidationError, match=r"spec\.costProfileRef: required field is missing"):
        parse_usagereport(doc)


def test_integral_float_is_an_integer_as_for_the_api_server() -> None:
    doc = load_one(SAMPLES / "costprofile-l4.yaml")
    doc["spec"]["hardware"]["gpuCount"] = 4.0
    count = parse_costprofile(doc).spec.hardware.gpu_count
    assert count == 4 and isinstance(count, int)


def test_include_status_false_ignores_a_bad_status() -> None:
    doc = load_one(DATA / "invalid" / "tb-status-bad-state.yaml")
    budget = parse_tokenbudget(doc, include_status=False)
    assert budget.status is None and budget.spec.monthly_limit_usd == 1000.0


def test_metadata_extra_fields_are_accepted() -> None:
    doc = load_one(SAMPLES / "tokenbudget.yaml")
    doc["metadata"]["annotations"] = {"a": "b"}
    doc["metadata"]["finalizers"] = ["x/y"]
    assert parse_tokenbudget(doc).metadata.name == "team-a-monthly"


def test_missing_metadata_name() -> None:
    doc = load_one(SAMPLES / "tokenbudget.yaml")
    del doc["metadata"]["name"]
    with pytest.raises(ValidationError, match=r"metadata\.name: required field is missing"):
        parse_tokenbudget(doc)


def test_models_built_in_python_are_validated_too() -> None:
    with pytest.raises(ValueError, match=r"gpuCount.*must be an integer >= 1, got 0"):
        Hardware(gpu_model="L4", gpu_count=0, purchase_price_usd=1.0)
    with pytest.raises(ValueError, match="boolean true"):
        Hardware(gpu_model="L4", gpu_count=True, purchase_price_usd=1.0)
    with pytest.raises(ValueError, match="duplicate entry percent=80"):
        TokenBudgetSpec(
            scope=parse_tokenbudget(load_one(SAMPLES / "tokenbudget.yaml")).spec.scope,
            monthly_limit_usd=10.0,
            alert_thresholds=(
                AlertThreshold(percent=80, severity=Severity.INFO),
                AlertThreshold(percent=80, severity=Severity.CRITICAL),
            ),
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        Condition(
            type="Ready",
            status=ConditionStatus.TRUE,
            reason="Ok",
            message="",
            last_transition_time=dt.datetime(2026, 1, 1),
        )


def test_models_are_frozen_and_hashable() -> None:
    profile = parse_costprofile(load_one(SAMPLES / "costprofile-h100-sxm5.yaml"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        profile.spec.hardware.gpu_count = 4  # type: ignore[misc]
    assert hash(profile) == hash(
        parse_costprofile(load_one(SAMPLES / "costprofile-h100-sxm5.yaml"))
    )
    assert isinstance(profile.spec.node_selector, FrozenMap)
    changed = attrs.evolve(profile.spec.hardware, gpu_count=16)
    assert changed.gpu_count == 16 and profile.spec.hardware.gpu_count == 8


# The JSON names SPEC §2 fixes; dashboards, Argo CD health checks and other teams read them.
SPEC_NAMES = {
    "CostProfile": {
        "spec": [
            "hardware.gpuModel",
            "hardware.gpuCount",
            "hardware.purchasePriceUSD",
            "hardware.amortizationYears",
            "hardware.maintenancePercentPerYear",
            "hardware.tdpWatts",
            "hardware.purchaseDate",
            "electricity.ratePerKWh",
            "electricity.pueFactor",
            "nodeSelector",
        ],
        "status": [
            "hourlyCostUSD",
            "amortizationRatePerHour",
            "electricityCostPerHour",
            "currentPowerDrawWatts",
            "powerSource",
            "matchedNodes",
            "matchedGPUs",
            "gpusReporting",
            "inferencePods",
            "observedGeneration",
            "lastUpdated",
            "conditions",
        ],
    },
    "UsageReport": {
        "spec": ["costProfileRef", "schedule", "namespaces", "historyLimit"],
        "status": [
            "period",
            "periodStart",
            "periodEnd",
            "lastUpdated",
            "inputTokens",
            "outputTokens",
            "cachedInputTokens",
            "estimatedCostUSD",
            "amortizationCostUSD",
            "electricityCostUSD",
            "energyKWh",
            "idleCostUSD",
            "costPerMillionTokens",
            "marginalCostPerMillionTokens",
            "gpuEfficiencyRatio",
            "byModel.model",
            "byModel.namespace",
            "byModel.inputTokens",
            "byModel.outputTokens",
            "byModel.estimatedCostUSD",
            "byModel.costPerMillionTokens",
            "byNamespace.namespace",
            "byNamespace.inputTokens",
            "byNamespace.outputTokens",
            "byNamespace.estimatedCostUSD",
            "byNamespace.costPerMillionTokens",
            "byNamespace.sharePercent",
            "cloudComparison.provider",
            "cloudComparison.model",
            "cloudComparison.estimatedCloudCostUSD",
            "cloudComparison.savingsUSD",
            "cloudComparison.savingsPercent",
            "cloudComparison.equivalentTo",
            "cloudComparison.breakEvenTokensPerDay",
            "history.period",
            "history.estimatedCostUSD",
            "history.inputTokens",
            "history.outputTokens",
            "history.costPerMillionTokens",
            "observedGeneration",
            "conditions",
        ],
    },
    "TokenBudget": {
        "spec": [
            "scope.namespace",
            "monthlyLimitUSD",
            "alertThresholds.percent",
            "alertThresholds.severity",
            "forecastAlert",
        ],
        "status": [
            "periodStart",
            "periodEnd",
            "currentSpendUSD",
            "utilizationPercent",
            "projectedSpendUSD",
            "projectedExhaustion",
            "state",
            # SPEC names the list only; its items say which threshold, how severe and since when.
            "thresholdsCrossed.percent",
            "thresholdsCrossed.severity",
            "thresholdsCrossed.crossedTime",
            "prometheusRuleRef.name",
            "prometheusRuleRef.namespace",
            "observedGeneration",
            "lastUpdated",
            "conditions",
        ],
    },
}


def _json_paths(cls: type[Any], prefix: str = "") -> set[str]:
    from infercost.api.schema import List, Object, field_specs

    paths = set()
    for _, spec in field_specs(cls):
        path = f"{prefix}{spec.json_name}"
        kind = spec.kind
        if isinstance(kind, List) and isinstance(kind.item, Object):
            kind = kind.item
        if isinstance(kind, Object) and kind.cls is not Condition:
            paths |= _json_paths(kind.cls, f"{path}.")
        else:
            paths.add(path)
    return paths


@pytest.mark.parametrize("kind", sorted(SPEC_NAMES))
def test_field_names_are_exactly_the_spec_names(kind: str) -> None:
    from infercost.api import KINDS

    rtype = KINDS[kind]
    assert _json_paths(rtype.spec_cls) == set(SPEC_NAMES[kind]["spec"])
    assert _json_paths(rtype.status_cls) == set(SPEC_NAMES[kind]["status"])


def test_status_from_dict_names_the_status_path() -> None:
    from infercost.api import UsageReportStatus

    with pytest.raises(ValidationError) as caught:
        UsageReportStatus.from_dict(
            {"byModel": [{"model": "m", "namespace": "a", "inputTokens": -1}]}, "status"
        )
    assert [str(e) for e in caught.value.errors] == [
        "status.byModel[0].inputTokens: must be an integer >= 0, got -1",
        "status.byModel[0].outputTokens: required field is missing",
        "status.byModel[0].estimatedCostUSD: required field is missing",
    ]


def test_frozen_map_behaves_like_an_immutable_dict() -> None:
    selector = FrozenMap({"a": "1", "b": "2"})
    assert selector == {"b": "2", "a": "1"}
    assert selector == FrozenMap([("b", "2"), ("a", "1")])
    assert hash(selector) == hash(FrozenMap({"b": "2", "a": "1"}))
    assert dict(selector) == {"a": "1", "b": "2"} and len(selector) == 2
    assert selector != {"a": "1"}
    with pytest.raises(TypeError):
        selector["c"] = "3"  # type: ignore[index]

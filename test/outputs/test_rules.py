"""A TokenBudget's PrometheusRule (SPEC §2.3) and the --rule-labels flag, without Prometheus.

What the rules do when Prometheus evaluates them is in test_budget_alerts.py (promtool).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client

from infercost.api import parse_tokenbudget
from infercost.controllers.config import ConfigError, build_config
from infercost.engine.budget import evaluate_budget
from infercost.outputs.rules import (
    parse_rule_labels,
    promql_string,
    ratio_literal,
    render_budget_rule,
)
from infercost.testing.kubesim import KubeSim


def budget(
    thresholds: list[dict[str, Any]] | None = None,
    *,
    forecast: bool | None = None,
    name: str = "team-a-monthly",
    namespace: str = "finance",
    scope: str = "team-a",
    limit: float = 5000,
    uid: str | None = "5d0c7a3e-0000-4000-8000-000000000001",
) -> Any:
    spec: dict[str, Any] = {"scope": {"namespace": scope}, "monthlyLimitUSD": limit}
    if thresholds is not None:
        spec["alertThresholds"] = thresholds
    if forecast is not None:
        spec["forecastAlert"] = forecast
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if uid is not None:
        metadata["uid"] = uid
    return parse_tokenbudget(
        {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "TokenBudget",
            "metadata": metadata,
            "spec": spec,
        }
    )


SAMPLE_THRESHOLDS = [
    {"percent": 100, "severity": "critical"},
    {"percent": 50, "severity": "info"},
    {"percent": 80, "severity": "warning"},
]


def test_rule_object_identity_labels_and_owner() -> None:
    rule = render_budget_rule(budget(SAMPLE_THRESHOLDS), {"release": "kube-prometheus-stack"})
    assert rule is not None
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["name"] == "infercost-budget-team-a-monthly"
    assert rule["metadata"]["namespace"] == "finance"  # the budget's, not the scope's
    assert rule["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "infercost",
        "infercost.ai/budget": "team-a-monthly",
        "release": "kube-prometheus-stack",
    }
    assert rule["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "TokenBudget",
            "name": "team-a-monthly",
            "uid": "5d0c7a3e-0000-4000-8000-000000000001",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert [g["name"] for g in rule["spec"]["groups"]] == ["infercost-budget-team-a-monthly"]


def test_one_alert_per_threshold_in_percent_order_then_the_forecast() -> None:
    rule = render_budget_rule(budget(SAMPLE_THRESHOLDS))
    assert rule is not None
    rules = rule["spec"]["groups"][0]["rules"]
    selector = '{budget="team-a-monthly",budget_namespace="finance"}'
    assert [(r["alert"], r["expr"], r["for"], r["labels"]) for r in rules] == [
        (
            "InferCostBudgetThresholdCrossed",
            f"infercost_budget_used_ratio{selector} >= 0.5",
            "10m",
            {"severity": "info", "threshold_percent": "50", "namespace": "team-a"},
        ),
        (
            "InferCostBudgetThresholdCrossed",
            f"infercost_budget_used_ratio{selector} >= 0.8",
            "10m",
            {"severity": "warning", "threshold_percent": "80", "namespace": "team-a"},
        ),
        (
            "InferCostBudgetThresholdCrossed",
            f"infercost_budget_used_ratio{selector} >= 1",
            "10m",
            {"severity": "critical", "threshold_percent": "100", "namespace": "team-a"},
        ),
        (
            "InferCostBudgetForecastExceeded",
            f"(infercost_budget_projected_spend_usd{selector} > "
            f"infercost_budget_limit_usd{selector}) and on() (day_of_month() > 3)",
            "1h",
            {"severity": "warning", "namespace": "team-a"},
        ),
    ]
    for r in rules:
        assert r["annotations"]["summary"].endswith(".")
        assert "{{ $labels.scope_namespace }}" in r["annotations"]["description"]


def test_no_thresholds_and_no_forecast_means_no_rule() -> None:
    assert render_budget_rule(budget(forecast=False)) is None
    assert render_budget_rule(budget([], forecast=False)) is None


def test_forecast_alert_is_on_by_default() -> None:
    rule = render_budget_rule(budget())
    assert rule is not None
    assert [r["alert"] for r in rule["spec"]["groups"][0]["rules"]] == [
        "InferCostBudgetForecastExceeded"
    ]


def test_thresholds_without_forecast() -> None:
    rule = render_budget_rule(budget([{"percent": 250, "severity": "critical"}], forecast=False))
    assert rule is not None
    [only] = rule["spec"]["groups"][0]["rules"]
    assert only["expr"].endswith(" >= 2.5")


def test_a_budget_without_uid_cannot_own_a_rule() -> None:
    with pytest.raises(ValueError, match=r"TokenBudget finance/team-a-monthly: metadata.uid"):
        render_budget_rule(budget(SAMPLE_THRESHOLDS, uid=None))


@pytest.mark.parametrize(
    ("percent", "literal"),
    [
        (1, "0.01"),
        (5, "0.05"),
        (10, "0.1"),
        (29, "0.29"),
        (80, "0.8"),
        (100, "1"),
        (105, "1.05"),
        (150, "1.5"),
        (999, "9.99"),
        (1000, "10"),
    ],
)
def test_ratio_literals(percent: int, literal: str) -> None:
    assert ratio_literal(percent) == literal


def test_every_valid_percent_gives_the_nearest_double_of_percent_over_100() -> None:
    # Prometheus parses the literal with Go's ParseFloat, which rounds like Python's float().
    for percent in range(1, 1001):
        assert float(ratio_literal(percent)) == percent / 100


@given(
    spend=st.floats(min_value=0, max_value=1e7, allow_nan=False),
    limit=st.floats(min_value=0.01, max_value=1e6, allow_nan=False),
    percent=st.integers(min_value=1, max_value=1000),
)
def test_a_threshold_in_the_status_always_has_its_alert_condition_true(
    spend: float, limit: float, percent: int
) -> None:
    b = budget([{"percent": percent, "severity": "warning"}], limit=limit)
    figures = evaluate_budget(
        b.spec,
        spend_usd=spend,
        window_spend_usd=0.0,
        window_hours=0.0,
        last_updated=dt.datetime(2026, 4, 11, tzinfo=dt.UTC),
    )
    if figures.thresholds_crossed:
        # The exported ratio compared with the rule's literal, as Prometheus compares them.
        assert figures.used_ratio >= float(ratio_literal(percent))


def test_promql_string_escapes() -> None:
    assert promql_string("team-a") == '"team-a"'
    assert promql_string('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


# --- --rule-labels ----------------------------------------------------------------------------


def test_rule_labels_parse() -> None:
    assert parse_rule_labels("release=kube-prometheus-stack, team=ml") == {
        "release": "kube-prometheus-stack",
        "team": "ml",
    }
    assert parse_rule_labels("prometheus.example.com/scrape=main,empty=") == {
        "prometheus.example.com/scrape": "main",
        "empty": "",
    }
    assert parse_rule_labels("") == {}
    assert parse_rule_labels(" , ") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("release", "'release' is not key=value"),
        ("=x", "'=x' is not key=value"),
        ("bad key=x", "'bad key' is not a valid label key"),
        ("Example.com/x=y", "the prefix 'Example.com' must be a DNS-1123 subdomain"),
        ("a=b c", "label a: 'b c' is not valid: expected a label value"),
        ("a=" + "x" * 64, "label a: 'x{64}' is not valid"),
        ("a=1,a=2", "label a is given twice"),
        ("app.kubernetes.io/managed-by=helm", "set by InferCost on every PrometheusRule"),
        ("infercost.ai/budget=x", "cannot be overridden"),
    ],
)
def test_bad_rule_labels_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rule_labels(text)


def test_rule_label_errors_name_the_flag_or_variable() -> None:
    with pytest.raises(ConfigError, match=r"^--rule-labels: 'bad key' is not a valid label key"):
        build_config({"rule_labels": "bad key=x"}, {})
    with pytest.raises(ConfigError, match=r"^INFERCOST_RULE_LABELS: 'release' is not key=value"):
        build_config({}, {"INFERCOST_RULE_LABELS": "release"})
    cfg = build_config({}, {"INFERCOST_RULE_LABELS": "release=kube-prometheus-stack"})
    assert dict(cfg.rule_labels) == {"release": "kube-prometheus-stack"}


# --- against the real CRD ---------------------------------------------------------------------


def test_the_prometheusrule_crd_accepts_the_rule_and_it_goes_with_its_budget(
    kubesim: KubeSim,
) -> None:
    kubesim.create_namespace("finance")
    with kubesim.api_client() as api:
        objects = client.CustomObjectsApi(api)
        created: Any = objects.create_namespaced_custom_object(
            "finops.infercost.ai",
            "v1alpha1",
            "finance",
            "tokenbudgets",
            {
                "apiVersion": "finops.infercost.ai/v1alpha1",
                "kind": "TokenBudget",
                "metadata": {"name": "team-a-monthly"},
                "spec": {
                    "scope": {"namespace": "team-a"},
                    "monthlyLimitUSD": 5000,
                    "alertThresholds": SAMPLE_THRESHOLDS,
                },
            },
        )
        rule = render_budget_rule(parse_tokenbudget(created), {"release": "kube-prometheus-stack"})
        assert rule is not None
        objects.create_namespaced_custom_object(
            "monitoring.coreos.com", "v1", "finance", "prometheusrules", rule
        )
        stored: Any = objects.get_namespaced_custom_object(
            "monitoring.coreos.com", "v1", "finance", "prometheusrules", rule["metadata"]["name"]
        )
        assert stored["spec"] == rule["spec"]  # nothing pruned by the CRD's schema
        objects.delete_namespaced_custom_object(
            "finops.infercost.ai", "v1alpha1", "finance", "tokenbudgets", "team-a-monthly"
        )
        remaining: Any = objects.list_namespaced_custom_object(
            "monitoring.coreos.com", "v1", "finance", "prometheusrules"
        )
        assert remaining["items"] == []

"""Budget alerts evaluated by the real Prometheus rule engine (``promtool test rules``).

The rules are rendered by :func:`infercost.outputs.rules.render_budget_rule` and checked with
``promtool check rules``; the input series are the operator's own exposition — the budget
figures from :func:`infercost.engine.budget.evaluate_budget`, rendered by
:class:`~infercost.outputs.budgetmetrics.BudgetCollector` and parsed back with
prometheus_client — plus the target labels a scrape of the operator adds. Each rendering is
held for a phase of one-minute samples.

promtool's clock starts at 1970-01-01T00:00:00Z, a January: days 1-3 of the month are the first
72 hours, when the forecast alert must stay silent.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from infercost.api import TokenBudget, parse_tokenbudget
from infercost.engine.budget import evaluate_budget, run_rate_window
from infercost.outputs.budgetmetrics import BudgetCollector, BudgetSeries
from infercost.outputs.rules import promql_string, render_budget_rule

pytestmark = pytest.mark.prometheus

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Labels Prometheus adds when it scrapes the operator through a ServiceMonitor; `namespace` is
# the operator's, which the alert rules must override with the scope namespace.
SCRAPE_TARGET = {
    "job": "infercost",
    "instance": "10.244.1.7:8080",
    "namespace": "infercost-system",
    "pod": "infercost-6c7f9d8b5-x2x9q",
}


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not found: install the Debian package prometheus (.ci/run does)")
    return path


def make_budget(
    name: str,
    namespace: str,
    scope: str,
    limit: float,
    thresholds: Sequence[tuple[int, str]] = (),
    *,
    forecast: bool,
) -> TokenBudget:
    return parse_tokenbudget(
        {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "TokenBudget",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
            "spec": {
                "scope": {"namespace": scope},
                "monthlyLimitUSD": limit,
                "alertThresholds": [{"percent": p, "severity": s} for p, s in thresholds],
                "forecastAlert": forecast,
            },
        }
    )


def record(
    budget: TokenBudget,
    hours: float,
    spend_usd: float,
    window_spend_usd: float = 0.0,
    window_hours: float = 0.0,
) -> BudgetSeries:
    """The collector record of ``budget`` as the operator would export it ``hours`` in."""
    figures = evaluate_budget(
        budget.spec,
        spend_usd=spend_usd,
        window_spend_usd=window_spend_usd,
        window_hours=window_hours,
        last_updated=EPOCH + dt.timedelta(hours=hours),
    )
    assert budget.metadata.namespace is not None
    return BudgetSeries.of(budget.metadata.namespace, budget.metadata.name, budget.spec, figures)


def scraped(records: Sequence[BudgetSeries]) -> dict[str, float]:
    """promtool series descriptor → value, from the collector's exposition text."""
    collector = BudgetCollector()
    for r in records:
        collector.update(r)
    registry = CollectorRegistry()
    registry.register(collector)
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            labels = {**SCRAPE_TARGET, **sample.labels}  # honorLabels: the series' labels win
            inner = ",".join(f"{k}={promql_string(v)}" for k, v in sorted(labels.items()))
            out[f"{sample.name}{{{inner}}}"] = sample.value
    return out


def input_series(phases: Sequence[tuple[int, Sequence[BudgetSeries]]]) -> list[dict[str, str]]:
    """promtool ``input_series``: each phase's rendering held for its number of minutes."""
    scrapes = [(minutes, scraped(records)) for minutes, records in phases]
    assert all(minutes >= 2 for minutes, _ in scrapes)
    names = sorted({name for _, values in scrapes for name in values})
    series = []
    for name in names:
        parts = []
        for minutes, values in scrapes:
            value = values.get(name)
            # `vxN` is N + 1 samples; `_` is a missing sample.
            parts.append(f"{'_' if value is None else repr(value)}x{minutes - 1}")
        series.append({"series": name, "values": " ".join(parts)})
    return series


def run_promtool(
    promtool: str,
    tmp_path: Path,
    groups: Sequence[Mapping[str, Any]],
    series: list[dict[str, str]],
    tests: list[dict[str, Any]],
) -> None:
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": list(groups)}, sort_keys=False))
    check = subprocess.run(
        [promtool, "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test_file = tmp_path / "test.yaml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [rule_file.name],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": tests}],
            },
            sort_keys=False,
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def groups_of(*budgets: TokenBudget) -> list[Mapping[str, Any]]:
    groups: list[Mapping[str, Any]] = []
    for b in budgets:
        rule = render_budget_rule(b)
        assert rule is not None
        groups.extend(rule["spec"]["groups"])
    return groups


def alert(
    budget: TokenBudget, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "exp_labels": {
            **SCRAPE_TARGET,
            "budget": budget.metadata.name,
            "budget_namespace": budget.metadata.namespace,
            "scope_namespace": budget.spec.scope.namespace,
            "namespace": budget.spec.scope.namespace,
            **labels,
        },
        "exp_annotations": dict(annotations),
    }


def at(minutes: int) -> str:
    return f"{minutes}m"


# --- thresholds -------------------------------------------------------------------------------

TEAM_A = make_budget(
    "team-a-monthly",
    "finance",
    "team-a",
    1000,
    [(50, "info"), (80, "warning"), (100, "critical")],
    forecast=False,
)
# A second budget that stays just below its only threshold the whole time.
UNDER = make_budget("under", "finance", "team-b", 1000, [(50, "critical")], forecast=False)


def threshold_alert(percent: int, severity: str, used: str) -> dict[str, Any]:
    return alert(
        TEAM_A,
        {"severity": severity, "threshold_percent": str(percent)},
        {
            "summary": f"TokenBudget finance/team-a-monthly crossed {percent}% of its monthly "
            "limit.",
            "description": f"Namespace team-a has spent {used} of the monthly limit of "
            f"TokenBudget finance/team-a-monthly this month (UTC); its {severity} threshold is "
            f"{percent}%.",
        },
    )


def test_each_threshold_alert_fires_after_ten_minutes_with_its_labels(
    promtool: str, tmp_path: Path
) -> None:
    # One hour at 400 USD (40 %), one at 850 (85 %), one at exactly the limit (100 %); the
    # other budget spends 499.90 of 1000 (49.99 %) throughout.
    phases = [
        (60, [record(TEAM_A, 0.5, 400.0), record(UNDER, 0.5, 499.9)]),
        (60, [record(TEAM_A, 1.5, 850.0), record(UNDER, 1.5, 499.9)]),
        (60, [record(TEAM_A, 2.5, 1000.0), record(UNDER, 2.5, 499.9)]),
    ]
    name = "InferCostBudgetThresholdCrossed"
    tests: list[dict[str, Any]] = [
        {"eval_time": at(59), "alertname": name, "exp_alerts": []},
        # 50 % and 80 % are crossed at minute 60 and pending for 10 minutes.
        {"eval_time": at(69), "alertname": name, "exp_alerts": []},
        {
            "eval_time": at(70),
            "alertname": name,
            "exp_alerts": [
                threshold_alert(50, "info", "85%"),
                threshold_alert(80, "warning", "85%"),
            ],
        },
        {
            "eval_time": at(129),
            "alertname": name,
            "exp_alerts": [
                threshold_alert(50, "info", "100%"),
                threshold_alert(80, "warning", "100%"),
            ],
        },
        {
            "eval_time": at(130),
            "alertname": name,
            "exp_alerts": [
                threshold_alert(50, "info", "100%"),
                threshold_alert(80, "warning", "100%"),
                threshold_alert(100, "critical", "100%"),
            ],
        },
    ]
    run_promtool(promtool, tmp_path, groups_of(TEAM_A, UNDER), input_series(phases), tests)


# --- forecast ---------------------------------------------------------------------------------

# Spend rates (USD/h) from promtool's epoch, which is also the ledger's first sample.
RISING = make_budget("forecast-rising", "ml", "research", 1000, forecast=True)
FLAT = make_budget("forecast-flat", "ml", "batch", 1000, forecast=True)
EARLY = make_budget("forecast-early", "ml", "chat", 1000, forecast=True)


def rising_spend(hours: float) -> float:
    """0.5 USD/h for three days, then 4 USD/h."""
    return 0.5 * min(hours, 72.0) + 4.0 * max(0.0, hours - 72.0)


def flat_spend(hours: float) -> float:
    """1 USD/h all month: 744 USD in January, below the 1000 USD limit."""
    return 1.0 * hours


def early_spend(hours: float) -> float:
    """3 USD/h from the first hour: 2232 USD projected for January."""
    return 3.0 * hours


def forecast_record(
    budget: TokenBudget, spend: Callable[[float], float], hours: int
) -> BudgetSeries:
    """The record after ``hours`` of ledger, as the controller would compute it."""
    last_updated = EPOCH + dt.timedelta(hours=hours)
    window = run_rate_window(last_updated, EPOCH)
    window_from_hours = max(0.0, (window.start - EPOCH).total_seconds() / 3600)
    return record(
        budget,
        hours,
        spend_usd=spend(hours),  # January began at the epoch
        window_spend_usd=spend(hours) - spend(window_from_hours),
        window_hours=window.hours,
    )


def forecast_alert(budget: TokenBudget, projected: str) -> dict:
    scope = budget.spec.scope.namespace
    return alert(
        budget,
        {"severity": "warning"},
        {
            "summary": f"Namespace {scope} is projected to exceed its monthly budget.",
            "description": "At the run rate of today and the previous 7 days, namespace "
            f"{scope} is projected to spend {projected} USD this month (UTC), above the monthly "
            f"limit of TokenBudget ml/{budget.metadata.name}.",
        },
    )


def test_forecast_alert_fires_on_a_rising_run_rate_only_after_the_third_day(
    promtool: str, tmp_path: Path
) -> None:
    phases = [
        (
            60,
            [
                forecast_record(RISING, rising_spend, h),
                forecast_record(FLAT, flat_spend, h),
                forecast_record(EARLY, early_spend, h),
            ],
        )
        for h in range(110)
    ]
    name = "InferCostBudgetForecastExceeded"
    tests: list[dict[str, Any]] = [
        # Days 1-3: EARLY is projected at 2232 USD from its first hour, yet nothing fires.
        {"eval_time": "2d", "alertname": name, "exp_alerts": []},
        {"eval_time": at(72 * 60 - 1), "alertname": name, "exp_alerts": []},
        # Day 4 begins at 72 h; the condition must then hold for an hour.
        {"eval_time": at(72 * 60 + 59), "alertname": name, "exp_alerts": []},
        # 73 h: 219 USD spent, r = 219/73 = 3 USD/h, 219 + 3 × 671 h left = 2232.
        {
            "eval_time": at(73 * 60),
            "alertname": name,
            "exp_alerts": [forecast_alert(EARLY, "2232.00")],
        },
        # 84 h: RISING spent 36 + 4 × 12 = 84 USD in 84 h (1 USD/h), projected 84 + 660 = 744.
        {
            "eval_time": at(84 * 60),
            "alertname": name,
            "exp_alerts": [forecast_alert(EARLY, "2232.00")],
        },
        # 108 h: RISING spent 36 + 4 × 36 = 180 USD in 108 h: 180 + 180/108 × 636 = 1240 USD
        # (above the limit since about 95 h). FLAT stays at 744 USD projected.
        {
            "eval_time": at(108 * 60),
            "alertname": name,
            "exp_alerts": [forecast_alert(EARLY, "2232.00"), forecast_alert(RISING, "1240.00")],
        },
    ]
    run_promtool(promtool, tmp_path, groups_of(RISING, FLAT, EARLY), input_series(phases), tests)


# --- label escaping ---------------------------------------------------------------------------


def test_escaped_label_values_match_the_raw_values(promtool: str, tmp_path: Path) -> None:
    raw = 'quote " backslash \\ newline \n end'
    group = {
        "name": "escaping",
        "rules": [{"alert": "Escaped", "expr": f"m{{v={promql_string(raw)}}} > 0"}],
    }
    series = [{"series": f"m{{v={promql_string(raw)}}}", "values": "1x5"}]
    tests: list[dict[str, Any]] = [
        {"eval_time": "1m", "alertname": "Escaped", "exp_alerts": [{"exp_labels": {"v": raw}}]}
    ]
    run_promtool(promtool, tmp_path, [group], series, tests)

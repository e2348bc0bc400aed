"""The TokenBudget collector renders current records at scrape time (SPEC §6.1)."""

from __future__ import annotations

import datetime as dt

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from infercost.api import AlertThreshold, BudgetScope, Severity, TokenBudgetSpec
from infercost.engine.budget import evaluate_budget
from infercost.outputs.budgetmetrics import BudgetCollector, BudgetSeries

SPEC = TokenBudgetSpec(
    scope=BudgetScope("team-a"),
    monthly_limit_usd=2000.0,
    alert_thresholds=(AlertThreshold(80, Severity.WARNING),),
)


def scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series_of(spend: float, name: str = "team-a-monthly") -> BudgetSeries:
    # April 11th 00:00: 480 h left in the month; 1.5 USD/h over the 192 h window.
    figures = evaluate_budget(
        SPEC,
        spend_usd=spend,
        window_spend_usd=288.0,
        window_hours=192.0,
        last_updated=dt.datetime(2026, 4, 11, tzinfo=dt.UTC),
    )
    return BudgetSeries.of("finance", name, SPEC, figures)


def test_series_names_labels_and_values() -> None:
    registry = CollectorRegistry()
    collector = BudgetCollector()
    registry.register(collector)
    collector.update(series_of(500.0))
    labels = frozenset(
        {
            ("budget", "team-a-monthly"),
            ("budget_namespace", "finance"),
            ("scope_namespace", "team-a"),
        }
    )
    assert scrape(registry) == {
        ("infercost_budget_limit_usd", labels): 2000.0,
        ("infercost_budget_spend_usd", labels): 500.0,
        ("infercost_budget_used_ratio", labels): 0.25,
        ("infercost_budget_projected_spend_usd", labels): 500.0 + 1.5 * 480,  # 1220
    }


def test_deleted_budgets_vanish_and_updates_replace() -> None:
    registry = CollectorRegistry()
    collector = BudgetCollector()
    registry.register(collector)
    collector.update(series_of(500.0, "a"))
    collector.update(series_of(100.0, "b"))
    collector.update(series_of(1000.0, "a"))
    spend = {
        dict(labels)["budget"]: value
        for (name, labels), value in scrape(registry).items()
        if name == "infercost_budget_spend_usd"
    }
    assert spend == {"a": 1000.0, "b": 100.0}
    collector.remove("finance", "a")
    collector.remove("finance", "never-existed")
    budgets = {dict(labels)["budget"] for (_, labels) in scrape(registry)}
    assert budgets == {"b"}
    collector.remove("finance", "b")
    assert scrape(registry) == {}

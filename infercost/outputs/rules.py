"""The PrometheusRule of a TokenBudget (SPEC §2.3), and the ``--rule-labels`` flag's parser.

Budgets alert through the cluster's own Prometheus and Alertmanager: each budget with alert
thresholds or a forecast alert gets a ``monitoring.coreos.com/v1`` PrometheusRule
``infercost-budget-<name>`` in its namespace, owned by the budget (so the garbage collector
removes it with the budget), over the series of :mod:`infercost.outputs.budgetmetrics`.

- ``InferCostBudgetThresholdCrossed``, one per threshold:
  ``infercost_budget_used_ratio{…} >= percent/100`` held for 10 minutes;
- ``InferCostBudgetForecastExceeded`` (``forecastAlert``): projected month-end spend above the
  limit for an hour, except in the first three days of the month, when a few days of spend
  say little about the rest of it.

Every alert carries ``namespace: <scope namespace>`` so that Alertmanager routes it to the team
whose pods spend (the label overrides the ``namespace`` target label of the operator's own
scrape). Annotation templates read the budget's names from the series' labels and
``$value``; nothing taken from a CR is pasted into a template. This module renders a plain
dict and performs no I/O; the TokenBudget controller writes it when its content changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from infercost.api import API_VERSION as INFERCOST_API_VERSION
from infercost.api import TOKENBUDGET, TokenBudget
from infercost.api.schema import LABEL_VALUE, LABEL_VALUE_HELP, label_key_problem
from infercost.outputs.budgetmetrics import LIMIT_USD, PROJECTED_SPEND_USD, USED_RATIO

__all__ = [
    "API_VERSION",
    "BUDGET_LABEL",
    "FORECAST_ALERT",
    "FORECAST_FOR",
    "FORECAST_QUIET_DAYS",
    "GROUP",
    "KIND",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "PLURAL",
    "THRESHOLD_ALERT",
    "THRESHOLD_FOR",
    "VERSION",
    "parse_rule_labels",
    "promql_string",
    "ratio_literal",
    "render_budget_rule",
    "rule_name",
]

GROUP = "monitoring.coreos.com"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "PrometheusRule"
PLURAL = "prometheusrules"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "infercost"
BUDGET_LABEL = "infercost.ai/budget"
_OWN_LABELS = (MANAGED_BY_LABEL, BUDGET_LABEL)

THRESHOLD_ALERT = "InferCostBudgetThresholdCrossed"
FORECAST_ALERT = "InferCostBudgetForecastExceeded"
THRESHOLD_FOR = "10m"
FORECAST_FOR = "1h"
FORECAST_QUIET_DAYS = 3
"""The forecast alert is silent on days 1 to this of a month."""

_RULE_PREFIX = "infercost-budget-"
_LABEL_VALUE_RE = re.compile(LABEL_VALUE)


def rule_name(budget_name: str) -> str:
    """Name of the PrometheusRule of budget ``budget_name``."""
    return _RULE_PREFIX + budget_name


def promql_string(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal (also valid in promtool series)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def ratio_literal(percent: int) -> str:
    """``percent / 100`` as an exact decimal literal: 80 → ``0.8``, 100 → ``1``, 105 → ``1.05``."""
    if isinstance(percent, bool) or not isinstance(percent, int) or percent < 0:
        raise ValueError(f"a threshold percent must be a non-negative integer, got {percent!r}")
    whole, cents = divmod(percent, 100)
    if cents == 0:
        return str(whole)
    return f"{whole}.{cents:02d}".rstrip("0")


def _selector(metric: str, budget: str, namespace: str) -> str:
    return f"{metric}{{budget={promql_string(budget)},budget_namespace={promql_string(namespace)}}}"


_BUDGET_REF = "TokenBudget {{ $labels.budget_namespace }}/{{ $labels.budget }}"


def _threshold_rule(
    name: str, namespace: str, scope: str, percent: int, severity: str
) -> dict[str, Any]:
    return {
        "alert": THRESHOLD_ALERT,
        "expr": f"{_selector(USED_RATIO, name, namespace)} >= {ratio_literal(percent)}",
        "for": THRESHOLD_FOR,
        "labels": {
            "severity": severity,
            "threshold_percent": str(percent),
            "namespace": scope,
        },
        "annotations": {
            "summary": f"{_BUDGET_REF} crossed {percent}% of its monthly limit.",
            "description": (
                "Namespace {{ $labels.scope_namespace }} has spent "
                "{{ $value | humanizePercentage }} of the monthly limit of "
                f"{_BUDGET_REF} this month (UTC); its {severity} threshold is {percent}%."
            ),
        },
    }


def _forecast_rule(name: str, namespace: str, scope: str) -> dict[str, Any]:
    projected = _selector(PROJECTED_SPEND_USD, name, namespace)
    limit = _selector(LIMIT_USD, name, namespace)
    # day_of_month() has no labels: `and on()` lets it gate every series of the comparison.
    expr = f"({projected} > {limit}) and on() (day_of_month() > {FORECAST_QUIET_DAYS})"
    return {
        "alert": FORECAST_ALERT,
        "expr": expr,
        "for": FORECAST_FOR,
        "labels": {"severity": "warning", "namespace": scope},
        "annotations": {
            "summary": (
                "Namespace {{ $labels.scope_namespace }} is projected to exceed its monthly budget."
            ),
            "description": (
                "At the run rate of today and the previous 7 days, namespace "
                "{{ $labels.scope_namespace }} is projected to spend "
                '{{ printf "%.2f" $value }} USD this month (UTC), above the monthly limit of '
                f"{_BUDGET_REF}."
            ),
        },
    }


def render_budget_rule(
    budget: TokenBudget, rule_labels: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """The PrometheusRule of ``budget``, or ``None`` when it has nothing to alert on.

    ``rule_labels`` (from ``--rule-labels``) are added to the rule's metadata labels, e.g.
    ``release: kube-prometheus-stack`` for that chart's ``ruleSelector``.
    """
    meta = budget.metadata
    spec = budget.spec
    if not meta.namespace or not meta.uid:
        missing = "metadata.namespace" if not meta.namespace else "metadata.uid"
        raise ValueError(
            f"TokenBudget {meta.namespace or ''}/{meta.name}: {missing} is required to own a "
            "PrometheusRule"
        )
    if not spec.alert_thresholds and not spec.forecast_alert:
        return None
    scope = spec.scope.namespace
    rules = [
        _threshold_rule(meta.name, meta.namespace, scope, t.percent, str(t.severity))
        for t in sorted(spec.alert_thresholds, key=lambda t: t.percent)
    ]
    if spec.forecast_alert:
        rules.append(_forecast_rule(meta.name, meta.namespace, scope))
    name = rule_name(meta.name)
    labels = {**(rule_labels or {}), MANAGED_BY_LABEL: MANAGED_BY, BUDGET_LABEL: meta.name}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": meta.namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": INFERCOST_API_VERSION,
                    "kind": TOKENBUDGET.kind,
                    "name": meta.name,
                    "uid": meta.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"groups": [{"name": name, "rules": rules}]},
    }


def parse_rule_labels(text: str) -> dict[str, str]:
    """``--rule-labels``: ``key=value,key=value`` with Kubernetes label keys and values.

    Errors say what is wrong and what was expected; the configuration prefixes them with the
    flag (or environment variable) they came from.
    """
    labels: dict[str, str] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"{item!r} is not key=value (expected key=value,key=value)")
        problem = label_key_problem(key)
        if problem is not None:
            raise ValueError(f"{key!r} is not a valid label key: {problem}")
        if len(value) > 63 or not _LABEL_VALUE_RE.match(value):
            raise ValueError(f"label {key}: {value!r} is not valid: expected {LABEL_VALUE_HELP}")
        if key in _OWN_LABELS:
            raise ValueError(
                f"label {key} is set by InferCost on every PrometheusRule it owns and cannot be "
                "overridden"
            )
        if key in labels:
            raise ValueError(f"label {key} is given twice")
        labels[key] = value
    return labels

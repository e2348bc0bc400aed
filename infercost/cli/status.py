"""``infercost status``: CostProfiles, UsageReports and TokenBudgets at a glance.

Reads the three kinds (nothing else) and shows what their status says, as ``kubectl get`` would
but with the figures people ask for next: a profile's monthly and yearly cost at its current
rate (``hourlyCostUSD`` × 730 and × 8,760 hours), a report's tokens and cost per million, a
budget's spend against its limit and month-end projection. Objects the operator has not
written yet show ``-``; objects whose ``Ready`` condition is not True are listed under their
table with the condition's message.

``-o json`` / ``-o yaml`` print the same rows as numbers (USD unrounded) for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from infercost.cli.cluster import CommandError, Connection, add_connection_arguments, connect
from infercost.cli.tables import (
    MISSING,
    Table,
    format_count,
    format_percent,
    format_ratio,
    format_tokens,
    format_usd,
    format_watts,
    render_plain,
)

__all__ = [
    "HOURS_PER_MONTH",
    "HOURS_PER_YEAR",
    "Snapshot",
    "add_arguments",
    "gather",
    "run",
    "snapshot_summary",
    "snapshot_tables",
]

HOURS_PER_MONTH = 730
"""Hours in an average month (8,760 / 12), for the monthly projection of a profile's $/hr."""
HOURS_PER_YEAR = 8760


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_arguments(parser, all_namespaces=True)
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "json", "yaml"),
        default="table",
        help="output format (default: table)",
    )


@attrs.frozen
class Snapshot:
    """The three kinds as read from the cluster (raw objects, name order)."""

    profiles: tuple[dict[str, Any], ...]
    reports: tuple[dict[str, Any], ...]
    budgets: tuple[dict[str, Any], ...]
    namespace: str | None  # None: all namespaces


def gather(conn: Connection) -> Snapshot:
    return Snapshot(
        profiles=tuple(conn.objects("CostProfile")),
        reports=tuple(conn.objects("UsageReport")),
        budgets=tuple(conn.objects("TokenBudget")),
        namespace=conn.namespace,
    )


# -- reading objects ------------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def ready_condition(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in _status(obj).get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition
    return None


def ready_cell(obj: Mapping[str, Any]) -> str:
    """``True``, ``False/Stale``, or ``-`` before the operator wrote a condition."""
    condition = ready_condition(obj)
    if condition is None:
        return MISSING
    status = str(condition.get("status") or "Unknown")
    reason = condition.get("reason")
    return status if status == "True" or not reason else f"{status}/{reason}"


def _ready_json(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    condition = ready_condition(obj)
    if condition is None:
        return None
    return {k: condition.get(k) for k in ("status", "reason", "message") if k in condition}


def _not_ready_notes(kind: str, objects: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    notes = []
    for obj in objects:
        namespace, name = _meta(obj)
        condition = ready_condition(obj)
        if condition is None:
            if not _status(obj):
                notes.append(
                    f"  {kind} {namespace}/{name}: no status yet (is the operator running?)"
                )
            continue
        if condition.get("status") != "True":
            message = " ".join(str(condition.get("message") or "").split())
            reason = condition.get("reason") or "NotReady"
            detail = f"{reason}: {message}" if message else str(reason)
            notes.append(f"  {kind} {namespace}/{name}: {detail}")
    return tuple(notes)


# -- rows -----------------------------------------------------------------------------------


def profile_row(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A CostProfile as numbers: rates, power and the month/year projection of $/hr."""
    namespace, name = _meta(obj)
    hardware = _spec(obj).get("hardware") or {}
    status = _status(obj)
    hourly = _number(status.get("hourlyCostUSD"))
    return {
        "namespace": namespace,
        "name": name,
        "gpuModel": hardware.get("gpuModel"),
        "gpuCount": hardware.get("gpuCount"),
        "matchedGPUs": status.get("matchedGPUs"),
        "gpusReporting": status.get("gpusReporting"),
        "hourlyCostUSD": hourly,
        "amortizationRatePerHour": _number(status.get("amortizationRatePerHour")),
        "electricityCostPerHour": _number(status.get("electricityCostPerHour")),
        "currentPowerDrawWatts": _number(status.get("currentPowerDrawWatts")),
        "powerSource": status.get("powerSource"),
        "monthlyCostUSD": None if hourly is None else hourly * HOURS_PER_MONTH,
        "yearlyCostUSD": None if hourly is None else hourly * HOURS_PER_YEAR,
        "ready": _ready_json(obj),
        "lastUpdated": status.get("lastUpdated"),
    }


def report_row(obj: Mapping[str, Any]) -> dict[str, Any]:
    namespace, name = _meta(obj)
    spec, status = _spec(obj), _status(obj)
    return {
        "namespace": namespace,
        "name": name,
        "costProfileRef": spec.get("costProfileRef"),
        "schedule": spec.get("schedule") or "daily",
        "period": status.get("period"),
        "estimatedCostUSD": _number(status.get("estimatedCostUSD")),
        "costPerMillionTokens": _number(status.get("costPerMillionTokens")),
        "inputTokens": status.get("inputTokens"),
        "outputTokens": status.get("outputTokens"),
        "cachedInputTokens": status.get("cachedInputTokens"),
        "idleCostUSD": _number(status.get("idleCostUSD")),
        "gpuEfficiencyRatio": _number(status.get("gpuEfficiencyRatio")),
        "ready": _ready_json(obj),
        "lastUpdated": status.get("lastUpdated"),
    }


def budget_row(obj: Mapping[str, Any]) -> dict[str, Any]:
    namespace, name = _meta(obj)
    spec, status = _spec(obj), _status(obj)
    return {
        "namespace": namespace,
        "name": name,
        "scope": (spec.get("scope") or {}).get("namespace"),
        "monthlyLimitUSD": _number(spec.get("monthlyLimitUSD")),
        "currentSpendUSD": _number(status.get("currentSpendUSD")),
        "utilizationPercent": _number(status.get("utilizationPercent")),
        "projectedSpendUSD": _number(status.get("projectedSpendUSD")),
        "projectedExhaustion": status.get("projectedExhaustion"),
        "state": status.get("state"),
        "ready": _ready_json(obj),
        "lastUpdated": status.get("lastUpdated"),
    }


def _power_source(row: Mapping[str, Any]) -> str:
    source = row.get("powerSource")
    if not source:
        return MISSING
    reporting, matched = row.get("gpusReporting"), row.get("matchedGPUs")
    if isinstance(reporting, int) and isinstance(matched, int) and matched:
        return f"{source} ({reporting}/{matched} GPUs)"
    return str(source)


def _gpus(row: Mapping[str, Any]) -> str:
    count, matched = row.get("gpuCount"), row.get("matchedGPUs")
    text = format_count(count)
    if isinstance(matched, int) and isinstance(count, int) and matched != count:
        text += f" ({matched} matched)"
    return text


def _tokens(row: Mapping[str, Any]) -> str:
    inputs, outputs = row.get("inputTokens"), row.get("outputTokens")
    if inputs is None and outputs is None:
        return MISSING
    return f"{format_tokens(inputs)} / {format_tokens(outputs)}"


def _exhaustion(value: Any) -> str:
    """``projectedExhaustion`` to the minute (``2026-12-19 04:00``)."""
    if not isinstance(value, str) or len(value) < 16:
        return MISSING
    return f"{value[:10]} {value[11:16]}"


def snapshot_tables(snapshot: Snapshot) -> list[Table]:
    """The three tables (with a NAMESPACE column when reading all namespaces)."""
    lead = ("NAMESPACE", "NAME") if snapshot.namespace is None else ("NAME",)

    def key(row: Mapping[str, Any]) -> tuple[str, ...]:
        if snapshot.namespace is None:
            return (row["namespace"], row["name"])
        return (row["name"],)

    where = "all namespaces" if snapshot.namespace is None else f"namespace {snapshot.namespace}"
    profiles = [profile_row(o) for o in snapshot.profiles]
    reports = [report_row(o) for o in snapshot.reports]
    budgets = [budget_row(o) for o in snapshot.budgets]
    tables = [
        Table(
            title="CostProfiles",
            columns=(
                *lead,
                "GPU MODEL",
                "GPUS",
                "$/HR",
                "POWER",
                "SOURCE",
                "MONTHLY",
                "YEARLY",
                "READY",
            ),
            rows=tuple(
                (
                    *key(r),
                    str(r["gpuModel"] or MISSING),
                    _gpus(r),
                    format_usd(r["hourlyCostUSD"]),
                    format_watts(r["currentPowerDrawWatts"]),
                    _power_source(r),
                    format_usd(r["monthlyCostUSD"]),
                    format_usd(r["yearlyCostUSD"]),
                    ready_cell(o),
                )
                for r, o in zip(profiles, snapshot.profiles, strict=True)
            ),
            right=frozenset({"GPUS", "$/HR", "POWER", "MONTHLY", "YEARLY"}),
            empty=f"no CostProfiles in {where}",
            notes=(
                (
                    f"  MONTHLY / YEARLY: the current $/hr × {HOURS_PER_MONTH} h / × "
                    f"{HOURS_PER_YEAR:,} h",
                )
                if profiles
                else ()
            )
            + _not_ready_notes("CostProfile", snapshot.profiles),
        ),
        Table(
            title="UsageReports",
            columns=(
                *lead,
                "PROFILE",
                "PERIOD",
                "COST",
                "$/MTOK",
                "TOKENS IN / OUT",
                "EFFICIENCY",
                "READY",
            ),
            rows=tuple(
                (
                    *key(r),
                    str(r["costProfileRef"] or MISSING),
                    str(r["period"] or MISSING),
                    format_usd(r["estimatedCostUSD"]),
                    format_usd(r["costPerMillionTokens"]),
                    _tokens(r),
                    format_ratio(r["gpuEfficiencyRatio"]),
                    ready_cell(o),
                )
                for r, o in zip(reports, snapshot.reports, strict=True)
            ),
            right=frozenset({"COST", "$/MTOK", "TOKENS IN / OUT", "EFFICIENCY"}),
            empty=f"no UsageReports in {where}",
            notes=_not_ready_notes("UsageReport", snapshot.reports),
        ),
        Table(
            title="TokenBudgets",
            columns=(*lead, "SCOPE", "LIMIT", "SPEND", "USED", "PROJECTED", "RUNS OUT", "STATE"),
            rows=tuple(
                (
                    *key(r),
                    str(r["scope"] or MISSING),
                    format_usd(r["monthlyLimitUSD"]),
                    format_usd(r["currentSpendUSD"]),
                    format_percent(r["utilizationPercent"]),
                    format_usd(r["projectedSpendUSD"]),
                    _exhaustion(r["projectedExhaustion"]),
                    str(r["state"] or MISSING),
                )
                for r in budgets
            ),
            right=frozenset({"LIMIT", "SPEND", "USED", "PROJECTED"}),
            empty=f"no TokenBudgets in {where}",
            notes=_not_ready_notes("TokenBudget", snapshot.budgets),
        ),
    ]
    return tables


def snapshot_summary(snapshot: Snapshot) -> dict[str, Any]:
    """The rows as plain data (``-o json|yaml``)."""
    return {
        "costProfiles": [profile_row(o) for o in snapshot.profiles],
        "usageReports": [report_row(o) for o in snapshot.reports],
        "tokenBudgets": [budget_row(o) for o in snapshot.budgets],
    }


def dump(data: Any, output: str) -> str:
    """``data`` as JSON (indented) or YAML, ending in a newline."""
    if output == "yaml":
        import yaml

        return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    return json.dumps(data, indent=2) + "\n"


def run(args: argparse.Namespace) -> int:
    try:
        snapshot = gather(connect(args))
    except CommandError as exc:
        print(f"infercost status: error: {exc}", file=sys.stderr)
        return 1
    if args.output in ("json", "yaml"):
        sys.stdout.write(dump(snapshot_summary(snapshot), args.output))
    else:
        sys.stdout.write(render_plain(snapshot_tables(snapshot)))
    return 0

"""``infercost compare REPORT``: a UsageReport's cloud comparison, in a table and in words.

The figures are the report's ``status.cloudComparison[]`` as the operator wrote them (nothing
is recomputed here). On-prem cost is ``cloud − savings``: for an open-weight equivalent it
covers only the models of that family (``equivalentTo``), for a flagship the whole report.
Savings are shown with their sign; when the cloud is cheaper the summary says so in words.

Each entry's list prices, check date and source come from the catalog the operator uses: the
``infercost-pricing`` ConfigMap in the operator namespace when it exists and is valid, else
the bundled catalog. Entries checked more than 180 days before today are named in a warning on
standard error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from infercost.cli.cluster import CommandError, Connection, add_connection_arguments, connect
from infercost.cli.status import dump
from infercost.cli.tables import (
    MISSING,
    Table,
    format_percent,
    format_tokens,
    format_usd,
    render_plain,
)
from infercost.engine.catalog import STALE_AFTER_DAYS, Catalog, PriceEntry, is_stale

__all__ = [
    "CatalogSource",
    "ComparisonView",
    "add_arguments",
    "comparison_view",
    "load_catalog",
    "run",
]

DEFAULT_OPERATOR_NAMESPACE = "infercost-system"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", metavar="REPORT", help="name of the UsageReport")
    add_connection_arguments(parser, all_namespaces=False)
    parser.add_argument(
        "--operator-namespace",
        metavar="NS",
        help="the operator's namespace, where the infercost-pricing ConfigMap lives "
        f"[INFERCOST_NAMESPACE; default {DEFAULT_OPERATOR_NAMESPACE}]",
    )
    parser.add_argument(
        "--pricing-configmap",
        metavar="NAME",
        help="name of the price catalog ConfigMap [INFERCOST_PRICING_CONFIGMAP; "
        "default infercost-pricing]",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "json", "yaml"),
        default="table",
        help="output format (default: table)",
    )


@attrs.frozen
class CatalogSource:
    """The catalog the dates and sources come from, how it was found, and any caveat."""

    catalog: Catalog
    origin: str
    note: str | None = None


def load_catalog(conn: Connection, operator_namespace: str, name: str) -> CatalogSource:
    """The live pricing ConfigMap's catalog, else the bundled one (with the reason)."""
    from infercost.collect.pricing import bundled_catalog, parse_pricing_configmap
    from infercost.engine.catalog import CatalogError
    from infercost.kube.rest import CONFIGMAPS, ForbiddenError, NotFoundError

    bundled = bundled_catalog()
    where = f"ConfigMap {operator_namespace}/{name}"
    with conn.translated("get", CONFIGMAPS, operator_namespace):
        try:
            configmap = conn.rest.get(CONFIGMAPS, name, operator_namespace)
        except NotFoundError:
            return CatalogSource(bundled, "the bundled catalog (no " + where + ")")
        except ForbiddenError:
            return CatalogSource(
                bundled,
                "the bundled catalog",
                f"cannot read {where} (access denied); dates and sources are the bundled "
                "catalog's, which the operator uses unless that ConfigMap replaces it",
            )
    try:
        catalog = parse_pricing_configmap(configmap.get("data"), name=name)
    except CatalogError as exc:
        return CatalogSource(
            bundled,
            "the bundled catalog",
            f"{where} is invalid and the operator ignores it ({exc}); dates and sources are the "
            "bundled catalog's",
        )
    return CatalogSource(catalog, where)


def _lookup(catalog: Catalog, provider: str, model: str) -> PriceEntry | None:
    wanted = (provider.casefold(), model.casefold())
    for entry in catalog.entries:
        if (entry.provider.casefold(), entry.model.casefold()) == wanted:
            return entry
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@attrs.frozen
class ComparisonView:
    """What ``compare`` shows: one row per ``cloudComparison[]`` entry, plus the summary."""

    header: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    summary: tuple[str, ...]
    stale: tuple[str, ...]
    catalog_origin: str
    catalog_note: str | None
    today: dt.date

    def tables(self) -> list[Table]:
        table_rows = []
        for row in self.rows:
            covers = ", ".join(row["equivalentTo"]) if row["equivalentTo"] else "whole report"
            table_rows.append(
                (
                    row["provider"],
                    row["model"],
                    covers,
                    format_usd(row["estimatedCloudCostUSD"]),
                    format_usd(row["onPremCostUSD"]),
                    format_usd(row["savingsUSD"], signed=True),
                    format_percent(row["savingsPercent"], signed=True),
                    _break_even(row),
                    row["checked"] or "?",
                )
            )
        prices = []
        for row in self.rows:
            if row["checked"] is None:
                prices.append(
                    f"  {row['provider']}/{row['model']}: not in {self.catalog_origin} "
                    "(the catalog changed since the report was computed)"
                )
                continue
            stale = f" (stale: older than {STALE_AFTER_DAYS} days)" if row["stale"] else ""
            cached = MISSING if row["cachedInputPrice"] is None else f"{row['cachedInputPrice']:g}"
            prices.append(
                f"  {row['provider']}/{row['model']}: {row['inputPrice']:g} / {cached} / "
                f"{row['outputPrice']:g}  checked {row['checked']}{stale}  {row['source']}"
            )
        notes = (
            "",
            *self.summary,
            "",
            "ON-PREM: what the covered tokens cost on your GPUs; SAVINGS = CLOUD - ON-PREM "
            "(negative: the cloud is cheaper).",
            "BREAK-EVEN: tokens per day at which this price would pay for the pool's "
            "amortization; never: the price per token is at or below on-prem electricity "
            "per token.",
            "",
            f"Prices in USD per 1M tokens (input / cached input / output) from "
            f"{self.catalog_origin}:",
            *prices,
        )
        return [
            Table(
                title="\n".join(self.header),
                columns=(
                    "PROVIDER",
                    "MODEL",
                    "COVERS",
                    "CLOUD",
                    "ON-PREM",
                    "SAVINGS",
                    "SAVINGS %",
                    "BREAK-EVEN",
                    "CHECKED",
                ),
                rows=tuple(table_rows),
                right=frozenset({"CLOUD", "ON-PREM", "SAVINGS", "SAVINGS %", "BREAK-EVEN"}),
                empty="no cloud comparison yet: the operator writes it with the report's figures",
                notes=notes if table_rows else (),
            )
        ]

    def as_data(self) -> dict[str, Any]:
        return {
            "header": list(self.header),
            "catalog": {"origin": self.catalog_origin, "note": self.catalog_note},
            "today": self.today.isoformat(),
            "entries": list(self.rows),
            "summary": list(self.summary),
            "stale": list(self.stale),
        }


def _break_even(row: Mapping[str, Any]) -> str:
    value = row["breakEvenTokensPerDay"]
    if value is not None:
        return f"{format_tokens(value)}/day"
    cloud = row["estimatedCloudCostUSD"]
    return "never" if cloud is not None and cloud > 0 else MISSING


def comparison_view(
    report: Mapping[str, Any], source: CatalogSource, *, today: dt.date
) -> ComparisonView:
    """Rows, header and summary of ``report``'s cloud comparison (pure; ``today`` for staleness)."""
    meta = report.get("metadata") or {}
    spec = report.get("spec") or {}
    status = report.get("status") or {}
    name = f"{meta.get('namespace')}/{meta.get('name')}"
    period = status.get("period") or "no period yet"
    header = [
        f"UsageReport {name} (CostProfile {spec.get('costProfileRef')}, "
        f"{spec.get('schedule') or 'daily'}, period {period})"
    ]
    cost = _number(status.get("estimatedCostUSD"))
    if cost is not None:
        per_mtok = status.get("costPerMillionTokens")
        per = f", {format_usd(per_mtok)} per 1M tokens" if per_mtok is not None else ""
        header.append(
            f"On-prem: {format_usd(cost)} for {format_tokens(status.get('inputTokens', 0))} input "
            f"and {format_tokens(status.get('outputTokens', 0))} output tokens{per}"
        )
    rows = []
    stale = []
    for entry in status.get("cloudComparison") or ():
        provider, model = str(entry.get("provider")), str(entry.get("model"))
        cloud = _number(entry.get("estimatedCloudCostUSD"))
        savings = _number(entry.get("savingsUSD"))
        price = _lookup(source.catalog, provider, model)
        entry_stale = price is not None and is_stale(price, today)
        if entry_stale:
            stale.append(f"{provider}/{model}")
        rows.append(
            {
                "provider": provider,
                "model": model,
                "equivalentTo": list(entry.get("equivalentTo") or ()),
                "estimatedCloudCostUSD": cloud,
                "onPremCostUSD": None if cloud is None or savings is None else cloud - savings,
                "savingsUSD": savings,
                "savingsPercent": _number(entry.get("savingsPercent")),
                "breakEvenTokensPerDay": _number(entry.get("breakEvenTokensPerDay")),
                "inputPrice": None if price is None else price.input_per_mtok,
                "cachedInputPrice": None if price is None else price.cached_input_per_mtok,
                "outputPrice": None if price is None else price.output_per_mtok,
                "checked": None if price is None else price.checked.isoformat(),
                "source": None if price is None else price.source,
                "stale": entry_stale,
            }
        )
    return ComparisonView(
        header=tuple(header),
        rows=tuple(rows),
        summary=tuple(_summary(rows)),
        stale=tuple(stale),
        catalog_origin=source.origin,
        catalog_note=source.note,
        today=today,
    )


def _summary(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The verdict in words, naming every price that beats on-prem."""
    priced = [r for r in rows if r["savingsUSD"] is not None]
    if not priced:
        return []
    cheaper_cloud = [r for r in priced if r["savingsUSD"] < 0]
    cheaper_here = [r for r in priced if r["savingsUSD"] > 0]
    lines = []
    if not cheaper_cloud:
        lines.append(f"On-prem cost less than every one of the {len(priced)} cloud prices listed.")
    elif not cheaper_here:
        lines.append(
            f"The cloud would have been cheaper: all {len(priced)} cloud prices listed cost less "
            "than on-prem for these tokens."
        )
    else:
        lines.append(
            f"On-prem cost less than {len(cheaper_here)} of the {len(priced)} cloud prices "
            f"listed; {len(cheaper_cloud)} would have been cheaper than on-prem."
        )
    for r in cheaper_cloud:
        share = f" ({-r['savingsPercent']:.1f}%)" if r["savingsPercent"] is not None else ""
        lines.append(
            f"  Cloud cheaper: {r['provider']}/{r['model']} would have cost "
            f"{format_usd(r['estimatedCloudCostUSD'])}; on-prem cost "
            f"{format_usd(r['onPremCostUSD'])}, which is "
            f"{format_usd(-r['savingsUSD'])}{share} more."
        )
    return lines


def _stale_warning(view: ComparisonView) -> str | None:
    if not view.stale:
        return None
    count = len(view.stale)
    return (
        f"warning: {count} price{'s' if count != 1 else ''} checked more than "
        f"{STALE_AFTER_DAYS} days before today ({view.today.isoformat()}): "
        f"{', '.join(view.stale)}; check them against their source and update the "
        "infercost-pricing ConfigMap (docs/pricing.md)"
    )


def _missing_report(conn: Connection, name: str, namespace: str) -> CommandError:
    try:
        names = [str((o.get("metadata") or {}).get("name")) for o in conn.objects("UsageReport")]
    except CommandError:
        names = []
    hint = f"UsageReports there: {', '.join(names)}" if names else "it has no UsageReports"
    return CommandError(
        f"UsageReport {name!r} not found in namespace {namespace} ({hint}; "
        "use -n for another namespace)"
    )


def run(args: argparse.Namespace, *, today: dt.date | None = None) -> int:
    from infercost.collect.pricing import PRICING_CONFIGMAP

    operator_ns = (
        args.operator_namespace
        or os.environ.get("INFERCOST_NAMESPACE", "").strip()
        or DEFAULT_OPERATOR_NAMESPACE
    )
    configmap = (
        args.pricing_configmap
        or os.environ.get("INFERCOST_PRICING_CONFIGMAP", "").strip()
        or PRICING_CONFIGMAP
    )
    try:
        conn = connect(args)
        assert conn.namespace is not None  # compare has no -A
        report = conn.get("UsageReport", args.report, conn.namespace)
        if report is None:
            raise _missing_report(conn, args.report, conn.namespace)
        source = load_catalog(conn, operator_ns, configmap)
    except CommandError as exc:
        print(f"infercost compare: error: {exc}", file=sys.stderr)
        return 1
    view = comparison_view(report, source, today=today or dt.datetime.now(dt.UTC).date())
    if args.output in ("json", "yaml"):
        sys.stdout.write(dump(view.as_data(), args.output))
    else:
        sys.stdout.write(render_plain(view.tables()))
    if source.note:
        print(f"note: {source.note}", file=sys.stderr)
    warning = _stale_warning(view)
    if warning:
        print(warning, file=sys.stderr)
    return 0

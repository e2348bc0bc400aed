"""FOCUS 1.2 rows for finance (SPEC §6.3): one per (UTC day, CostProfile, namespace, model).

Finance tools read cost data in the FinOps Foundation's FOCUS format. This module turns ledger
lines into FOCUS 1.2 rows and writes them as CSV; it reads nothing and knows nothing of where the
lines came from (``infercost export focus`` restores them from the ledger's checkpoint — never
from UsageReports, whose periods overlap).

Contract, checked by the FinOps Foundation's validator (``tox -e focus``):

- every row is a ``Usage`` charge of the day ``[00:00Z, 24:00Z)`` in the billing period of its
  calendar month, with ``BilledCost = EffectiveCost = ListCost = ContractedCost`` = the line's
  cost (amortization + electricity, idle share included), so the rows of a period, CostProfile
  and namespace sum to that UsageReport's ``estimatedCostUSD``;
- the cost is priced per GPU-hour of the CostProfile (``PricingUnit`` ``GPU-Hours``,
  ``SkuId`` ``costprofile/<ns>/<name>``, ``PricingCategory`` ``Standard``: rates set in advance
  in the CostProfile) and consumed as tokens (``ConsumedUnit`` ``Tokens``, input + output);
- the cluster is the billing account and its month the invoice
  (``InvoiceId`` ``infercost-<cluster>-<yyyy-mm>``), a namespace the sub account, the model
  deployment in a namespace the resource;
- decimals are plain strings (no exponent, shortest form that reads back as the same float),
  times ISO 8601 UTC ``YYYY-MM-DDTHH:MM:SSZ``, nulls empty CSV fields;
- FOCUS columns come first in alphabetical order, custom ``x_`` columns after them.

``x_PUE`` is not exported: a line keeps electricity in USD and energy in kWh before PUE, whose
ratio is ``ratePerKWh × pueFactor`` of the intervals booked into it; the ledger keeps neither
factor per line, so the PUE in force on a past day cannot be recovered from the checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal
from typing import TextIO

from infercost.engine.catalog import Catalog, PriceEntry
from infercost.engine.comparison import cloud_cost_usd
from infercost.engine.ledger import (
    F_AMORT,
    F_ELEC,
    F_EST_KWH,
    F_GPU_S,
    F_IDLE_AMORT,
    F_IDLE_ELEC,
    F_KWH,
    NO_TRAFFIC,
    NON_INFERENCE,
    T_CACHED,
    T_IN,
    T_OUT,
    T_UNCACHED,
    UNALLOCATED,
    Line,
    LineKey,
)
from infercost.engine.periods import MONTHLY, day_end, day_start, period_of

__all__ = [
    "COLUMNS",
    "CUSTOM_COLUMNS",
    "FOCUS_COLUMNS",
    "FOCUS_VERSION",
    "MANDATORY_COLUMNS",
    "TAG_PREFIX",
    "check_cluster_name",
    "decimal",
    "focus_rows",
    "invoice_id",
    "timestamp",
    "write_csv",
]

FOCUS_VERSION = "1.2"

MANDATORY_COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
)
"""The 21 columns every FOCUS 1.0–1.2 dataset carries."""

FOCUS_COLUMNS = tuple(
    sorted(
        (
            *MANDATORY_COLUMNS,
            "ChargeFrequency",
            "ConsumedQuantity",
            "ConsumedUnit",
            "InvoiceId",
            "PricingCategory",
            "ResourceId",
            "ResourceName",
            "ResourceType",
            "ServiceSubcategory",
            "SkuId",
            "SubAccountId",
            "SubAccountName",
            "Tags",
        )
    )
)
"""Mandatory columns plus the conditional and recommended ones InferCost can fill."""

CUSTOM_COLUMNS = (
    "x_CostProfile",
    "x_Namespace",
    "x_Model",
    "x_OpenWeightFamily",
    "x_InputTokens",
    "x_CachedInputTokens",
    "x_OutputTokens",
    "x_GpuHours",
    "x_EnergyKWh",
    "x_EstimatedEnergyKWh",
    "x_AmortizationCostUSD",
    "x_ElectricityCostUSD",
    "x_IdleCostUSD",
    "x_CloudEquivalentCostUSD",
    "x_CloudEquivalentModel",
)
COLUMNS = FOCUS_COLUMNS + CUSTOM_COLUMNS
"""The CSV header, in order."""

TAG_PREFIX = "infercost.ai/"
"""Prefix of every tag key InferCost sets (FOCUS: provider-defined tags carry a prefix)."""

PROVIDER = "Self-hosted"
"""``ProviderName``, ``PublisherName`` and ``InvoiceIssuerName``: the organisation's own GPUs."""
SERVICE_NAME = "Self-hosted LLM inference"
SECONDS_PER_HOUR = 3600.0

_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")

Row = dict[str, str | None]


def check_cluster_name(name: str) -> str:
    """The cluster name that goes into ``BillingAccountId`` and ``InvoiceId``; ``ValueError``
    unless it is 1–63 letters, digits, ``.``, ``_`` or ``-`` starting and ending alphanumeric."""
    if not _CLUSTER_NAME.match(name):
        raise ValueError(
            f"cluster name {name!r} must be 1-63 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def invoice_id(cluster: str, day: str) -> str:
    """``infercost-<cluster>-<yyyy-mm>``: one internal invoice per cluster and calendar month."""
    return f"infercost-{cluster}-{day[:7]}"


def decimal(value: float) -> str:
    """A FOCUS decimal: plain digits with a decimal point, no exponent, the shortest form that
    reads back as ``value`` (``1e-05`` → ``0.00001``, ``80`` → ``80.0``). ``ValueError`` for NaN
    and infinities.

    The point is always there because readers infer a CSV column's type from its values: a
    column of whole numbers would read as integers, and FOCUS wants Decimal."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    if value == 0:
        return "0.0"
    text = format(Decimal(repr(float(value))), "f")
    return text if "." in text else text + ".0"


def timestamp(day: str, *, end: bool = False) -> str:
    """Midnight UTC starting (or, with ``end``, ending) ``day``, as ``YYYY-MM-DDTHH:MM:SSZ``."""
    at = day_end(day) if end else day_start(day)
    return f"{at:%Y-%m-%dT%H:%M:%SZ}"


def _billing_period(day: str) -> tuple[str, str]:
    month = period_of(day_start(day), MONTHLY)
    return f"{month.start:%Y-%m-%dT%H:%M:%SZ}", f"{month.end:%Y-%m-%dT%H:%M:%SZ}"


def _cheapest(
    catalog: Catalog | None, family: str | None, line: Line
) -> tuple[PriceEntry, float] | None:
    """The family's hosted entry that would charge least for the line's tokens (ties: by
    provider, then model)."""
    if catalog is None or family is None:
        return None
    priced = [
        (
            cloud_cost_usd(
                entry, line.tokens[T_UNCACHED], line.tokens[T_CACHED], line.tokens[T_OUT]
            ),
            entry.provider,
            entry.model,
            entry,
        )
        for entry in catalog.for_family(family)
    ]
    if not priced:
        return None
    usd, _, _, entry = min(priced, key=lambda p: p[:3])
    return entry, usd


def _resource(cluster: str, profile: str, namespace: str, model: str) -> tuple[str, str, str]:
    """(ResourceId, ResourceName, ResourceType) of a row.

    A model row's resource is the model deployment in its namespace; the cost of GPUs whose
    pods served no tokens or no inference belongs to the namespace; idle capacity nobody used
    (namespace ``__unallocated__``) to the CostProfile's GPU pool."""
    if namespace == UNALLOCATED:
        return f"{cluster}/costprofiles/{profile}", profile, "GPU Pool"
    if model in (NO_TRAFFIC, NON_INFERENCE):
        return f"{cluster}/namespaces/{namespace}", namespace, "Namespace"
    return f"{cluster}/namespaces/{namespace}/models/{model}", model, "Model"


def _description(profile: str, namespace: str, model: str) -> str:
    if namespace == UNALLOCATED:
        return f"Idle GPU capacity of CostProfile {profile} not used by any namespace"
    if model == NO_TRAFFIC:
        return (
            f"GPUs of inference pods that served no tokens in namespace {namespace} "
            f"on CostProfile {profile}"
        )
    if model == NON_INFERENCE:
        return f"GPUs held by non-inference pods in namespace {namespace} on CostProfile {profile}"
    return f"LLM inference: {model} in namespace {namespace} on CostProfile {profile}"


def _tags(profile: str, namespace: str, model: str, family: str | None) -> str:
    tags = {
        f"{TAG_PREFIX}costprofile": profile,
        f"{TAG_PREFIX}namespace": namespace,
        f"{TAG_PREFIX}model": model,
    }
    if family is not None:
        tags[f"{TAG_PREFIX}open-weight-family"] = family
    return json.dumps(tags, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _merge(
    lines: Iterable[tuple[LineKey, Line]], namespaces: Collection[str]
) -> dict[tuple[str, str, str, str], Line]:
    """Lines summed over checkpoint shards, keyed by (day, profile, namespace, model)."""
    wanted = set(namespaces)
    merged: dict[tuple[str, str, str, str], Line] = {}
    for (_, day, profile, namespace, model), line in lines:
        if wanted and namespace not in wanted:
            continue
        merged.setdefault((day, profile, namespace, model), Line()).add(line)
    return merged


def focus_rows(
    lines: Iterable[tuple[LineKey, Line]],
    *,
    cluster: str,
    catalog: Catalog | None = None,
    namespaces: Collection[str] = (),
) -> list[Row]:
    """FOCUS rows of ``lines`` (all of the period being exported), restricted to
    ``namespaces`` (empty: every namespace, ``__unallocated__`` included), sorted by
    (day, CostProfile, namespace, model). Values are strings, ``None`` for null.

    ``x_CloudEquivalentCostUSD`` prices a row's tokens at the cheapest entry of ``catalog``
    hosting the model's open-weight family (``x_CloudEquivalentModel`` names it as
    ``provider/model``); both are null for a model with no family or no hosted entry."""
    check_cluster_name(cluster)
    rows: list[Row] = []
    for (day, profile, namespace, model), line in sorted(_merge(lines, namespaces).items()):
        where = f"ledger line {day} {profile} {namespace} {model}"
        v = line.values
        t = line.tokens
        try:
            cost = decimal(line.cost_usd)
            gpu_hours = decimal(v[F_GPU_S] / SECONDS_PER_HOUR)
            numbers = {
                "x_EnergyKWh": decimal(v[F_KWH]),
                "x_EstimatedEnergyKWh": decimal(v[F_EST_KWH]),
                "x_AmortizationCostUSD": decimal(v[F_AMORT]),
                "x_ElectricityCostUSD": decimal(v[F_ELEC]),
                "x_IdleCostUSD": decimal(v[F_IDLE_AMORT] + v[F_IDLE_ELEC]),
            }
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if min(t) < 0:
            raise ValueError(f"{where}: negative token count {t}")
        period_start, period_end = _billing_period(day)
        resource_id, resource_name, resource_type = _resource(cluster, profile, namespace, model)
        allocated = namespace != UNALLOCATED
        cloud = _cheapest(catalog, line.family, line)
        row: Row = {
            "BilledCost": cost,
            "BillingAccountId": f"infercost-{cluster}",
            "BillingAccountName": f"Kubernetes cluster {cluster}",
            "BillingCurrency": "USD",
            "BillingPeriodEnd": period_end,
            "BillingPeriodStart": period_start,
            "ChargeCategory": "Usage",
            "ChargeClass": None,
            "ChargeDescription": _description(profile, namespace, model),
            "ChargeFrequency": "Usage-Based",
            "ChargePeriodEnd": timestamp(day, end=True),
            "ChargePeriodStart": timestamp(day),
            "ConsumedQuantity": decimal(float(t[T_IN] + t[T_OUT])),
            "ConsumedUnit": "Tokens",
            "ContractedCost": cost,
            "EffectiveCost": cost,
            "InvoiceId": invoice_id(cluster, day),
            "InvoiceIssuerName": PROVIDER,
            "ListCost": cost,
            "PricingCategory": "Standard",
            "PricingQuantity": gpu_hours,
            "PricingUnit": "GPU-Hours",
            "ProviderName": PROVIDER,
            "PublisherName": PROVIDER,
            "ResourceId": resource_id,
            "ResourceName": resource_name,
            "ResourceType": resource_type,
            "ServiceCategory": "AI and Machine Learning",
            "ServiceName": SERVICE_NAME,
            "ServiceSubcategory": "Generative AI",
            "SkuId": f"costprofile/{profile}",
            "SubAccountId": f"{cluster}/namespaces/{namespace}" if allocated else None,
            "SubAccountName": namespace if allocated else None,
            "Tags": _tags(profile, namespace, model, line.family),
            "x_CostProfile": profile,
            "x_Namespace": namespace,
            "x_Model": model,
            "x_OpenWeightFamily": line.family,
            "x_InputTokens": str(t[T_IN]),
            "x_CachedInputTokens": str(t[T_CACHED]),
            "x_OutputTokens": str(t[T_OUT]),
            "x_GpuHours": gpu_hours,
            **numbers,
            "x_CloudEquivalentCostUSD": None if cloud is None else decimal(cloud[1]),
            "x_CloudEquivalentModel": None if cloud is None else cloud[0].key,
        }
        rows.append(row)
    return rows


def write_csv(rows: Iterable[Mapping[str, str | None]], out: TextIO) -> int:
    """Write a header of :data:`COLUMNS` and ``rows`` (null as an empty field); the number of
    rows written. Every row must have exactly those columns."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for row in rows:
        if set(row) != set(COLUMNS):
            odd = sorted(set(row) ^ set(COLUMNS))
            raise ValueError(f"row {count} does not have the export's columns: {odd}")
        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
        count += 1
    return count

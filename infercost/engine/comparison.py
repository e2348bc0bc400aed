"""A report's ``cloudComparison[]`` (SPEC §6.2): the same tokens at cloud list prices.

Pure arithmetic over plain inputs. The UsageReport reconciler sums the report's ledger lines per
(model, namespace, open-weight family) into :class:`ModelUsage` records and passes them with the
report's ``amortizationCostUSD``, the ledger-covered seconds of its period and the report's time;
this module knows nothing of the ledger, of CRDs or of where the catalog came from.

Which entries a report lists:

- *equivalents*: every catalog entry whose ``openWeight`` family is the family of at least one of
  the report's models. It covers only the records of that family: their tokens, their on-prem
  cost, their non-idle electricity; ``equivalentTo`` names their models.
- *flagships*: the catalog's flagship entries, each covering every record of the report.

Order: equivalents sorted by (family, provider, model), then flagships sorted by (provider,
model), so a status never reorders while its figures stay put.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

import attrs

from infercost.engine.catalog import Catalog, PriceEntry, is_stale

TOKENS_PER_MTOK = 1e6
SECONDS_PER_DAY = 86_400.0


@attrs.frozen
class ModelUsage:
    """A report's ledger lines of one (model, namespace, family), summed.

    ``uncached_input_tokens`` excludes ``cached_input_tokens`` (the ledger books input − cached);
    ``cost_usd`` is the on-prem cost of those lines, idle share included;
    ``non_idle_electricity_usd`` the electricity of those lines without their idle part.
    ``family`` is the open-weight family resolved when the tokens were booked, ``None`` when the
    model had none.
    """

    model: str
    namespace: str
    uncached_input_tokens: int = attrs.field(validator=attrs.validators.ge(0))
    cached_input_tokens: int = attrs.field(validator=attrs.validators.ge(0))
    output_tokens: int = attrs.field(validator=attrs.validators.ge(0))
    cost_usd: float
    non_idle_electricity_usd: float
    family: str | None = None

    @property
    def tokens(self) -> int:
        """Input (cached included) + output tokens."""
        return self.uncached_input_tokens + self.cached_input_tokens + self.output_tokens


@attrs.frozen
class ComparisonEntry:
    """One ``cloudComparison[]`` entry, plus ``stale`` (the price's check date is more than 180
    days before the report's time) and the entry it was computed from.

    ``savings_percent`` and ``break_even_tokens_per_day`` are ``None`` where SPEC §6.2 says the
    field is absent; ``equivalent_to`` is empty for a flagship.
    """

    provider: str
    model: str
    estimated_cloud_cost_usd: float
    savings_usd: float
    savings_percent: float | None
    equivalent_to: tuple[str, ...]
    break_even_tokens_per_day: float | None
    stale: bool
    price: PriceEntry


def cloud_cost_usd(
    entry: PriceEntry, uncached_input_tokens: int, cached_input_tokens: int, output_tokens: int
) -> float:
    """Tokens at ``entry``'s list prices: uncached input at the input price, cached input at the
    cache-read price (the input price when the entry lists none), output at the output price."""
    return (
        uncached_input_tokens / TOKENS_PER_MTOK * entry.input_per_mtok
        + cached_input_tokens / TOKENS_PER_MTOK * entry.effective_cached_input_per_mtok
        + output_tokens / TOKENS_PER_MTOK * entry.output_per_mtok
    )


def compare_with_cloud(
    usage: Sequence[ModelUsage],
    catalog: Catalog,
    *,
    amortization_cost_usd: float,
    covered_seconds: float,
    at: dt.date | dt.datetime,
) -> tuple[ComparisonEntry, ...]:
    """The report's ``cloudComparison[]`` for ``catalog`` (module docstring: which, in what order).

    ``amortization_cost_usd`` is the report's whole ``amortizationCostUSD`` and
    ``covered_seconds`` the ledger-covered seconds of its period; both feed
    ``breakEvenTokensPerDay`` of every entry. ``at`` is the report's time, for ``stale``.
    """
    families = sorted({u.family for u in usage if u.family is not None})
    listed: list[tuple[PriceEntry, tuple[ModelUsage, ...], bool]] = []
    for family in families:
        members = tuple(u for u in usage if u.family == family)
        for entry in sorted(catalog.for_family(family), key=lambda e: (e.provider, e.model)):
            listed.append((entry, members, False))
    for entry in sorted(catalog.flagships, key=lambda e: (e.provider, e.model)):
        listed.append((entry, tuple(usage), True))
    days_covered = covered_seconds / SECONDS_PER_DAY
    return tuple(
        _compare(
            entry,
            members,
            flagship=flagship,
            amortization_cost_usd=amortization_cost_usd,
            days_covered=days_covered,
            at=at,
        )
        for entry, members, flagship in listed
    )


def _compare(
    entry: PriceEntry,
    members: tuple[ModelUsage, ...],
    *,
    flagship: bool,
    amortization_cost_usd: float,
    days_covered: float,
    at: dt.date | dt.datetime,
) -> ComparisonEntry:
    uncached = sum(u.uncached_input_tokens for u in members)
    cached = sum(u.cached_input_tokens for u in members)
    output = sum(u.output_tokens for u in members)
    tokens = uncached + cached + output
    cloud_usd = cloud_cost_usd(entry, uncached, cached, output)
    on_prem_usd = math.fsum(u.cost_usd for u in members)
    savings_usd = cloud_usd - on_prem_usd
    break_even: float | None = None
    if tokens > 0 and days_covered > 0:
        marginal_usd = math.fsum(u.non_idle_electricity_usd for u in members)
        # USD per token the cloud charges at this mix, minus what one more on-prem token costs.
        margin_usd_per_token = (cloud_usd - marginal_usd) / tokens
        if margin_usd_per_token > 0:
            break_even = (amortization_cost_usd / days_covered) / margin_usd_per_token
    return ComparisonEntry(
        provider=entry.provider,
        model=entry.model,
        estimated_cloud_cost_usd=cloud_usd,
        savings_usd=savings_usd,
        savings_percent=savings_usd / cloud_usd * 100 if cloud_usd > 0 else None,
        equivalent_to=() if flagship else tuple(sorted({u.model for u in members})),
        break_even_tokens_per_day=break_even,
        stale=is_stale(entry, at),
        price=entry,
    )

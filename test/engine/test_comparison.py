"""cloudComparison[] (SPEC §6.2) recomputed by hand on a small catalog."""

from __future__ import annotations

import datetime as dt

import pytest

from infercost.engine.catalog import Catalog, PriceEntry
from infercost.engine.comparison import ComparisonEntry, ModelUsage, compare_with_cloud

URL = "https://example.com/pricing"
REPORT_TIME = dt.datetime(2026, 8, 30, 12, tzinfo=dt.UTC)
FRESH = dt.date(2026, 8, 1)
OLD = dt.date(2025, 7, 3)  # 423 days before the report

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"
LLAMA_AWQ = "casperhansen/llama-3.3-70b-instruct-awq"


def _flagship(
    provider: str, model: str, inp: float, cached: float | None, out: float
) -> PriceEntry:
    return PriceEntry(provider, model, inp, out, URL, FRESH, cached, flagship=True)


FLAGSHIPS = (
    _flagship("openai", "big", 2.00, 0.50, 10.00),
    _flagship("openai", "small", 0.25, None, 2.00),
    _flagship("anthropic", "opus", 5.00, 0.50, 25.00),
    _flagship("anthropic", "sonnet", 3.00, 0.30, 15.00),
    _flagship("google", "pro", 2.00, 0.20, 12.00),
)
TOGETHER = PriceEntry("together", "llama-turbo", 0.88, 0.88, URL, OLD, None, "llama-3.3-70b")
GROQ = PriceEntry("groq", "llama-versatile", 0.59, 0.79, URL, FRESH, 0.10, "llama-3.3-70b")
OPENROUTER = PriceEntry("openrouter", "llama-cheap", 0.05, 0.24, URL, FRESH, None, "llama-3.3-70b")
FREE = PriceEntry("acme", "llama-free", 0.0, 0.0, URL, FRESH, None, "llama-3.3-70b")
GPT_OSS = PriceEntry("fireworks", "gpt-oss-20b", 0.07, 0.30, URL, FRESH, None, "gpt-oss-20b")
UNUSED = PriceEntry("together", "qwen", 0.20, 0.60, URL, FRESH, None, "qwen3-32b")

CATALOG = Catalog((*FLAGSHIPS, TOGETHER, GROQ, GPT_OSS, UNUSED))

# Two namespaces serve the Llama (4 M uncached + 1 M cached input, 2 M output, $3.00 on-prem,
# $0.75 non-idle electricity); a custom model without a family; the pool's idle line.
REPORT = (
    ModelUsage(LLAMA, "team-a", 3_000_000, 1_000_000, 1_000_000, 2.00, 0.50, "llama-3.3-70b"),
    ModelUsage(LLAMA, "team-b", 1_000_000, 0, 1_000_000, 1.00, 0.25, "llama-3.3-70b"),
    ModelUsage("acme/custom", "team-a", 2_000_000, 0, 0, 0.50, 0.10, None),
    ModelUsage("(idle)", "__unallocated__", 0, 0, 0, 1.50, 0.0, None),
)
AMORTIZATION_USD = 30.0
TWO_DAYS_SECONDS = 172_800.0  # $15 of amortization per covered day


def _compare(
    usage: tuple[ModelUsage, ...] = REPORT,
    catalog: Catalog = CATALOG,
    covered_seconds: float = TWO_DAYS_SECONDS,
) -> dict[str, ComparisonEntry]:
    entries = compare_with_cloud(
        usage,
        catalog,
        amortization_cost_usd=AMORTIZATION_USD,
        covered_seconds=covered_seconds,
        at=REPORT_TIME,
    )
    by_key = {f"{e.provider}/{e.model}": e for e in entries}
    assert len(by_key) == len(entries)
    return by_key


def test_equivalent_without_a_cache_price_prices_cached_input_as_input() -> None:
    together = _compare()["together/llama-turbo"]
    # (4 M + 1 M) input × 0.88 + 2 M output × 0.88 = 7 × 0.88
    assert together.estimated_cloud_cost_usd == pytest.approx(6.16)
    assert together.savings_usd == pytest.approx(6.16 - 3.00)
    assert together.savings_percent == pytest.approx(3.16 / 6.16 * 100)  # 51.30 %
    # $15/day ÷ ((6.16 − 0.75) / 7 M tokens) = 105 M / 5.41
    assert together.break_even_tokens_per_day == pytest.approx(19_408_502.77, rel=1e-9)
    assert together.equivalent_to == (LLAMA,)


def test_equivalent_with_a_cache_price_prices_cached_input_at_it() -> None:
    groq = _compare()["groq/llama-versatile"]
    # 4 M × 0.59 + 1 M × 0.10 + 2 M × 0.79 = 2.36 + 0.10 + 1.58
    assert groq.estimated_cloud_cost_usd == pytest.approx(4.04)
    assert groq.savings_usd == pytest.approx(1.04)
    assert groq.savings_percent == pytest.approx(25.742574257)
    # 105 M / (4.04 − 0.75)
    assert groq.break_even_tokens_per_day == pytest.approx(31_914_893.617, rel=1e-9)


def test_flagships_cover_the_whole_report() -> None:
    big = _compare()["openai/big"]
    # input 6 M uncached × 2.00 + 1 M cached × 0.50 + 2 M output × 10.00 = 12 + 0.5 + 20
    assert big.estimated_cloud_cost_usd == pytest.approx(32.5)
    # every line's cost, idle included: 2.00 + 1.00 + 0.50 + 1.50
    assert big.savings_usd == pytest.approx(27.5)
    assert big.savings_percent == pytest.approx(84.615384615)
    # $15/day ÷ ((32.5 − 0.85) / 9 M tokens) = 135 M / 31.65
    assert big.break_even_tokens_per_day == pytest.approx(4_265_402.844, rel=1e-9)
    assert big.equivalent_to == ()
    small = _compare()["openai/small"]
    # no cache price: 7 M input × 0.25 + 2 M output × 2.00
    assert small.estimated_cloud_cost_usd == pytest.approx(5.75)
    assert small.savings_usd == pytest.approx(0.75)


def test_cloud_cheaper_than_on_prem_shows_negative_savings_and_no_break_even() -> None:
    catalog = Catalog((*FLAGSHIPS, OPENROUTER))
    cheap = _compare(catalog=catalog)["openrouter/llama-cheap"]
    # 5 M input × 0.05 + 2 M output × 0.24 = 0.25 + 0.48
    assert cheap.estimated_cloud_cost_usd == pytest.approx(0.73)
    assert cheap.savings_usd == pytest.approx(-2.27)
    assert cheap.savings_percent == pytest.approx(-310.958904109)
    # the cloud's 0.73 is below the 0.75 of electricity alone: on-prem never catches up
    assert cheap.break_even_tokens_per_day is None


def test_zero_cloud_cost_has_no_savings_percent() -> None:
    catalog = Catalog((*FLAGSHIPS, FREE))
    free = _compare(catalog=catalog)["acme/llama-free"]
    assert free.estimated_cloud_cost_usd == 0.0
    assert free.savings_usd == pytest.approx(-3.00)
    assert free.savings_percent is None
    assert free.break_even_tokens_per_day is None


def test_a_report_without_tokens_lists_flagships_with_only_their_cost() -> None:
    idle_only = (ModelUsage("(idle)", "__unallocated__", 0, 0, 0, 1.50, 0.0, None),)
    result = _compare(usage=idle_only)
    assert sorted(result) == [
        "anthropic/opus",
        "anthropic/sonnet",
        "google/pro",
        "openai/big",
        "openai/small",
    ]
    pro = result["google/pro"]
    assert pro.estimated_cloud_cost_usd == 0.0
    assert pro.savings_usd == pytest.approx(-1.50)
    assert pro.savings_percent is None
    assert pro.break_even_tokens_per_day is None


def test_a_family_with_lines_but_no_tokens_is_listed_without_break_even() -> None:
    quiet = (ModelUsage(LLAMA, "team-a", 0, 0, 0, 0.40, 0.0, "llama-3.3-70b"),)
    together = _compare(usage=quiet)["together/llama-turbo"]
    assert together.estimated_cloud_cost_usd == 0.0
    assert together.savings_usd == pytest.approx(-0.40)
    assert (together.savings_percent, together.break_even_tokens_per_day) == (None, None)
    assert together.equivalent_to == (LLAMA,)


def test_break_even_with_no_hardware_cost_is_zero_tokens_per_day() -> None:
    entries = compare_with_cloud(
        REPORT, CATALOG, amortization_cost_usd=0.0, covered_seconds=TWO_DAYS_SECONDS, at=REPORT_TIME
    )
    assert {e.break_even_tokens_per_day for e in entries} == {0.0}


def test_break_even_scales_with_the_days_the_ledger_covered() -> None:
    # The same amortization over 12 hours instead of 2 days: $60 per covered day, 4 × the tokens.
    twelve_hours = _compare(covered_seconds=43_200.0)["together/llama-turbo"]
    assert twelve_hours.break_even_tokens_per_day == pytest.approx(4 * 19_408_502.77, rel=1e-9)
    assert _compare(covered_seconds=0.0)["together/llama-turbo"].break_even_tokens_per_day is None


def test_equivalents_cover_only_their_family_and_name_its_models() -> None:
    usage = (
        *REPORT,
        ModelUsage(LLAMA_AWQ, "team-c", 0, 0, 1_000_000, 0.30, 0.05, "llama-3.3-70b"),
        ModelUsage(
            "openai/gpt-oss-20b", "team-c", 1_000_000, 0, 1_000_000, 0.20, 0.02, "gpt-oss-20b"
        ),
    )
    result = _compare(usage=usage)
    together = result["together/llama-turbo"]
    # the Llama lines only: (5 M input + 3 M output) × 0.88; on-prem 2.00 + 1.00 + 0.30
    assert together.estimated_cloud_cost_usd == pytest.approx(7.04)
    assert together.savings_usd == pytest.approx(7.04 - 3.30)
    assert together.equivalent_to == (LLAMA_AWQ, LLAMA)
    gpt_oss = result["fireworks/gpt-oss-20b"]
    # 1 M × 0.07 + 1 M × 0.30; on-prem 0.20
    assert gpt_oss.estimated_cloud_cost_usd == pytest.approx(0.37)
    assert gpt_oss.savings_usd == pytest.approx(0.17)
    assert gpt_oss.equivalent_to == ("openai/gpt-oss-20b",)
    # break-even takes the report's whole amortization: $15/day ÷ ((0.37 − 0.02) / 2 M tokens)
    assert gpt_oss.break_even_tokens_per_day == pytest.approx(85_714_285.714, rel=1e-9)


def test_order_is_equivalents_by_family_then_flagships_by_provider() -> None:
    usage = (
        *REPORT,
        ModelUsage("openai/gpt-oss-20b", "team-c", 1, 0, 1, 0.20, 0.02, "gpt-oss-20b"),
    )
    entries = compare_with_cloud(
        usage,
        CATALOG,
        amortization_cost_usd=AMORTIZATION_USD,
        covered_seconds=TWO_DAYS_SECONDS,
        at=REPORT_TIME,
    )
    assert [f"{e.provider}/{e.model}" for e in entries] == [
        "fireworks/gpt-oss-20b",  # family gpt-oss-20b
        "groq/llama-versatile",  # family llama-3.3-70b, providers alphabetically
        "together/llama-turbo",
        "anthropic/opus",  # flagships by provider, then model
        "anthropic/sonnet",
        "google/pro",
        "openai/big",
        "openai/small",
    ]


def test_families_without_catalog_entries_and_entries_without_models_are_not_listed() -> None:
    usage = (ModelUsage("acme/model", "ns", 5, 0, 5, 0.1, 0.0, "family-nobody-hosts"),)
    keys = set(_compare(usage=usage))
    assert "together/qwen" not in keys  # no on-prem qwen3-32b
    assert keys == {f"{e.provider}/{e.model}" for e in FLAGSHIPS}


def test_prices_checked_over_180_days_before_the_report_are_flagged_stale() -> None:
    result = _compare()
    assert result["together/llama-turbo"].stale  # checked 2025-07-03
    assert not result["groq/llama-versatile"].stale  # checked 2026-08-01
    assert result["together/llama-turbo"].price is TOGETHER


def test_negative_token_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="output_tokens"):
        ModelUsage(LLAMA, "team-a", 1, 0, -1, 0.0, 0.0, None)

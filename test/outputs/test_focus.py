"""FOCUS 1.2 rows from ledger lines (SPEC §6.3): values worked out by hand from the SPEC's
formulas and the FOCUS column definitions; sums checked against the UsageReport figures; and,
in ``tox -e focus``, the FinOps Foundation's validator on a simulated month."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.machinery
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infercost.api import Hardware
from infercost.collect.pricing import bundled_catalog
from infercost.engine.catalog import Catalog, PriceEntry
from infercost.engine.ledger import (
    FIELDS,
    ROLE_CACHED,
    ROLE_INPUT,
    ROLE_OUTPUT,
    TOKENS,
    UNALLOCATED,
    Economics,
    GpuObservation,
    HoldObservation,
    Ledger,
    Line,
    NodeObservation,
    Observation,
    PodObservation,
    ProfileObservation,
    SeriesReading,
)
from infercost.engine.periods import parse_period
from infercost.engine.report import report_figures
from infercost.outputs.focus import (
    COLUMNS,
    CUSTOM_COLUMNS,
    FOCUS_COLUMNS,
    MANDATORY_COLUMNS,
    decimal,
    focus_rows,
    write_csv,
)
from infercost.testing.ledgers import DATACENTER, WORKSTATION, simulated_ledger

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC)
PROFILE = "infra/h100"
MODEL = "meta-llama/Llama-3.3-70B-Instruct"
# 8760 h × 3 years: $26,280 → exactly $1 per GPU-hour for one GPU
HW = Hardware(gpu_model="H100", gpu_count=1, purchase_price_usd=26_280.0, amortization_years=3.0)
ECON = Economics.of(HW, rate_per_kwh=0.10, pue_factor=1.5)
MJ_PER_KWH = 3.6e9
DECIMAL_COLUMNS = (
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "PricingQuantity",
    "ConsumedQuantity",
    "x_GpuHours",
    "x_EnergyKWh",
    "x_EstimatedEnergyKWh",
    "x_AmortizationCostUSD",
    "x_ElectricityCostUSD",
    "x_IdleCostUSD",
    "x_CloudEquivalentCostUSD",
)


def _pod(inp: int, cached: int, out: int, family: str | None = "llama-3.3-70b") -> PodObservation:
    return PodObservation(
        uid="u1",
        namespace="team-a",
        name="vllm-0",
        node="n1",
        inference=True,
        scraped=True,
        start_time=T0 - dt.timedelta(hours=1),
        restart_count=0,
        readings=(
            SeriesReading(f"prompt{{model={MODEL}}}", MODEL, ROLE_INPUT, inp),
            SeriesReading(f"cached{{model={MODEL}}}", MODEL, ROLE_CACHED, cached),
            SeriesReading(f"gen{{model={MODEL}}}", MODEL, ROLE_OUTPUT, out),
        ),
        families={MODEL: family} if family else {},
    )


def _node(energy_kwh: float, held: bool = True) -> NodeObservation:
    holds = (HoldObservation("GPU-1", "u1", "team-a", "vllm-0", 1.0, True),) if held else ()
    readings = (GpuObservation("GPU-1", energy_kwh * MJ_PER_KWH, 500.0),)
    return NodeObservation("n1", PROFILE, 1.0, "boot", readings, holds)


def _book(ledger: Ledger, seconds: float, node: NodeObservation, pods: list) -> None:
    at = T0 + dt.timedelta(seconds=seconds)
    ledger.book(Observation(at, (ProfileObservation(PROFILE, ECON),), (node,), tuple(pods)))


def one_hour_ledger() -> Ledger:
    """One GPU held by one vLLM pod for an hour: $1 amortization, 0.4 kWh, 5000 input tokens
    (50 of them cached) and 700 output tokens."""
    ledger = Ledger(shards=4)
    _book(ledger, 0, _node(0.0), [_pod(1000, 0, 100)])
    _book(ledger, 3600, _node(0.4), [_pod(6000, 50, 800)])
    return ledger


def tiny_catalog() -> Catalog:
    flagships = tuple(
        PriceEntry(
            f"first-{i}",
            f"flagship-{i}",
            1.0,
            2.0,
            "https://example.com/p",
            dt.date(2026, 10, 1),
            flagship=True,
        )
        for i in range(5)
    )
    hosted = (
        PriceEntry(
            "alpha",
            "llama-70b-a",
            0.88,
            0.88,
            "https://example.com/a",
            dt.date(2026, 10, 1),
            open_weight="llama-3.3-70b",
        ),
        PriceEntry(
            "beta",
            "llama-70b-b",
            0.59,
            0.79,
            "https://example.com/b",
            dt.date(2026, 10, 1),
            cached_input_per_mtok=0.10,
            open_weight="llama-3.3-70b",
        ),
    )
    return Catalog(flagships + hosted)


def rows_of(ledger: Ledger, period: str = "2026-11", **kwargs) -> list[dict]:
    kwargs.setdefault("cluster", "dc1")
    return focus_rows(ledger.lines_of(parse_period(period).days()), **kwargs)


def test_an_hour_of_one_gpu_is_one_usage_row_of_its_day_and_month() -> None:
    (row,) = rows_of(one_hour_ledger(), catalog=tiny_catalog())
    # $1 amortization + 0.4 kWh × $0.10 × 1.5 PUE = $1.06
    for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
        assert float(row[column]) == pytest.approx(1.06, rel=1e-12)
    assert float(row["x_AmortizationCostUSD"]) == pytest.approx(1.0, rel=1e-12)
    assert float(row["x_ElectricityCostUSD"]) == pytest.approx(0.06, rel=1e-12)
    assert float(row["x_EnergyKWh"]) == pytest.approx(0.4, rel=1e-12)
    assert row["x_IdleCostUSD"] == "0.0"
    assert row["ChargePeriodStart"] == "2026-11-27T00:00:00Z"
    assert row["ChargePeriodEnd"] == "2026-11-28T00:00:00Z"
    assert row["BillingPeriodStart"] == "2026-11-01T00:00:00Z"
    assert row["BillingPeriodEnd"] == "2026-12-01T00:00:00Z"
    assert row["InvoiceId"] == "infercost-dc1-2026-11"
    assert row["BillingAccountId"] == "infercost-dc1"
    assert row["BillingCurrency"] == "USD"
    assert (row["ChargeCategory"], row["ChargeClass"], row["ChargeFrequency"]) == (
        "Usage",
        None,
        "Usage-Based",
    )
    assert (row["ServiceCategory"], row["ServiceSubcategory"]) == (
        "AI and Machine Learning",
        "Generative AI",
    )
    assert row["PricingCategory"] == "Standard"
    # one GPU for one hour; 5000 input + 700 output tokens
    assert (row["PricingQuantity"], row["PricingUnit"]) == ("1.0", "GPU-Hours")
    assert (row["ConsumedQuantity"], row["ConsumedUnit"]) == ("5700.0", "Tokens")
    assert (row["x_InputTokens"], row["x_CachedInputTokens"], row["x_OutputTokens"]) == (
        "5000",
        "50",
        "700",
    )
    assert row["x_GpuHours"] == "1.0"
    assert row["SkuId"] == "costprofile/infra/h100"
    assert row["ResourceId"] == f"dc1/namespaces/team-a/models/{MODEL}"
    assert (row["ResourceName"], row["ResourceType"]) == (MODEL, "Model")
    assert (row["SubAccountId"], row["SubAccountName"]) == ("dc1/namespaces/team-a", "team-a")
    assert (row["x_Namespace"], row["x_Model"], row["x_CostProfile"]) == ("team-a", MODEL, PROFILE)
    assert row["x_OpenWeightFamily"] == "llama-3.3-70b"
    assert json.loads(row["Tags"]) == {
        "infercost.ai/costprofile": PROFILE,
        "infercost.ai/namespace": "team-a",
        "infercost.ai/model": MODEL,
        "infercost.ai/open-weight-family": "llama-3.3-70b",
    }
    assert MODEL in row["ChargeDescription"] and "team-a" in row["ChargeDescription"]


def test_cloud_equivalent_is_the_familys_cheapest_hosted_entry_at_the_rows_token_mix() -> None:
    (row,) = rows_of(one_hour_ledger(), catalog=tiny_catalog())
    # alpha: 5700 tokens × $0.88/M = $0.005016
    # beta: 4950 uncached × $0.59/M + 50 cached × $0.10/M + 700 output × $0.79/M = $0.0034785
    assert row["x_CloudEquivalentModel"] == "beta/llama-70b-b"
    assert float(row["x_CloudEquivalentCostUSD"]) == pytest.approx(0.0034785, rel=1e-12)


def test_a_model_without_open_weight_family_has_no_cloud_equivalent() -> None:
    ledger = Ledger(shards=1)
    _book(ledger, 0, _node(0.0), [_pod(0, 0, 0, family=None)])
    _book(ledger, 3600, _node(0.1), [_pod(10, 0, 10, family=None)])
    (row,) = rows_of(ledger, catalog=tiny_catalog())
    assert row["x_CloudEquivalentCostUSD"] is None
    assert row["x_CloudEquivalentModel"] is None
    assert row["x_OpenWeightFamily"] is None
    assert "infercost.ai/open-weight-family" not in json.loads(row["Tags"])


def test_idle_capacity_nobody_used_belongs_to_the_pool_and_no_sub_account() -> None:
    ledger = Ledger(shards=2)
    _book(ledger, 0, _node(0.0, held=False), [])
    _book(ledger, 7200, _node(0.2, held=False), [])
    (row,) = rows_of(ledger)
    assert row["x_Namespace"] == UNALLOCATED
    assert (row["SubAccountId"], row["SubAccountName"]) == (None, None)
    assert row["ResourceId"] == "dc1/costprofiles/infra/h100"
    assert (row["ResourceName"], row["ResourceType"]) == (PROFILE, "GPU Pool")
    # two idle GPU-hours at $1 plus 0.2 kWh × $0.15, all of it idle
    assert float(row["BilledCost"]) == pytest.approx(2.03, rel=1e-12)
    assert float(row["x_IdleCostUSD"]) == pytest.approx(2.03, rel=1e-12)
    assert row["PricingQuantity"] == "2.0"
    assert row["ConsumedQuantity"] == "0.0"


def _line(cost_amort: float, tokens: tuple[int, int, int, int], family: str | None) -> Line:
    values = [0.0] * len(FIELDS)
    values[FIELDS.index("amortization_usd")] = cost_amort
    values[FIELDS.index("gpu_seconds")] = 1800.0
    return Line(values, list(tokens), family)


def test_lines_of_one_key_on_several_shards_make_one_row_and_rows_are_sorted() -> None:
    assert TOKENS == (
        "input_tokens",
        "cached_input_tokens",
        "uncached_input_tokens",
        "output_tokens",
    )
    lines = [
        ((3, "2026-11-02", "b/p", "team-a", "m"), _line(0.25, (10, 0, 10, 1), None)),
        ((1, "2026-11-01", "b/p", "team-b", "m"), _line(0.5, (0, 0, 0, 0), None)),
        ((0, "2026-11-02", "b/p", "team-a", "m"), _line(0.5, (20, 5, 15, 2), "fam")),
        ((2, "2026-11-01", "a/p", "team-z", "m"), _line(1.0, (0, 0, 0, 0), None)),
    ]
    rows = focus_rows(lines, cluster="c")
    keys = [(r["ChargePeriodStart"][:10], r["x_CostProfile"], r["x_Namespace"]) for r in rows]
    assert keys == [
        ("2026-11-01", "a/p", "team-z"),
        ("2026-11-01", "b/p", "team-b"),
        ("2026-11-02", "b/p", "team-a"),
    ]
    merged = rows[2]
    assert merged["BilledCost"] == "0.75"
    assert merged["PricingQuantity"] == "1.0"  # two half hours
    assert (merged["x_InputTokens"], merged["x_CachedInputTokens"]) == ("30", "5")
    assert (merged["x_OutputTokens"], merged["ConsumedQuantity"]) == ("3", "33.0")
    assert merged["x_OpenWeightFamily"] == "fam"


def test_namespace_filter_keeps_only_that_namespaces_rows() -> None:
    ledger = simulated_month()
    rows = rows_of(ledger, "2026-11-10", namespaces=("team-b",))
    assert rows
    assert {r["x_Namespace"] for r in rows} == {"team-b"}
    everything = rows_of(ledger, "2026-11-10")
    assert {r["x_Namespace"] for r in everything} >= {"team-a", "team-b", "team-c", "team-d"}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-05, "0.00001"),
        (80.0, "80.0"),
        (80, "80.0"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e16, "10000000000000000.0"),
        (1.5e-10, "0.00000000015"),
        (-0.0, "0.0"),
        (0.0, "0.0"),
    ],
)
def test_decimals_are_plain_with_a_point_and_read_back_exactly(value: float, text: str) -> None:
    assert decimal(value) == text
    assert float(decimal(value)) == value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="is not a finite number"):
        decimal(value)


def test_a_non_finite_line_names_the_line() -> None:
    line = _line(float("nan"), (0, 0, 0, 0), None)
    with pytest.raises(ValueError, match=r"ledger line 2026-11-03 x/p ns m: nan is not a finite"):
        focus_rows([((0, "2026-11-03", "x/p", "ns", "m"), line)], cluster="c")


@pytest.mark.parametrize("name", ["", "-dc", "dc 1", "dc/1", "x" * 64])
def test_bad_cluster_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="cluster name"):
        focus_rows([], cluster=name)


def test_csv_has_the_focus_columns_first_then_custom_ones_and_nulls_empty() -> None:
    assert len(MANDATORY_COLUMNS) == 21
    assert set(MANDATORY_COLUMNS) <= set(FOCUS_COLUMNS)
    assert list(FOCUS_COLUMNS) == sorted(FOCUS_COLUMNS)
    assert all(c.startswith("x_") for c in CUSTOM_COLUMNS)
    assert not any(c.startswith("x_") for c in FOCUS_COLUMNS)
    rows = rows_of(one_hour_ledger(), catalog=tiny_catalog())
    out = io.StringIO()
    assert write_csv(rows, out) == 1
    text = out.getvalue()
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    assert header == list(COLUMNS)
    (values,) = list(reader)
    record = dict(zip(header, values, strict=True))
    assert record["ChargeClass"] == ""
    assert record["BilledCost"] == rows[0]["BilledCost"]
    for column in DECIMAL_COLUMNS:
        assert re.fullmatch(r"[0-9]+\.[0-9]+", record[column]), (column, record[column])
    # a second export of the same lines is byte for byte the same
    again = io.StringIO()
    write_csv(rows_of(one_hour_ledger(), catalog=tiny_catalog()), again)
    assert again.getvalue() == text


def test_csv_writer_refuses_rows_with_other_columns() -> None:
    (row,) = rows_of(one_hour_ledger())
    del row["Tags"]
    with pytest.raises(ValueError, match=r"row 0 does not have the export's columns: \['Tags'\]"):
        write_csv([row], io.StringIO())


# -- a simulated month ----------------------------------------------------------------------

_MONTH: list[Ledger] = []


def simulated_month() -> Ledger:
    """November 2026 of the simulated cluster (booked once per test session)."""
    if not _MONTH:
        _MONTH.append(simulated_ledger(dt.datetime(2026, 11, 1, tzinfo=dt.UTC), 30))
    return _MONTH[0]


def assert_billed_cost_matches_reports(ledger: Ledger, rows: list[dict], period: str) -> None:
    """Σ BilledCost (and Σ tokens) of the rows of each CostProfile and namespace, and of each
    CostProfile as a whole, equal what a UsageReport of that period shows."""
    days = list(parse_period(period).days())
    in_period = [r for r in rows if r["ChargePeriodStart"][:10] in days]
    checked = 0
    for profile in (DATACENTER, WORKSTATION):
        mine = [r for r in in_period if r["x_CostProfile"] == profile]
        namespaces = sorted({r["x_Namespace"] for r in mine})
        for scope in [(), *((ns,) for ns in namespaces)]:
            figures = report_figures(ledger.lines_of(days), profile, scope)
            selected = [r for r in mine if not scope or r["x_Namespace"] in scope]
            billed = sum(float(r["BilledCost"]) for r in selected)
            assert billed == pytest.approx(figures.cost_usd, rel=1e-9, abs=0), (period, scope)
            tokens = sum(int(float(r["ConsumedQuantity"])) for r in selected)
            assert tokens == figures.input_tokens + figures.output_tokens
            checked += 1
    assert checked > 2


@pytest.mark.parametrize("period", ["2026-11", "2026-W47", "2026-11-05", "2026-11-01"])
def test_billed_cost_sums_equal_the_usage_report_figures(period: str) -> None:
    ledger = simulated_month()
    rows = rows_of(ledger, period, catalog=bundled_catalog())
    assert rows
    assert_billed_cost_matches_reports(ledger, rows, period)


def test_simulated_month_has_every_kind_of_row() -> None:
    rows = rows_of(simulated_month(), catalog=bundled_catalog())
    models = {r["x_Model"] for r in rows}
    assert {"(no-traffic)", "(non-inference)"} <= models
    assert UNALLOCATED in {r["x_Namespace"] for r in rows}
    assert {r["ChargePeriodStart"][:10] for r in rows} == set(parse_period("2026-11").days())
    assert any(r["x_CloudEquivalentModel"] for r in rows)
    assert any(r["x_CloudEquivalentModel"] is None and int(r["x_InputTokens"]) for r in rows)
    assert any(float(r["x_EstimatedEnergyKWh"]) > 0 for r in rows)


# -- the FinOps Foundation's validator (tox -e focus) ----------------------------------------


def _validator() -> Path:
    configured = os.environ.get("INFERCOST_FOCUS_VALIDATOR")
    required = os.environ.get("INFERCOST_REQUIRE_FOCUS_VALIDATOR") == "1"
    if not configured or not (Path(configured) / "bin" / "python").exists():
        message = (
            "focus-validator is not installed (tox -e focus installs it; or run "
            "hack/focus-validator install DIR and set INFERCOST_FOCUS_VALIDATOR=DIR)"
        )
        if required:
            pytest.fail(message)
        pytest.skip(message)
    return Path(configured)


@pytest.mark.focus
def test_a_month_export_passes_the_focus_validator(tmp_path: Path) -> None:
    validator = _validator()
    ledger = simulated_month()
    path = tmp_path / "infercost-2026-11.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        write_csv(rows_of(ledger, catalog=bundled_catalog()), out)
    with path.open(newline="", encoding="utf-8") as f:
        read_back = list(csv.DictReader(f))
    # what finance receives sums to what the UsageReports show
    rows = [{k: (v if v != "" else None) for k, v in r.items()} for r in read_back]
    assert_billed_cost_matches_reports(ledger, rows, "2026-11")
    assert all(r["InvoiceId"] == "infercost-dc1-2026-11" for r in rows)
    result = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "focus-validator"), "check", str(path)],
        env={**os.environ, "INFERCOST_FOCUS_VALIDATOR": str(validator)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    summaries = [line for line in result.stdout.splitlines() if "| Fail: " in line]
    assert len(summaries) == 2
    assert result.stdout.count("  0 failed rules") == 2


def _validator_script():
    loader = importlib.machinery.SourceFileLoader(
        "focus_validator_script", str(ROOT / "hack" / "focus-validator")
    )
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_only_unmet_alternatives_of_a_passed_or_rule_are_discounted() -> None:
    script = _validator_script()
    model = {
        "ModelRules": {
            "Nullable": {
                "ValidationCriteria": {
                    "Requirement": {
                        "CheckFunction": "OR",
                        "Items": [
                            {"CheckFunction": "CheckModelRule", "ModelRuleId": "MustBeNull"},
                            {"CheckFunction": "CheckModelRule", "ModelRuleId": "MustNotBeNull"},
                        ],
                    }
                }
            },
            "Both": {
                "ValidationCriteria": {
                    "Requirement": {
                        "CheckFunction": "AND",
                        "Items": [{"CheckFunction": "CheckModelRule", "ModelRuleId": "Typed"}],
                    }
                }
            },
        }
    }
    parents = script.or_alternatives(model)
    statuses = {
        "Nullable": "PASS",
        "MustBeNull": "FAIL",
        "MustNotBeNull": "PASS",
        "Both": "FAIL",
        "Typed": "FAIL",
    }
    real, discounted = script.classify(statuses, parents)
    assert discounted == {"MustBeNull": ["Nullable"]}
    assert real == ["Both", "Typed"]
    # when the OR rule itself fails, its alternatives count
    statuses.update(Nullable="FAIL", MustNotBeNull="FAIL")
    real, discounted = script.classify(statuses, parents)
    assert discounted == {}
    assert real == ["Both", "MustBeNull", "MustNotBeNull", "Nullable", "Typed"]


def test_validator_check_without_a_validator_says_how_to_install_it(tmp_path: Path) -> None:
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("BilledCost\n1.0\n")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "hack" / "focus-validator"),
            "check",
            str(csv_path),
            "--validator",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"run hack/focus-validator install {tmp_path / 'none'}" in result.stderr

"""The price catalog: the bundled figures, validation messages, staleness, family matching."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from infercost.collect.pricing import bundled_catalog
from infercost.engine.catalog import (
    OPEN_WEIGHT_FAMILY_ANNOTATION,
    Catalog,
    CatalogError,
    PriceEntry,
    catalog_from_document,
    family_of,
    is_stale,
    normalise_model_name,
)

OPENAI = "https://developers.openai.com/api/docs/pricing"
ANTHROPIC = "https://anthropic.com/pricing#api"
GOOGLE = "https://ai.google.dev/gemini-api/docs/pricing"
DATASET_SNAPSHOT = dt.date(2026, 8, 21)


# ---------------------------------------------------------------------------------------------
# the bundled catalog


def _entry(catalog: Catalog, provider: str, model: str) -> PriceEntry:
    (found,) = [e for e in catalog.entries if (e.provider, e.model) == (provider, model)]
    return found


def test_bundled_flagships_are_five_first_party_frontier_models() -> None:
    flagships = {(e.provider, e.model) for e in bundled_catalog().flagships}
    assert flagships == {
        ("openai", "gpt-5.5"),
        ("openai", "gpt-5.4"),
        ("anthropic", "claude-opus-5"),
        ("anthropic", "claude-sonnet-4.6"),
        ("google", "gemini-3.1-pro-preview"),
    }


def test_bundled_catalog_covers_the_first_party_apis_and_open_weight_hosts() -> None:
    providers = {e.provider for e in bundled_catalog().entries}
    assert providers == {
        "openai",
        "anthropic",
        "google",
        "together",
        "bedrock",
        "groq",
        "fireworks",
        "deepseek",
        "mistral",
        "openrouter",
        "huggingface-together",
    }
    assert bundled_catalog().families == {
        "llama-3.3-70b",
        "llama-3.1-70b",
        "llama-3.1-405b",
        "llama-3.1-8b",
        "llama-4-maverick-17b-128e",
        "qwen3-235b-a22b",
        "qwen3-32b",
        "qwen2.5-72b",
        "gpt-oss-120b",
        "gpt-oss-20b",
        "deepseek-v3.2",
        "deepseek-v3",
        "mistral-large-3-675b",
    }


@pytest.mark.parametrize(
    ("provider", "model", "input_", "cached", "output", "checked", "source"),
    [
        # Figures as ecosystem.md §7 lists them (genai-prices @ 47df840).
        ("openai", "gpt-5.5", 5.00, 0.50, 30.00, dt.date(2026, 4, 24), OPENAI),
        ("openai", "gpt-4.1-nano", 0.10, 0.025, 0.40, dt.date(2025, 7, 4), OPENAI),
        ("anthropic", "claude-opus-4.1", 15.00, 1.50, 75.00, dt.date(2026, 7, 29), ANTHROPIC),
        ("anthropic", "claude-sonnet-5", 2.00, 0.20, 10.00, dt.date(2026, 7, 29), ANTHROPIC),
        ("google", "gemini-2.5-flash-lite", 0.10, 0.01, 0.40, dt.date(2025, 10, 31), GOOGLE),
        ("google", "gemini-3.5-flash", 1.50, 0.15, 9.00, dt.date(2026, 5, 19), GOOGLE),
        (
            "together",
            "llama-3.3-70b-instruct-turbo",
            0.88,
            None,
            0.88,
            dt.date(2025, 7, 3),
            "https://together.ai/pricing",
        ),
        (
            "groq",
            "llama-3.3-70b-versatile",
            0.59,
            None,
            0.79,
            dt.date(2025, 8, 12),
            "https://groq.com/pricing/",
        ),
        # "n/d" in the dataset: its snapshot date stands in.
        (
            "bedrock",
            "llama-3.3-70b-instruct",
            0.72,
            None,
            0.72,
            DATASET_SNAPSHOT,
            "https://aws.amazon.com/bedrock/pricing",
        ),
        (
            "fireworks",
            "gpt-oss-120b",
            0.15,
            0.014,
            0.60,
            dt.date(2026, 8, 4),
            "https://fireworks.ai/pricing",
        ),
        (
            "groq",
            "gpt-oss-20b",
            0.075,
            None,
            0.30,
            dt.date(2025, 8, 6),
            "https://groq.com/pricing/",
        ),
        (
            "deepseek",
            "deepseek-v4-pro",
            0.435,
            0.0036,
            0.87,
            dt.date(2026, 6, 2),
            "https://api-docs.deepseek.com/quick_start/pricing",
        ),
        (
            "mistral",
            "mistral-large-2512",
            0.50,
            0.05,
            1.50,
            dt.date(2026, 6, 9),
            "https://mistral.ai/pricing#api-pricing",
        ),
    ],
)
def test_bundled_prices_match_the_reference(
    provider: str,
    model: str,
    input_: float,
    cached: float | None,
    output: float,
    checked: dt.date,
    source: str,
) -> None:
    entry = _entry(bundled_catalog(), provider, model)
    assert (entry.input_per_mtok, entry.cached_input_per_mtok, entry.output_per_mtok) == (
        input_,
        cached,
        output,
    )
    assert (entry.checked, entry.source) == (checked, source)


def test_bundled_entries_were_checked_no_later_than_the_dataset_snapshot() -> None:
    late = [e.key for e in bundled_catalog().entries if e.checked > DATASET_SNAPSHOT]
    assert late == []


def test_cached_input_without_a_cache_price_is_priced_as_input() -> None:
    catalog = bundled_catalog()
    assert (
        _entry(catalog, "together", "llama-3.1-8b-instruct").effective_cached_input_per_mtok == 0.18
    )
    assert _entry(catalog, "openai", "gpt-5").effective_cached_input_per_mtok == 0.125


# ---------------------------------------------------------------------------------------------
# validation


def _raw(provider: str, model: str, **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "input": 1.0,
        "output": 2.0,
        "source": "https://example.com/pricing",
        "checked": dt.date(2026, 8, 1),
    }
    raw.update(fields)
    return raw


def _document(*extra: dict[str, Any]) -> dict[str, Any]:
    """Five flagships (entries 0-4), then ``extra``."""
    flagships = [_raw("vendor", f"frontier-{i}", flagship=True) for i in range(5)]
    return {"entries": [*flagships, *extra]}


def test_a_valid_document_keeps_entries_in_order_with_their_fields() -> None:
    doc = _document(
        _raw(
            "host",
            "llama-70b",
            openWeight="llama-3.3-70b",
            cachedInput=0.1,
            input=0,
            checked="2026-02-03",
        )
    )
    catalog = catalog_from_document(doc)
    assert [e.model for e in catalog.entries] == [
        "frontier-0",
        "frontier-1",
        "frontier-2",
        "frontier-3",
        "frontier-4",
        "llama-70b",
    ]
    host = catalog.entries[5]
    assert host == PriceEntry(
        provider="host",
        model="llama-70b",
        input_per_mtok=0.0,
        output_per_mtok=2.0,
        cached_input_per_mtok=0.1,
        source="https://example.com/pricing",
        checked=dt.date(2026, 2, 3),
        open_weight="llama-3.3-70b",
    )
    assert catalog.for_family("llama-3.3-70b") == (host,)


def _without(field: str) -> dict[str, Any]:
    raw = _raw("host", "m")
    del raw[field]
    return raw


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            _without("input"),
            "price catalog: entry 5 (host/m): field input: missing (required)",
        ),
        (
            _without("checked"),
            "price catalog: entry 5 (host/m): field checked: missing (required)",
        ),
        (
            {k: v for k, v in _raw("host", "m").items() if k != "provider"},
            "price catalog: entry 5: field provider: missing (required)",
        ),
        (
            _raw("host", "m", output=-0.5),
            "price catalog: entry 5 (host/m): field output: "
            "expected a price >= 0 (USD per 1M tokens), got -0.5",
        ),
        (
            _raw("host", "m", cachedInput=-1),
            "price catalog: entry 5 (host/m): field cachedInput: "
            "expected a price >= 0 (USD per 1M tokens), got -1.0",
        ),
        (
            _raw("host", "m", input="0.88"),
            "price catalog: entry 5 (host/m): field input: "
            "expected a number (USD per 1M tokens), got '0.88'",
        ),
        (
            _raw("host", "m", input=True),
            "price catalog: entry 5 (host/m): field input: "
            "expected a number (USD per 1M tokens), got True",
        ),
        (
            _raw("host", "m", checked="2026-13-01"),
            "price catalog: entry 5 (host/m): field checked: "
            "expected a date YYYY-MM-DD, got '2026-13-01'",
        ),
        (
            _raw("host", "m", checked=20260801),
            "price catalog: entry 5 (host/m): field checked: "
            "expected a date YYYY-MM-DD, got 20260801",
        ),
        (
            _raw("host", "m", cached_input=0.1),
            "price catalog: entry 5 (host/m): field cached_input: unknown field; expected one of "
            "provider, model, input, cachedInput, output, openWeight, flagship, source, checked",
        ),
        (
            _raw("host", "m", source="together.ai/pricing"),
            "price catalog: entry 5 (host/m): field source: "
            "expected an http(s) URL, got 'together.ai/pricing'",
        ),
        (
            _raw("host", "m", flagship="yes please"),
            "price catalog: entry 5 (host/m): field flagship: expected true or false, "
            "got 'yes please'",
        ),
        (
            _raw("host", "m", openWeight="Llama-3.3-70B-Instruct"),
            "price catalog: entry 5 (host/m): field openWeight: expected a family name in normal "
            "form such as llama-3.3-70b, got 'Llama-3.3-70B-Instruct' (write 'llama-3.3-70b')",
        ),
        (
            _raw("host", "  "),
            "price catalog: entry 5 (host/  ): field model: expected a non-empty string",
        ),
        (
            "just a string",
            "price catalog: entry 5: expected a mapping, got a string",
        ),
        (
            _raw("vendor", "FRONTIER-2"),
            "price catalog: entry 5 (vendor/FRONTIER-2): "
            "duplicate provider+model, already listed as entry 2",
        ),
    ],
)
def test_a_bad_entry_is_named_with_its_field(extra: Any, message: str) -> None:
    with pytest.raises(CatalogError) as caught:
        catalog_from_document(_document(extra))
    assert str(caught.value) == message
    assert caught.value.index == 5


def test_a_flagship_cannot_also_be_an_open_weight_equivalent() -> None:
    doc = _document()
    doc["entries"][3]["openWeight"] = "llama-3.3-70b"
    with pytest.raises(CatalogError) as caught:
        catalog_from_document(doc, origin="ConfigMap infercost-pricing key pricing.yaml")
    assert str(caught.value) == (
        "ConfigMap infercost-pricing key pricing.yaml: entry 3 (vendor/frontier-3): "
        "field openWeight: a flagship entry covers the whole report and takes no open-weight "
        "family"
    )
    assert (caught.value.index, caught.value.entry, caught.value.field) == (
        3,
        "vendor/frontier-3",
        "openWeight",
    )


@pytest.mark.parametrize("count", [0, 4, 6])
def test_a_catalog_needs_exactly_five_flagships(count: int) -> None:
    entries = [_raw("vendor", f"m{i}", flagship=i < count) for i in range(7)]
    with pytest.raises(CatalogError) as caught:
        catalog_from_document({"entries": entries})
    named = ", ".join(f"{i} (vendor/m{i})" for i in range(count))
    assert str(caught.value) == (
        f"price catalog: expected exactly 5 entries with flagship: true, found {count}"
        + (f": entries {named}" if count else "")
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (None, "price catalog: expected a mapping with an 'entries' list, got nothing"),
        ([1, 2], "price catalog: expected a mapping with an 'entries' list, got a list"),
        ({"prices": []}, "price catalog: unknown top-level key(s) prices; expected only 'entries'"),
        ({"entries": "all"}, "price catalog: 'entries': expected a list, got a string"),
        ({}, "price catalog: 'entries': expected a list, got nothing"),
    ],
)
def test_a_malformed_document_says_what_shape_was_expected(document: Any, message: str) -> None:
    with pytest.raises(CatalogError) as caught:
        catalog_from_document(document)
    assert str(caught.value) == message


def test_validation_does_not_modify_the_document() -> None:
    doc = _document(_raw("host", "m", checked="2026-02-03"))
    before = copy.deepcopy(doc)
    catalog_from_document(doc)
    assert doc == before


# ---------------------------------------------------------------------------------------------
# staleness


def _checked(on: dt.date) -> PriceEntry:
    return PriceEntry("p", "m", 1.0, 1.0, "https://example.com", on)


def test_an_entry_is_stale_only_after_180_days() -> None:
    entry = _checked(dt.date(2026, 1, 1))
    # 2026-01-01 + 180 days = 2026-06-30 (31 + 28 + 31 + 30 + 31 + 29 days).
    assert not is_stale(entry, dt.date(2026, 6, 30))
    assert is_stale(entry, dt.date(2026, 7, 1))
    assert not is_stale(entry, dt.date(2025, 12, 1))
    assert is_stale(entry, dt.date(2026, 1, 31), max_age_days=29)


def test_staleness_counts_the_utc_date_of_the_report_time() -> None:
    entry = _checked(dt.date(2026, 1, 1))
    # 00:30 at UTC+2 on July 1st is still June 30th in UTC.
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert not is_stale(entry, dt.datetime(2026, 7, 1, 0, 30, tzinfo=plus_two))
    assert is_stale(entry, dt.datetime(2026, 7, 1, 0, 30, tzinfo=dt.UTC))
    with pytest.raises(ValueError, match="naive datetime"):
        is_stale(entry, dt.datetime(2026, 7, 1))


def test_the_oldest_bundled_prices_are_stale_at_the_dataset_snapshot() -> None:
    stale = {e.key for e in bundled_catalog().entries if is_stale(e, DATASET_SNAPSHOT)}
    assert "openai/gpt-4o" in stale  # checked 2025-07-04
    assert "together/llama-3.3-70b-instruct-turbo" in stale  # checked 2025-07-03
    assert "anthropic/claude-opus-5" not in stale  # checked 2026-07-29
    assert "google/gemini-3.1-pro-preview" not in stale  # 2026-02-23: 179 days


# ---------------------------------------------------------------------------------------------
# families


@pytest.mark.parametrize(
    ("served", "family"),
    [
        # vLLM / SGLang: the Hugging Face repository id is the default served name.
        ("meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("meta-llama/Llama-3.1-405B-Instruct-FP8", "llama-3.1-405b"),
        ("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", "llama-3.3-70b"),
        ("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "llama-3.1-70b"),
        ("casperhansen/llama-3.3-70b-instruct-awq", "llama-3.3-70b"),
        ("unsloth/Llama-3.3-70B-Instruct-bnb-4bit", "llama-3.3-70b"),
        ("meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8", "llama-4-maverick-17b-128e"),
        ("Qwen/Qwen3-32B", "qwen3-32b"),
        ("Qwen/Qwen3-32B-AWQ", "qwen3-32b"),
        ("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "qwen3-235b-a22b"),
        ("Qwen/Qwen2.5-72B-Instruct-GPTQ-Int4", "qwen2.5-72b"),
        ("openai/gpt-oss-120b", "gpt-oss-120b"),
        ("deepseek-ai/DeepSeek-V3.2", "deepseek-v3.2"),
        ("deepseek-ai/DeepSeek-V3-0324", "deepseek-v3"),
        ("mistralai/Mistral-Large-3-675B-Instruct-2512", "mistral-large-3-675b"),
        # vLLM with --served-model-name, or a local model directory.
        ("/models/Llama-3.3-70B-Instruct/", "llama-3.3-70b"),
        ("llama-3.3-70b", "llama-3.3-70b"),
        # llama.cpp: the alias defaults to the GGUF file path.
        ("/models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "llama-3.1-8b"),
        ("Llama-3.3-70B-Instruct-UD-Q4_K_XL.gguf", "llama-3.3-70b"),
        ("gpt-oss-120b-mxfp4-00001-of-00003.gguf", "gpt-oss-120b"),
        ("Qwen3-32B-Q8_0.gguf", "qwen3-32b"),
        ("qwen2.5-72b-instruct-iq4_xs.gguf", "qwen2.5-72b"),
        ("bartowski/Llama-3.3-70B-Instruct-GGUF", "llama-3.3-70b"),
        ("llama3.1:8b-instruct-q4_K_M", "llama-3.1-8b"),
        # NVIDIA NIM model names.
        ("meta/llama-3.3-70b-instruct", "llama-3.3-70b"),
        ("meta/llama-3.1-8b-instruct", "llama-3.1-8b"),
        # Not in the catalog: fine-tunes, other sizes, other families.
        ("nvidia/llama-3.3-nemotron-super-49b-v1", None),
        ("meta-llama/Llama-3.2-3B-Instruct", None),
        ("google/gemma-3-27b-it", None),
        ("TheBloke/Llama-2-7B-Chat-GGUF", None),
        ("", None),
    ],
)
def test_served_names_map_to_catalog_families(served: str, family: str | None) -> None:
    assert family_of(served, catalog=bundled_catalog()) == family


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("google/gemma-3-27b-it", "gemma-3-27b"),
        ("llama-2-7b-chat.Q4_K_M.gguf", "llama-2-7b"),
        ("Mixtral 8x7B Instruct", "mixtral-8x7b"),
        ("nvidia/llama-3.3-nemotron-super-49b-v1", "llama-3.3-nemotron-super-49b-v1"),
    ],
)
def test_normal_form_of_names_outside_the_catalog(name: str, normal: str) -> None:
    assert normalise_model_name(name) == normal


def test_the_annotation_wins_over_the_served_name() -> None:
    catalog = bundled_catalog()
    assert OPEN_WEIGHT_FAMILY_ANNOTATION == "infercost.ai/open-weight-family"
    served = "meta-llama/Llama-3.3-70B-Instruct"
    # A distilled model served under a misleading name: the annotation decides.
    assert family_of(served, "llama-3.1-8b", catalog=catalog) == "llama-3.1-8b"
    # Written like a served name, it is normalised the same way.
    assert family_of("acme/support-bot", "Qwen/Qwen3-32B", catalog=catalog) == "qwen3-32b"
    # An annotation the catalog does not know means no family, not the name's.
    assert family_of(served, "acme-internal-7b", catalog=catalog) is None
    # A blank annotation is no annotation.
    assert family_of(served, "  ", catalog=catalog) == "llama-3.3-70b"


def test_families_come_from_the_catalog_in_use() -> None:
    doc = _document(_raw("host", "ft", openWeight="acme-support-7b"))
    custom = catalog_from_document(doc)
    assert family_of("acme/Acme-Support-7B-Instruct-AWQ", catalog=custom) == "acme-support-7b"
    assert family_of("meta-llama/Llama-3.3-70B-Instruct", catalog=custom) is None

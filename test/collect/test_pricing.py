"""Price catalogs read from YAML: the bundled file and the infercost-pricing ConfigMap."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from infercost.collect.pricing import (
    PRICING_KEY,
    bundled_catalog,
    parse_catalog_yaml,
    parse_pricing_configmap,
)
from infercost.engine.catalog import CatalogError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "pricing.md"
PREFIX = "ConfigMap infercost-pricing key pricing.yaml: "


def _documented_configmap() -> dict[str, str]:
    """The example ConfigMap of docs/pricing.md, as the API would return its ``data``."""
    block = re.search(r"```yaml\n(apiVersion: v1\nkind: ConfigMap\n.*?)```", DOCS.read_text(), re.S)
    assert block is not None, "docs/pricing.md lost its example ConfigMap"
    configmap = yaml.safe_load(block.group(1))
    assert configmap["metadata"]["name"] == "infercost-pricing"
    data: dict[str, str] = configmap["data"]
    return data


def test_the_bundled_catalog_loads_once() -> None:
    catalog = bundled_catalog()
    assert len(catalog.entries) == 59
    assert catalog.origin == "bundled catalog infercost/engine/catalog.yaml"
    assert bundled_catalog() is catalog


def test_the_documented_configmap_replaces_the_catalog() -> None:
    catalog = parse_pricing_configmap(_documented_configmap())
    assert [e.key for e in catalog.flagships] == [
        "openai/gpt-5.5",
        "openai/gpt-5-mini",
        "anthropic/claude-opus-5",
        "anthropic/claude-haiku-4.5",
        "google/gemini-2.5-flash",
    ]
    assert catalog.families == {"llama-3.3-70b"}
    (groq,) = catalog.for_family("llama-3.3-70b")
    assert (groq.input_per_mtok, groq.output_per_mtok, groq.cached_input_per_mtok) == (
        0.59,
        0.79,
        None,
    )
    assert groq.checked == dt.date(2025, 8, 12)


def test_the_bundled_file_works_as_an_override() -> None:
    from importlib import resources

    text = resources.files("infercost.engine").joinpath("catalog.yaml").read_text("utf-8")
    override = parse_pricing_configmap({PRICING_KEY: text})
    assert override.entries == bundled_catalog().entries
    assert override.origin == "ConfigMap infercost-pricing key pricing.yaml"


def _documented_text() -> str:
    return _documented_configmap()[PRICING_KEY]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # The messages docs/pricing.md shows.
        (
            lambda t: t.replace("input: 0.59", "input: -0.59"),
            "entry 5 (groq/llama-3.3-70b-versatile): field input: "
            "expected a price >= 0 (USD per 1M tokens), got -0.59",
        ),
        (
            lambda t: t.replace("model: gemini-2.5-flash\n    flagship: true\n", "model: gemini\n"),
            "expected exactly 5 entries with flagship: true, found 4: entries 0 (openai/gpt-5.5), "
            "1 (openai/gpt-5-mini), 2 (anthropic/claude-opus-5), 3 (anthropic/claude-haiku-4.5)",
        ),
        (
            lambda t: t.replace("  model: gpt-5-mini\n", "  model: gpt-5-mini\n   x: 1\n", 1),
            "not valid YAML at line 12 column 4: expected <block end>, "
            "but found '<block mapping start>'",
        ),
        # Others a hand-edited ConfigMap runs into.
        (
            lambda t: t.replace("checked: 2025-08-12", "checked: 12.08.2025"),
            "entry 5 (groq/llama-3.3-70b-versatile): field checked: "
            "expected a date YYYY-MM-DD, got '12.08.2025'",
        ),
        (
            lambda t: t.replace("input: 0.59", 'input: "0.59"'),
            "entry 5 (groq/llama-3.3-70b-versatile): field input: "
            "expected a number (USD per 1M tokens), got '0.59'",
        ),
        (
            lambda t: t.replace("model: llama-3.3-70b-versatile", "model: gpt-5.5").replace(
                "provider: groq", "provider: OpenAI"
            ),
            "entry 5 (OpenAI/gpt-5.5): duplicate provider+model, already listed as entry 0",
        ),
        (lambda t: "", "expected a mapping with an 'entries' list, got nothing"),
    ],
)
def test_a_bad_configmap_is_rejected_naming_key_entry_and_field(
    edit: Callable[[str], str], message: str
) -> None:
    text = edit(_documented_text())
    assert text != _documented_text()
    with pytest.raises(ValueError) as caught:
        parse_pricing_configmap({PRICING_KEY: text})
    assert isinstance(caught.value, CatalogError)
    assert str(caught.value) == PREFIX + message


def test_a_configmap_without_the_key_names_the_keys_it_has() -> None:
    with pytest.raises(CatalogError) as caught:
        parse_pricing_configmap({"prices.yaml": _documented_text()})
    assert str(caught.value) == (
        "ConfigMap infercost-pricing: missing key pricing.yaml (keys present: prices.yaml)"
    )
    with pytest.raises(CatalogError) as caught:
        parse_pricing_configmap(None, name="team-prices")
    assert (
        str(caught.value) == "ConfigMap team-prices: missing key pricing.yaml (keys present: none)"
    )


def test_the_configmap_name_is_the_one_the_operator_watches() -> None:
    with pytest.raises(CatalogError) as caught:
        parse_pricing_configmap({PRICING_KEY: "entries: []"}, name="team-prices")
    assert str(caught.value) == (
        "ConfigMap team-prices key pricing.yaml: "
        "expected exactly 5 entries with flagship: true, found 0"
    )


def test_yaml_text_errors_carry_the_origin() -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog_yaml("entries: [", origin="pricing.yaml in the repo")
    assert str(caught.value).startswith("pricing.yaml in the repo: not valid YAML at line 1")

"""Reading price catalogs from YAML: the bundled ``catalog.yaml`` and the live override.

The catalog's data model and rules live in :mod:`infercost.engine.catalog`; the engine parses no
text (it uses numpy and attrs only), so the YAML step lives here, the lowest package that may
both import PyYAML and build engine values. Nothing here watches or fetches: the pricing watcher
in :mod:`infercost.controllers` passes a ConfigMap's ``data`` to :func:`parse_pricing_configmap`
and keeps its previous catalog when that raises.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources

import yaml

from infercost.engine.catalog import Catalog, CatalogError, catalog_from_document

PRICING_CONFIGMAP = "infercost-pricing"
"""Default name of the ConfigMap, in the operator namespace, that replaces the bundled catalog."""
PRICING_KEY = "pricing.yaml"
"""The key of that ConfigMap holding the catalog, in the bundled catalog's format."""
BUNDLED_ORIGIN = "bundled catalog infercost/engine/catalog.yaml"


def parse_catalog_yaml(text: str, *, origin: str = "price catalog") -> Catalog:
    """Parse and validate a catalog written in YAML; errors name ``origin``, entry and field."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = ""
        mark = getattr(err, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1} column {mark.column + 1}"
        problem = getattr(err, "problem", None) or type(err).__name__
        raise CatalogError(f"not valid YAML{where}: {problem}", origin=origin) from None
    return catalog_from_document(document, origin=origin)


@functools.cache
def bundled_catalog() -> Catalog:
    """The catalog shipped with InferCost (package data ``infercost/engine/catalog.yaml``)."""
    text = resources.files("infercost.engine").joinpath("catalog.yaml").read_text("utf-8")
    return parse_catalog_yaml(text, origin=BUNDLED_ORIGIN)


def parse_pricing_configmap(
    data: Mapping[str, str] | None, *, name: str = PRICING_CONFIGMAP
) -> Catalog:
    """The catalog in a pricing ConfigMap's ``data`` (key :data:`PRICING_KEY`).

    Raises :class:`~infercost.engine.catalog.CatalogError` (a ``ValueError``) whose message
    starts ``ConfigMap <name> key pricing.yaml`` and names the entry and field; the caller keeps
    its previous catalog and reports the message in a Warning Event.
    """
    if not data or PRICING_KEY not in data:
        present = ", ".join(sorted(data or {})) or "none"
        raise CatalogError(
            f"missing key {PRICING_KEY} (keys present: {present})", origin=f"ConfigMap {name}"
        )
    return parse_catalog_yaml(data[PRICING_KEY], origin=f"ConfigMap {name} key {PRICING_KEY}")

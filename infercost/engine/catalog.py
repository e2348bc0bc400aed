"""The cloud price catalog (SPEC §6.2): immutable entries, their validation, family matching.

A catalog is a list of cloud API list prices (USD per 1M tokens) that reports compare on-prem cost
with. This module owns the data model and every rule about it: which fields an entry has and what
values they accept, that a catalog has exactly :data:`FLAGSHIP_COUNT` flagships and no duplicate
provider+model, when an entry is stale, and how a served model name maps to an open-weight family.

It parses no text. :func:`catalog_from_document` validates the plain data a YAML or JSON parser
produced (mappings, lists, strings, numbers, dates); reading ``catalog.yaml`` and the
``infercost-pricing`` ConfigMap lives in :mod:`infercost.collect.pricing`, because the engine uses
no library beyond numpy and attrs. Every error names the entry (its index and provider/model) and
the field, so a rejected ConfigMap can be fixed from its Event alone.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence

import attrs

FLAGSHIP_COUNT = 5
"""Every catalog marks exactly this many first-party entries that every report compares with."""
STALE_AFTER_DAYS = 180
"""An entry checked longer ago than this, at a report's time, is flagged stale."""
OPEN_WEIGHT_FAMILY_ANNOTATION = "infercost.ai/open-weight-family"
"""Pod annotation naming the open-weight family of the model it serves; wins over the name."""

FIELDS = (
    "provider",
    "model",
    "input",
    "cachedInput",
    "output",
    "openWeight",
    "flagship",
    "source",
    "checked",
)
"""The fields of a catalog entry, as written in the YAML."""


class CatalogError(ValueError):
    """A catalog document that cannot be used; the message names where and what was expected.

    ``index`` (0-based position in ``entries``), ``entry`` (``provider/model`` when known) and
    ``field`` are also kept as attributes for callers that report them separately.
    """

    def __init__(
        self,
        problem: str,
        *,
        origin: str = "price catalog",
        index: int | None = None,
        entry: str | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.origin = origin
        self.index = index
        self.entry = entry
        self.field = field
        where = [origin]
        if index is not None:
            where.append(f"entry {index}" + (f" ({entry})" if entry else ""))
        if field is not None:
            where.append(f"field {field}")
        super().__init__(": ".join([*where, problem]))


@attrs.frozen
class PriceEntry:
    """One cloud model's list prices, USD per 1M tokens.

    ``cached_input_per_mtok`` is the cache-read price; ``None`` when the provider lists none, in
    which case cached tokens are priced as input. ``open_weight`` is the family of a hosted
    open-weight model (``llama-3.3-70b``), matched against on-prem models; flagships (first-party
    models every report compares with) carry none.
    """

    provider: str
    model: str
    input_per_mtok: float
    output_per_mtok: float
    source: str
    checked: dt.date
    cached_input_per_mtok: float | None = None
    open_weight: str | None = None
    flagship: bool = False

    def __attrs_post_init__(self) -> None:
        for name, value in (("provider", self.provider), ("model", self.model)):
            if not value.strip():
                raise _EntryFieldError(name, "expected a non-empty string")
        for name, price in (
            ("input", self.input_per_mtok),
            ("cachedInput", self.cached_input_per_mtok),
            ("output", self.output_per_mtok),
        ):
            if price is not None and not (math.isfinite(price) and price >= 0):
                raise _EntryFieldError(
                    name, f"expected a price >= 0 (USD per 1M tokens), got {price}"
                )
        if not self.source.startswith(("https://", "http://")):
            raise _EntryFieldError("source", f"expected an http(s) URL, got {self.source!r}")
        if isinstance(self.checked, dt.datetime):
            raise _EntryFieldError("checked", f"expected a date, got a time {self.checked}")
        if self.open_weight is not None:
            family = normalise_model_name(self.open_weight)
            if family != self.open_weight:
                raise _EntryFieldError(
                    "openWeight",
                    f"expected a family name in normal form such as llama-3.3-70b, got "
                    f"{self.open_weight!r} (write {family!r})",
                )
            if self.flagship:
                raise _EntryFieldError(
                    "openWeight",
                    "a flagship entry covers the whole report and takes no open-weight family",
                )

    @property
    def key(self) -> str:
        """``provider/model``, how messages name the entry."""
        return f"{self.provider}/{self.model}"

    @property
    def effective_cached_input_per_mtok(self) -> float:
        """The price of a cached input token: the cache-read price, else the input price."""
        if self.cached_input_per_mtok is None:
            return self.input_per_mtok
        return self.cached_input_per_mtok


class _EntryFieldError(CatalogError):
    """Raised by :class:`PriceEntry` itself; the loader adds where the entry is."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem, field=field)


@attrs.frozen
class Catalog:
    """A whole price catalog: entries in document order, at most one per provider+model
    (compared case-insensitively), exactly :data:`FLAGSHIP_COUNT` of them flagships."""

    entries: tuple[PriceEntry, ...]
    origin: str = "price catalog"

    def __attrs_post_init__(self) -> None:
        seen: dict[tuple[str, str], int] = {}
        for index, entry in enumerate(self.entries):
            ident = (entry.provider.casefold(), entry.model.casefold())
            if ident in seen:
                raise CatalogError(
                    f"duplicate provider+model, already listed as entry {seen[ident]}",
                    origin=self.origin,
                    index=index,
                    entry=entry.key,
                )
            seen[ident] = index
        flagships = [f"{i} ({e.key})" for i, e in enumerate(self.entries) if e.flagship]
        if len(flagships) != FLAGSHIP_COUNT:
            listed = ": entries " + ", ".join(flagships) if flagships else ""
            raise CatalogError(
                f"expected exactly {FLAGSHIP_COUNT} entries with flagship: true, "
                f"found {len(flagships)}{listed}",
                origin=self.origin,
            )

    @property
    def flagships(self) -> tuple[PriceEntry, ...]:
        return tuple(e for e in self.entries if e.flagship)

    @property
    def families(self) -> frozenset[str]:
        """Every open-weight family some entry is tagged with."""
        return frozenset(e.open_weight for e in self.entries if e.open_weight is not None)

    def for_family(self, family: str) -> tuple[PriceEntry, ...]:
        """The entries hosting ``family``, in document order."""
        return tuple(e for e in self.entries if e.open_weight == family)


def is_stale(
    entry: PriceEntry, today: dt.date | dt.datetime, max_age_days: int = STALE_AFTER_DAYS
) -> bool:
    """Whether ``entry`` was checked more than ``max_age_days`` days before ``today``.

    An aware ``datetime`` counts by its UTC date (report periods are UTC).
    """
    if isinstance(today, dt.datetime):
        if today.tzinfo is None:
            raise ValueError(f"naive datetime {today.isoformat()}: pass an aware (UTC) time")
        today = today.astimezone(dt.UTC).date()
    return (today - entry.checked).days > max_age_days


# ---------------------------------------------------------------------------------------------
# loading plain documents


def catalog_from_document(document: object, *, origin: str = "price catalog") -> Catalog:
    """Validate a parsed catalog document into a :class:`Catalog`.

    The document is a mapping with one key, ``entries``: a list of mappings with the fields of
    :data:`FIELDS`. Prices are numbers (YAML ints or floats), ``checked`` a date or an ISO
    ``YYYY-MM-DD`` string. Unknown fields are errors, so a misspelt ``cached_input`` cannot
    silently price cached tokens as input. Raises :class:`CatalogError` naming ``origin``, the
    entry and the field.
    """
    if not isinstance(document, Mapping):
        raise CatalogError(
            f"expected a mapping with an 'entries' list, got {_kind(document)}", origin=origin
        )
    unknown = sorted(str(k) for k in document if k != "entries")
    if unknown:
        raise CatalogError(
            f"unknown top-level key(s) {', '.join(unknown)}; expected only 'entries'",
            origin=origin,
        )
    entries = document.get("entries")
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        raise CatalogError(f"'entries': expected a list, got {_kind(entries)}", origin=origin)
    parsed = [_entry_from_mapping(raw, index, origin) for index, raw in enumerate(entries)]
    return Catalog(tuple(parsed), origin=origin)


def _entry_from_mapping(raw: object, index: int, origin: str) -> PriceEntry:
    if not isinstance(raw, Mapping):
        raise CatalogError(f"expected a mapping, got {_kind(raw)}", origin=origin, index=index)
    provider, model = raw.get("provider"), raw.get("model")
    name = f"{provider}/{model}" if isinstance(provider, str) and isinstance(model, str) else None

    def problem(field: str, text: str) -> CatalogError:
        return CatalogError(text, origin=origin, index=index, entry=name, field=field)

    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:
        raise problem(unknown[0], f"unknown field; expected one of {', '.join(FIELDS)}")
    for field in ("provider", "model", "input", "output", "source", "checked"):
        if raw.get(field) is None:
            raise problem(field, "missing (required)")

    def text(field: str) -> str:
        value = raw[field]
        if not isinstance(value, str):
            raise problem(field, f"expected a string, got {_kind(value)} {value!r}")
        return value

    def price(field: str) -> float:
        value = raw[field]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise problem(field, f"expected a number (USD per 1M tokens), got {value!r}")
        return float(value)

    checked = raw["checked"]
    if isinstance(checked, str):
        try:
            checked = dt.date.fromisoformat(checked)
        except ValueError:
            raise problem("checked", f"expected a date YYYY-MM-DD, got {checked!r}") from None
    if isinstance(checked, dt.datetime) or not isinstance(checked, dt.date):
        raise problem("checked", f"expected a date YYYY-MM-DD, got {checked!r}")
    flagship = raw.get("flagship", False)
    if not isinstance(flagship, bool):
        raise problem("flagship", f"expected true or false, got {flagship!r}")
    open_weight = raw.get("openWeight")
    if open_weight is not None and (not isinstance(open_weight, str) or not open_weight):
        raise problem(
            "openWeight", f"expected a family name such as llama-3.3-70b, got {open_weight!r}"
        )

    try:
        return PriceEntry(
            provider=text("provider"),
            model=text("model"),
            input_per_mtok=price("input"),
            output_per_mtok=price("output"),
            cached_input_per_mtok=None if raw.get("cachedInput") is None else price("cachedInput"),
            source=text("source"),
            checked=checked,
            open_weight=open_weight,
            flagship=flagship,
        )
    except _EntryFieldError as err:
        raise problem(err.field or "?", err.problem) from None


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Sequence):
        return "a list"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# open-weight families

# Applied in order to the lowercased last path component; see docs/pricing.md.
_SEPARATORS = re.compile(r"[\s_:]+")
_DASHES = re.compile(r"-{2,}")
_EXTENSION = re.compile(r"\.(gguf|bin|safetensors)$")
# One trailing tag that does not change which model it is: chat/instruction tuning markers,
# quantisation and file formats, release dates (2507, 20250714), GGUF shard numbers.
_SUFFIX = re.compile(
    r"(?:-(?:instruct|chat|hf|it|turbo|dynamic|ud|awq|gptq|exl2|gguf|bnb|unsloth"
    r"|fp8|fp16|bf16|nvfp4|mxfp4|int4|int8|w4a16|w8a8|w8a16|[48]bit"
    r"|\d{4}|\d{8}|\d{5}-of-\d{5})"
    r"|[-.]i?q\d(?:-k)?(?:-(?:xxs|xs|s|m|l|xl|0|1))?)$"
)
_META_PREFIX = re.compile(r"^meta-(?=llama)")
_LLAMA_GLUED = re.compile(r"^llama(?=\d)")


def normalise_model_name(name: str) -> str:
    """The family form of a served model name: ``meta-llama/Llama-3.3-70B-Instruct`` →
    ``llama-3.3-70b``.

    Rules, in order: keep the last ``/`` path component (drops an org prefix or a model
    directory); lowercase; drop a ``.gguf`` / ``.bin`` / ``.safetensors`` extension; turn
    whitespace, ``_`` and ``:`` into ``-`` (so ``Q4_K_M`` is ``q4-k-m`` and Ollama's
    ``llama3.1:8b`` is ``llama3.1-8b``) and collapse repeated dashes; strip trailing tags one at a
    time — ``-instruct``, ``-chat``, ``-hf``, ``-it``, ``-turbo``, quantisation and format tags
    (``-awq``, ``-gptq``, ``-fp8``, ``-dynamic``, ``-int4``, ``-w4a16``, ``-nvfp4``, ``-mxfp4``,
    ``-bnb``, ``-4bit``, ``-ud``, llama.cpp's ``-q4-k-m`` / ``.q8-0`` / ``-iq4-xs``), a 4- or
    8-digit release date (``-2507``) and a GGUF shard (``-00001-of-00003``); finally drop a
    leading ``meta-`` before ``llama`` and put a dash between ``llama`` and its version
    (``llama3.1`` → ``llama-3.1``).
    """
    text = name.strip().rstrip("/").rsplit("/", 1)[-1].lower()
    text = _EXTENSION.sub("", text)
    text = _DASHES.sub("-", _SEPARATORS.sub("-", text)).strip("-")
    while True:
        stripped = _SUFFIX.sub("", text)
        if stripped == text or not stripped:
            break
        text = stripped
    text = _META_PREFIX.sub("", text)
    return _LLAMA_GLUED.sub("llama-", text)


def family_of(
    served_model_name: str, annotation: str | None = None, *, catalog: Catalog
) -> str | None:
    """The open-weight family of an on-prem model, or ``None`` when ``catalog`` has no entry for
    it.

    The pod annotation ``infercost.ai/open-weight-family`` wins when it is set (non-blank): its
    normal form is the answer if the catalog knows it, else ``None`` — an annotation is never
    second-guessed by the served name. Without one, the served name's normal form
    (:func:`normalise_model_name`) is looked up.
    """
    if annotation is not None and annotation.strip():
        candidate = normalise_model_name(annotation)
    else:
        candidate = normalise_model_name(served_model_name)
    return candidate if candidate in catalog.families else None

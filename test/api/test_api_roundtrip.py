"""Property tests: any valid model survives serialise → parse, and its JSON passes the CRD schema.

Valid models are generated from the same field kinds the parser and the CRD generator read, so
every field, bound, enum and list type is exercised without a hand-written list.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infercost.api import (
    RESOURCE_TYPES,
    FrozenMap,
    ObjectMeta,
    parse_resource,
    resource_to_dict,
)
from infercost.api.crds import openapi_schema
from infercost.api.names import label_key_problem
from infercost.api.schema import (
    Boolean,
    Date,
    DateTime,
    Enum,
    Integer,
    Kind,
    List,
    Number,
    Object,
    String,
    StringMap,
    field_specs,
    is_required,
)

_LABEL_KEY = (
    r"\A([a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?){0,2}/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?\Z"
)


def _string(kind: String) -> st.SearchStrategy[str]:
    low = kind.min_length or 0
    high = min(kind.max_length or 40, 40)
    if kind.pattern is None:
        return st.text(min_size=low, max_size=high)
    return st.from_regex(kind.pattern, fullmatch=True).filter(
        lambda s: low <= len(s) <= (kind.max_length or 10**9)
    )


def strategy(kind: Kind) -> st.SearchStrategy[Any]:
    if isinstance(kind, Integer):
        return st.integers(
            min_value=kind.minimum if kind.minimum is not None else -(2**40),
            max_value=kind.maximum if kind.maximum is not None else 2**40,
        )
    if isinstance(kind, Number):
        return st.floats(
            min_value=kind.minimum if kind.minimum is not None else -1e12,
            max_value=kind.maximum if kind.maximum is not None else 1e12,
            exclude_min=kind.exclusive_minimum,
            exclude_max=kind.exclusive_maximum,
            allow_nan=False,
            allow_infinity=False,
        )
    if isinstance(kind, Boolean):
        return st.booleans()
    if isinstance(kind, String):
        return _string(kind)
    if isinstance(kind, Enum):
        return st.sampled_from(list(kind.enum_cls))
    if isinstance(kind, Date):
        return st.dates(min_value=dt.date(1970, 1, 1), max_value=dt.date(2200, 1, 1))
    if isinstance(kind, DateTime):
        return st.datetimes(
            min_value=dt.datetime(1970, 1, 1),
            max_value=dt.datetime(2200, 1, 1),
            timezones=st.just(dt.UTC),
        )
    if isinstance(kind, Object):
        return model(kind.cls)
    if isinstance(kind, List):
        items = st.lists(strategy(kind.item), max_size=4, unique_by=_unique_by(kind))
        return items.map(tuple)
    if isinstance(kind, StringMap):
        keys = st.from_regex(_LABEL_KEY, fullmatch=True).filter(
            lambda k: label_key_problem(k) is None
        )
        return st.dictionaries(keys, _string(kind.value), max_size=3).map(FrozenMap)
    raise AssertionError(f"no strategy for {kind!r}")


def _unique_by(kind: List) -> Any:
    if kind.list_type == "map":
        names = [
            a.name
            for a, spec in field_specs(kind.item.cls)  # type: ignore[attr-defined]
            if spec.json_name in kind.map_keys
        ]
        return lambda item: tuple(getattr(item, n) for n in names)
    if kind.list_type == "set":
        return lambda item: item
    return None


def model(cls: type[Any]) -> st.SearchStrategy[Any]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for attribute, spec in field_specs(cls):
        value = strategy(spec.kind)
        if not is_required(attribute):
            value = st.one_of(st.just(attribute.default), value)
        fields[attribute.name] = value
    return st.builds(cls, **fields)


def resource(rtype: Any) -> st.SearchStrategy[Any]:
    meta = st.builds(
        ObjectMeta,
        name=st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z", fullmatch=True),
        namespace=st.one_of(st.none(), st.just("team-a")),
        generation=st.one_of(st.none(), st.integers(1, 1000)),
    )
    return st.builds(
        rtype.resource_cls,
        metadata=meta,
        spec=model(rtype.spec_cls),
        status=st.one_of(st.none(), model(rtype.status_cls)),
    )


PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("rtype", RESOURCE_TYPES, ids=lambda rt: rt.kind)
def test_serialise_then_parse_is_identity(rtype: Any) -> None:
    @PROFILE
    @given(resource(rtype))
    def check(obj: Any) -> None:
        as_json = resource_to_dict(obj)
        parsed = parse_resource(as_json)
        assert parsed == obj
        assert resource_to_dict(parsed) == as_json

    check()


@pytest.mark.parametrize("rtype", RESOURCE_TYPES, ids=lambda rt: rt.kind)
def test_every_valid_object_passes_the_generated_schema(rtype: Any) -> None:
    validator = jsonschema.Draft4Validator(openapi_schema(rtype))

    @PROFILE
    @given(resource(rtype))
    def check(obj: Any) -> None:
        errors = [e.message for e in validator.iter_errors(resource_to_dict(obj))]
        assert errors == []

    check()


def test_models_are_attrs_frozen() -> None:
    for rtype in RESOURCE_TYPES:
        for cls in (rtype.spec_cls, rtype.status_cls, rtype.resource_cls):
            assert attrs.has(cls)
            assert cls.__setattr__ is not object.__setattr__

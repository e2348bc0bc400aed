"""Field kinds: the one description of every CRD field, read three ways.

A model field declared with ``attrs.field(**crd(...))`` carries a :class:`FieldSpec` (JSON
name, kind, description); its attrs default is the CRD default. From it this module derives

* the parser that turns a JSON-like dict (as read from the API server or a YAML file) into a
  typed, defaulted model, collecting *every* problem with its field path;
* the attrs validator that keeps a model constructed in Python within the same bounds;
* the OpenAPI v3 (structural) schema written into the generated CRD;
* the serialisation back to the camelCase JSON the API server stores.

There is deliberately no second, hand-written copy of the validation rules anywhere else. The
module performs no I/O.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import attrs

_SPEC_KEY = "infercost.field"
_FACTORY: type[Any] = type(attrs.Factory(list))

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class _Invalid:
    """Marker for a value that failed to parse (its error is already recorded)."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID: Any = _Invalid()


@attrs.frozen
class FieldError:
    """One problem with one field: ``path`` like ``spec.alertThresholds[1].percent``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(ValueError):
    """A document failed validation; ``errors`` holds every problem found, in field order."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


def join_path(base: str, name: str) -> str:
    return f"{base}.{name}" if base else name


def describe_value(value: object) -> str:
    """How a bad value is quoted in an error message (JSON spelling, type for containers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        text = value if len(value) <= 80 else value[:77] + "..."
        return f"string {json.dumps(text)}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dt.datetime | dt.date):
        return f"a YAML timestamp {value.isoformat()} (quote it)"
    return f"a {type(value).__name__}"


def format_datetime(value: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix; fractional seconds only when present."""
    value = value.astimezone(dt.UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_datetime(text: str) -> dt.datetime | None:
    """Parse RFC 3339 (``Z`` or an offset); ``None`` when malformed. Result is in UTC."""
    if not _DATETIME_RE.match(text):
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC)


class FrozenMap(Mapping[str, str]):
    """An immutable, hashable ``str -> str`` mapping (label selectors)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._data: dict[str, str] = dict(data)

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


class Kind:
    """How one field's JSON value is checked, converted, described and serialised."""

    def openapi(self) -> dict[str, Any]:
        raise NotImplementedError

    def expectation(self) -> str:
        """What a valid value is, completing "must be ..."."""
        raise NotImplementedError

    def doc_type(self) -> str:
        """Short type name for the field reference."""
        raise NotImplementedError

    def constraints(self) -> str:
        """Validation beyond the type, for the field reference ("" when none)."""
        return ""

    def parse(self, raw: object, path: str, errors: list[FieldError]) -> Any:
        """Convert ``raw`` or record errors and return :data:`INVALID`."""
        raise NotImplementedError

    def problem(self, value: object) -> str | None:
        """Why a Python-side ``value`` is out of bounds (attrs validator), else ``None``."""
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value

    def _fail(self, raw: object, path: str, errors: list[FieldError]) -> Any:
        errors.append(FieldError(path, f"must be {self.expectation()}, got {describe_value(raw)}"))
        return INVALID


def _bound_text(
    low: float | None, high: float | None, low_open: bool = False, high_open: bool = False
) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {_num(low)}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {_num(high)}")
    return " and ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@attrs.frozen
class Integer(Kind):
    minimum: int | None = None
    maximum: int | None = None
    format: str = "int64"

    def openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer", "format": self.format}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out

    def expectation(self) -> str:
        bounds = _bound_text(self.minimum, self.maximum)
        return f"an integer {bounds}" if bounds else "an integer"

    def doc_type(self) -> str:
        return "integer"

    def constraints(self) -> str:
        return _bound_text(self.minimum, self.maximum)

    def parse(self, raw: object, path: str, errors: list[FieldError]) -> Any:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return self._fail(raw, path, errors)
        if isinstance(raw, float):
            if not raw.is_integer():
                return self._fail(raw, path, errors)
            raw = int(raw)
        if self.problem(raw) is not None:
            return self._fail(raw, path, errors)
        return raw

    def problem(self, value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be {self.expectation()}, got {describe_value(value)}"
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            return f"must be {self.expectation()}, got {value}"
        return None


@attrs.frozen
class Number(Kind):
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False

    def openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "number"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
            if self.exclusive_minimum:
                out["exclusiveMinimum"] = True
        if self.maximum is not None:
            out["maximum"] = self.maximum
            if self.exclusive_maximum:
                out["exclusiveMaximum"] = True
        return out

    def expectation(self) -> str:
        bounds = self.constraints()
        return f"a number {bounds}" if bounds else "a number"

    def doc_type(self) -> str:
        return "number"

    def constraints(self) -> str:
        return _bound_text(
            self.minimum, self.maximum, self.exclusive_minimum, self.exclusive_maximum
        )

    def parse(self, raw: object, path: str, errors: list[FieldError]) -> Any:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return self._fail(raw, path, errors)
        value = float(raw)
        if self.problem(value) is not None:
            return self._fail(raw, path, errors)
        return value

    def problem(self, value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {self.expectation()}, got {describe_value(value)}"
        if not math.isfinite(value):
            return f"must be {self.expectation()}, got {describe_value(value)}"
        low, high = self.minimum, self.maximum
        if low is not None and (value <= low if self.exclusive_minimum else value < low):
            return f"must be {self.expectation()}, got {describe_value(value)}"
        if high is not None and (value >= high if self.exclusive_maximum else value > high):
            return f"must be {self.expectation()}, got {describe_value(value)}"
        return None


@attrs.frozen
class Boolean(Kind):
    def openapi(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def expectation(self) -> str:
        return "a boolean (true or false)"

    def doc_type(self) -> str:
        return "boolean"

    def parse(self, raw: object, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(raw, bool):
            return self._fail(raw, path, errors)
        return raw

    def problem(self, value: object) -> str | None:
        if not isinstance(value, bool):
            return f"must be {self.expectation()}, got {describe_value(value)}"
        return None


@attrs.frozen
class String(Kind):
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    pattern_help: str | None = None

    def openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        if self.min_length is not None:
            out["minLength"] = self.min_length
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out

    def expectation(self) -> str:
        if self.pattern_help:
            return self.pattern_help
        if self.min_length is not None and self.max_length is not None:
            return f"a string of {self.min_length} to {self.max_length} characters"
        if self.min_length is not None:
            return f"a string of at least {self.min_length} characters"
        if self.max_length is not None:
            return f"a string of at most {self.max_length} characters"
        return "a string"

    def doc_type(self) -> str:
        return "string"

    def constraints(self) -> str:
        if self.pattern_help:
            return self.pattern_help
        if self.min_length is None and self.max_length is None:
            return ""
        return f"{self.min_length or 0}..{self.max_length if self.max_length else ''} characters"

    def parse(self, raw: object, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(raw, str):
            return self._fail(raw, path, errors)
        problem = self.problem(raw)
        if problem is not None:
            errors.append(FieldError(path, problem))
            return INVALID
        return raw

    def problem(self, value: object) -> str | None:
        if not isinstance(value, str):
            return f"must be {self.expectation()}, got {describe_value(value)}"
        too_short = self.min_length is not None and len(value) < self.min_length
        too_long = self.max_length is not None and len(value) > self.max_length
        bad = self.pattern is not None and re.search(self.pattern, value) is None
        if too_short or too_long or bad:
            got = (
                f"{len(value)} characters"
                if (too_short or too_long) and not self.pattern_help
                else describe_value(value)
            )
            return f"must be {self.expectation()}, got {got}"
        return None


@attrs.frozen
class Enum(Kind):
    """A closed set of strings, held in Python as members of a ``StrEnum``."""

    enum_cls: type[enum.Enum]

    def values(self) -> list[str]:
        return [str(m.value) for m in self.enum_cls]

    def openapi(self) -> dict[str, Any]:
        return {"type": "string", "enum": self.values()}

    def expectation(self) -> str:
        return "one of " + ", ".join(json.dumps(v) for v in self.values())

    def doc_type(self) -> str:
        return "string"

    def constraints(self) -> str:
        return " | ".join(f"`{v}`" for v in self.values())

    def parse(self, raw: object, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(raw, str) or raw not in self.values():
            return self._fail(raw, path, errors)
        return self.enum_cls(raw)

    def problem(self, value: object) -> str | None:
        if not isinstance(value, self.enum_cls):
            return f"must be {self.expectation()}, got {describe_value(value)}"
        return None

    def dump(self, value: Any) -> Any:
        return str(value.value)


@attrs.frozen
class Date(Kind):
    """A calendar date ``YYYY-MM-DD`` (OpenAPI ``format: date``), a ``datetime.date``."""

    def openapi(self) -> dict[str, Any]:
        return {"type": "string", "format": "date"}

    def expectation(self) -> str:
        return "a date YYYY-MM-DD"

    def doc_type(self) -> str:
        return "string (date)"

    def constraints(self) -> str:
        return "YYYY-MM-DD"

    def parse(self, raw: object, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(raw, str) or not _DATE_RE.match(raw):
            return self._fail(raw, path, errors)
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            return self._fail(raw, path, errors)

    def problem(self, value: object) -> str | None:
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            return f"must be a datetime.date, got {describe_value(value)}"
        return None

    def dump(self, value: Any) -> Any:
        return value.isoformat()


@attrs.frozen
class DateTime(Kind):
    """An RFC 3339 instant (OpenAPI ``format: date-time``), a UTC ``datetime.datetime``."""

    def openapi(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time"}

    def expectation(self) -> str:
        return "an RFC 3339 date-time such as 2026-11-27T00:00:00Z"

    def doc_type(self) -> str:
        return "string (date-time)"

    def parse(self, raw: object, path: str, errors: list[FieldError]) -> Any:
        parsed = parse_datetime(raw) if isinstance(raw, str) else None
        if parsed is None:
            return self._fail(raw, path, errors)
        return parsed

    def problem(self, value: object) -> str | None:
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            return f"must be a timezone-aware datetime, got {describe_value(value)}"
        return None

    def dump(self, value: Any) -> Any:
        return format_datetime(value)


@attrs.frozen
class Object(Kind):
    """A nested model (an attrs class deriving from :class:`Model`)."""

    cls: type[Model]

    def openapi(self) -> dict[str, Any]:
        return object_schema(self.cls)

    def expectation(self) -> str:
        return "an object"

    def doc_type(self) -> str:
        return self.cls.__name__

    def parse(self, raw: object, path: str, errors: list[FieldError]) -> Any:
        return parse_fields(self.cls, raw, path, errors)

    def problem(self, value: object) -> str | None:
        if not isinstance(value, self.cls):
            return f"must be a {self.cls.__name__}, got {describe_value(value)}"
        return None

    def dump(self, value: Any) -> Any:
        return dump_model(value)


@attrs.frozen
class List(Kind):
    """A list, held as a tuple. ``list_type`` is ``atomic``, ``set`` or ``map`` (keyed)."""

    item: Kind
    list_type: str = "atomic"
    map_keys: tuple[str, ...] = ()
    max_items: int | None = None

    def openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "array", "items": self.item.openapi()}
        if self.max_items is not None:
            out["maxItems"] = self.max_items
        out["x-kubernetes-list-type"] = self.list_type
        if self.list_type == "map":
            out["x-kubernetes-list-map-keys"] = list(self.map_keys)
        return out

    def expectation(self) -> str:
        return "a list"

    def doc_type(self) -> str:
        return f"[]{self.item.doc_type()}"

    def constraints(self) -> str:
        parts = []
        if self.list_type == "map":
            parts.append("unique " + ", ".join(f"`{k}`" for k in self.map_keys))
        elif self.list_type == "set":
            parts.append("unique items")
        if self.max_items is not None:
            parts.append(f"at most {self.max_items} items")
        return "; ".join(parts)

    def parse(self, raw: object, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(raw, list | tuple):
            return self._fail(raw, path, errors)
        if self.max_items is not None and len(raw) > self.max_items:
            errors.append(
                FieldError(path, f"must have at most {self.max_items} items, got {len(raw)}")
            )
            return INVALID
        items = [self.item.parse(value, f"{path}[{i}]", errors) for i, value in enumerate(raw)]
        self._check_unique(items, path, errors)
        if any(item is INVALID for item in items):
            return INVALID
        return tuple(items)

    def _keys(self, item: Any) -> Any:
        if self.list_type == "map":
            assert isinstance(self.item, Object)
            names = python_names(self.item.cls)
            return tuple(getattr(item, names[key]) for key in self.map_keys)
        return item

    def _check_unique(self, items: Sequence[Any], path: str, errors: list[FieldError]) -> None:
        if self.list_type == "atomic":
            return
        seen: dict[Any, int] = {}
        for i, item in enumerate(items):
            if item is INVALID:
                continue
            key = self._keys(item)
            if key in seen:
                if self.list_type == "map":
                    shown = ", ".join(
                        f"{name}={json.dumps(self._dump_key(v))}"
                        for name, v in zip(self.map_keys, key, strict=True)
                    )
                    where = f"{path}[{i}].{self.map_keys[0]}" if len(self.map_keys) == 1 else path
                    message = f"duplicate entry {shown}: already used by {path}[{seen[key]}]"
                else:
                    where = f"{path}[{i}]"
                    message = (
                        f"duplicate value {json.dumps(self.item.dump(item))}: "
                        f"already listed at {path}[{seen[key]}]"
                    )
                errors.append(FieldError(where, message))
            else:
                seen[key] = i

    @staticmethod
    def _dump_key(value: Any) -> Any:
        return value.value if isinstance(value, enum.Enum) else value

    def problem(self, value: object) -> str | None:
        if not isinstance(value, tuple):
            return f"must be a tuple, got {describe_value(value)}"
        for i, item in enumerate(value):
            problem = self.item.problem(item)
            if problem is not None:
                return f"item {i}: {problem}"
        errors: list[FieldError] = []
        self._check_unique(value, "", errors)
        if errors:
            return errors[0].message
        return None

    def dump(self, value: Any) -> Any:
        return [self.item.dump(v) for v in value]


@attrs.frozen
class StringMap(Kind):
    """A ``string -> string`` map, held as a :class:`FrozenMap`.

    ``key_problem`` checks keys, which a structural schema cannot constrain.
    """

    value: String
    key_problem: Callable[[str], str | None] | None = None
    key_help: str = ""

    def openapi(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": self.value.openapi()}

    def expectation(self) -> str:
        return "a map of strings to strings"

    def doc_type(self) -> str:
        return "map[string]string"

    def constraints(self) -> str:
        parts = []
        if self.key_help:
            parts.append(f"keys: {self.key_help}")
        if self.value.constraints():
            parts.append(f"values: {self.value.constraints()}")
        return "; ".join(parts)

    def parse(self, raw: object, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(raw, Mapping):
            return self._fail(raw, path, errors)
        before = len(errors)
        out: dict[str, str] = {}
        for key, value in raw.items():
            item_path = f"{path}[{json.dumps(str(key))}]"
            if not isinstance(key, str):
                errors.append(FieldError(item_path, "keys must be strings"))
                continue
            if self.key_problem is not None:
                problem = self.key_problem(key)
                if problem is not None:
                    errors.append(FieldError(item_path, f"invalid key: {problem}"))
            parsed = self.value.parse(value, item_path, errors)
            if parsed is not INVALID:
                out[key] = parsed
        if len(errors) > before:
            return INVALID
        return FrozenMap(out)

    def problem(self, value: object) -> str | None:
        if not isinstance(value, FrozenMap):
            return f"must be a FrozenMap, got {describe_value(value)}"
        for key, item in value.items():
            problem = self.key_problem(key) if self.key_problem is not None else None
            problem = problem or self.value.problem(item)
            if problem is not None:
                return f"entry {key!r}: {problem}"
        return None

    def dump(self, value: Any) -> Any:
        return dict(value)


@attrs.frozen
class FieldSpec:
    """What a model field means in the CRD: JSON name, kind, description."""

    json_name: str
    kind: Kind
    description: str


def crd(json_name: str, kind: Kind, description: str) -> dict[str, Any]:
    """Keyword arguments for ``attrs.field`` declaring a CRD field.

    Use as ``attrs.field(**crd("gpuCount", Integer(minimum=1), "..."))`` for a required
    field, with ``default=`` for a defaulted one and ``default=None`` for an optional one
    (absent in JSON). The validator keeps Python-constructed models within the same bounds.
    """

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and attribute.default is None:
            return
        problem = kind.problem(value)
        if problem is not None:
            raise ValueError(f"{type(instance).__name__}.{attribute.name} ({json_name}): {problem}")

    spec = FieldSpec(json_name=json_name, kind=kind, description=description)
    return {"validator": check, "metadata": {_SPEC_KEY: spec}}


def is_required(attribute: attrs.Attribute[Any]) -> bool:
    return attribute.default is attrs.NOTHING


M = TypeVar("M", bound="Model")


class Model:
    """Mixin for the attrs models: JSON parsing and serialisation from the field specs."""

    __attrs_attrs__: ClassVar[tuple[attrs.Attribute[Any], ...]]

    @classmethod
    def from_dict(cls: type[M], raw: object, path: str = "") -> M:
        """Parse ``raw`` (JSON-like) or raise :class:`ValidationError` with every problem."""
        errors: list[FieldError] = []
        value = parse_fields(cls, raw, path, errors)
        if errors or value is INVALID:
            raise ValidationError(errors)
        result: M = value
        return result

    def to_dict(self) -> dict[str, Any]:
        """camelCase JSON as stored by the API server; absent optional fields are omitted."""
        return dump_model(self)


def field_specs(cls: type[Any]) -> list[tuple[attrs.Attribute[Any], FieldSpec]]:
    """``(attribute, FieldSpec)`` for every CRD field of a model, in declaration order."""
    return [(a, a.metadata[_SPEC_KEY]) for a in attrs.fields(cls) if _SPEC_KEY in a.metadata]


def python_names(cls: type[Any]) -> dict[str, str]:
    """JSON name -> Python attribute name."""
    return {spec.json_name: a.name for a, spec in field_specs(cls)}


def parse_fields(cls: type[Any], raw: object, path: str, errors: list[FieldError]) -> Any:
    """Parse a JSON object into ``cls``, appending every problem to ``errors``."""
    if not isinstance(raw, Mapping):
        errors.append(FieldError(path, f"must be an object, got {describe_value(raw)}"))
        return INVALID
    before = len(errors)
    specs = field_specs(cls)
    known = {spec.json_name for _, spec in specs}
    kwargs: dict[str, Any] = {}
    for attribute, spec in specs:
        field_path = join_path(path, spec.json_name)
        value = raw.get(spec.json_name)
        if value is None:
            # JSON null is treated as absent, as the API server prunes it before defaulting.
            if is_required(attribute):
                errors.append(FieldError(field_path, "required field is missing"))
            continue
        kwargs[attribute.name] = spec.kind.parse(value, field_path, errors)
    for key in raw:
        if key not in known:
            shown = key if isinstance(key, str) else repr(key)
            errors.append(FieldError(join_path(path, shown), "unknown field"))
    if len(errors) > before or any(v is INVALID for v in kwargs.values()):
        return INVALID
    return cls(**kwargs)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, tuple | FrozenMap) and len(value) == 0)


def dump_model(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attribute, spec in field_specs(type(value)):
        item = getattr(value, attribute.name)
        if _is_empty(item):
            continue
        out[spec.json_name] = spec.kind.dump(item)
    return out


def default_json(attribute: attrs.Attribute[Any], spec: FieldSpec) -> Any:
    """The JSON default of a field, or ``None`` when it has none worth writing down."""
    default = attribute.default
    if default is attrs.NOTHING or _is_empty(default) or isinstance(default, _FACTORY):
        return None
    return spec.kind.dump(default)


def object_schema(cls: type[Any]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model (descriptions, defaults, validation)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for attribute, spec in field_specs(cls):
        schema = {"description": spec.description, **spec.kind.openapi()}
        default = default_json(attribute, spec)
        if default is not None:
            schema["default"] = default
        properties[spec.json_name] = schema
        if is_required(attribute):
            required.append(spec.json_name)
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


def model_doc(cls: type[Any]) -> str:
    """The model's description (first paragraph of its docstring)."""
    doc = (cls.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())

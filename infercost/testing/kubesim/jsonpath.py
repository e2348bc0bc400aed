"""The Kubernetes JSONPath dialect, as evaluated by the API server for CRD printer columns.

The apiserver wraps each ``additionalPrinterColumns[].jsonPath`` in ``{...}`` and evaluates it
with client-go's ``util/jsonpath`` package with missing keys allowed; kubectl evaluates the same
dialect client-side for ``-o jsonpath``. This module parses and evaluates one such expression
over decoded JSON (dicts, lists, str, int, float, bool, None) and formats a single result the way
the apiserver prints it into a ``string`` column. It is pure: no I/O, no server state.

Supported, following https://kubernetes.io/docs/reference/kubectl/jsonpath/:
``$`` / ``@`` roots, ``.field`` (``\\.`` escapes a dot inside a name), ``['field']`` and
``["field"]``, unions ``['a','b']`` and ``[0,2]``, ``[n]`` with negative indexes, slices
``[start:end:step]``, wildcards ``.*`` and ``[*]``, recursive descent ``..field``, and filters
``[?(@.type=="Ready")]`` with ``== != < <= > >=`` or bare existence ``[?(@.field)]``.
:func:`parse` takes one expression (the printer-column case); :func:`render_template` renders a
whole ``kubectl -o jsonpath`` template with literal text, several ``{...}`` blocks, quoted
strings such as ``{"\\n"}`` and ``{range ...}...{end}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import attrs

__all__ = [
    "JSONPath",
    "JSONPathError",
    "find",
    "format_go_float",
    "format_go_json",
    "format_text",
    "parse",
    "render_template",
]


class JSONPathError(ValueError):
    """A JSONPath expression that does not parse, or an evaluation that fails."""


# ---------------------------------------------------------------------------------------------
# Syntax tree


@attrs.frozen
class Field:
    """``.name``: the value of a key in an object."""

    name: str


@attrs.frozen
class Wildcard:
    """``.*`` or ``[*]``: every value of an object or every element of a list."""


@attrs.frozen
class Recursive:
    """``..``: the current value and every value nested below it, depth first."""


@attrs.frozen
class Index:
    """``[n]`` or ``[a,b]``: elements by position (negative counts from the end)."""

    indexes: tuple[int, ...]


@attrs.frozen
class Slice:
    """``[start:end:step]``."""

    start: int | None
    end: int | None
    step: int | None


@attrs.frozen
class Keys:
    """``['a']`` or ``['a','b']``: values of object keys by name."""

    names: tuple[str, ...]


@attrs.frozen
class Literal:
    """A constant operand inside a filter."""

    value: str | int | float | bool | None


@attrs.frozen
class Filter:
    """``[?(left op right)]`` or ``[?(left)]`` (existence when ``op`` is None)."""

    left: JSONPath | Literal
    op: str | None
    right: JSONPath | Literal | None


Step = Field | Wildcard | Recursive | Index | Slice | Keys | Filter


@attrs.frozen
class JSONPath:
    """A parsed expression: a root (``$`` or ``@``, equivalent here) and its steps."""

    source: str
    steps: tuple[Step, ...]

    def find(self, data: Any, *, allow_missing_keys: bool = True) -> list[Any]:
        """All values the expression selects in ``data``, in document order."""
        return _evaluate(self.steps, [data], allow_missing_keys)


# ---------------------------------------------------------------------------------------------
# Parsing

_TERMINATORS = frozenset(" \t\n.[](){},=!<>'\"")
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")


def parse(expression: str) -> JSONPath:
    """Parse one expression such as ``.status.conditions[?(@.type=="Ready")].status``.

    A single pair of enclosing braces (``{.spec.x}``, the form kubectl takes on the command
    line) is accepted and removed.
    """
    if not isinstance(expression, str):
        raise JSONPathError(f"JSONPath must be a string, got {type(expression).__name__}")
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if not text:
        raise JSONPathError(f"empty JSONPath expression {expression!r}")
    if "{" in text or "}" in text:
        raise JSONPathError(
            f"JSONPath {expression!r}: templates with several {{...}} blocks, literal text or"
            " range/end are kubectl output templates, not a single expression"
        )
    parser = _Parser(text, expression)
    steps = parser.parse_path(top_level=True)
    if parser.pos != len(text):
        raise JSONPathError(
            f"JSONPath {expression!r}: unexpected {text[parser.pos]!r} at offset {parser.pos}"
        )
    return JSONPath(source=expression, steps=tuple(steps))


def find(expression: str | JSONPath, data: Any, *, allow_missing_keys: bool = True) -> list[Any]:
    """Evaluate ``expression`` over ``data`` and return the list of matches."""
    path = expression if isinstance(expression, JSONPath) else parse(expression)
    return path.find(data, allow_missing_keys=allow_missing_keys)


class _Parser:
    def __init__(self, text: str, original: str) -> None:
        self.text = text
        self.original = original
        self.pos = 0

    def error(self, message: str) -> JSONPathError:
        return JSONPathError(f"JSONPath {self.original!r}: {message} at offset {self.pos}")

    def peek(self, count: int = 1) -> str:
        return self.text[self.pos : self.pos + count]

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def parse_path(self, *, top_level: bool) -> list[Step]:
        steps: list[Step] = []
        if self.peek() in ("$", "@"):
            self.pos += 1
        elif not top_level:
            raise self.error("a filter operand path must start with '@' or '$'")
        while self.pos < len(self.text):
            char = self.peek()
            if self.peek(2) == "..":
                self.pos += 2
                steps.append(Recursive())
                if self.peek() == "[":
                    steps.append(self.parse_bracket())
                else:
                    steps.append(self.parse_name_step())
            elif char == ".":
                self.pos += 1
                if self.pos == len(self.text):
                    # A lone "." (or a trailing one) selects the current value.
                    break
                if self.peek() == "[":
                    steps.append(self.parse_bracket())
                else:
                    steps.append(self.parse_name_step())
            elif char == "[":
                steps.append(self.parse_bracket())
            elif top_level and char not in _TERMINATORS:
                # kubectl accepts "status.x" without the leading dot.
                if steps:
                    raise self.error(f"unexpected {char!r}")
                steps.append(self.parse_name_step())
            else:
                break
        return steps

    def parse_name_step(self) -> Step:
        if self.peek() == "*":
            self.pos += 1
            return Wildcard()
        name = self.read_name()
        if not name:
            raise self.error("expected a field name")
        return Field(name)

    def read_name(self) -> str:
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char in _TERMINATORS:
                break
            out.append(char)
            self.pos += 1
        return "".join(out)

    def parse_bracket(self) -> Step:
        assert self.peek() == "["
        self.pos += 1
        self.skip_spaces()
        step: Step
        if self.peek() == "*":
            self.pos += 1
            step = Wildcard()
        elif self.peek(2) == "?(":
            self.pos += 2
            step = self.parse_filter()
        elif self.peek() in ("'", '"'):
            names = [self.read_quoted()]
            self.skip_spaces()
            while self.peek() == ",":
                self.pos += 1
                self.skip_spaces()
                if self.peek() not in ("'", '"'):
                    raise self.error("expected a quoted key in the union")
                names.append(self.read_quoted())
                self.skip_spaces()
            step = Keys(tuple(names))
        else:
            step = self.parse_index_or_slice()
        self.skip_spaces()
        if self.peek() != "]":
            raise self.error("expected ']'")
        self.pos += 1
        return step

    def read_quoted(self) -> str:
        quote = self.peek()
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char == quote:
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        raise self.error(f"unterminated quoted string starting with {quote}")

    def read_int(self) -> int | None:
        self.skip_spaces()
        start = self.pos
        if self.peek() in ("-", "+"):
            self.pos += 1
        while self.pos < len(self.text) and self.text[self.pos].isdigit():
            self.pos += 1
        digits = self.text[start : self.pos]
        self.skip_spaces()
        if digits in ("", "-", "+"):
            self.pos = start if digits == "" else self.pos
            if digits:
                raise self.error("expected digits after the sign")
            return None
        return int(digits)

    def parse_index_or_slice(self) -> Step:
        first = self.read_int()
        if self.peek() == ":":
            self.pos += 1
            end = self.read_int()
            step: int | None = None
            if self.peek() == ":":
                self.pos += 1
                step = self.read_int()
                if step == 0:
                    raise self.error("slice step cannot be 0")
            return Slice(first, end, step)
        if first is None:
            raise self.error("expected an index, a slice, '*', a quoted key or a filter")
        indexes = [first]
        while self.peek() == ",":
            self.pos += 1
            value = self.read_int()
            if value is None:
                raise self.error("expected an index in the union")
            indexes.append(value)
        return Index(tuple(indexes))

    def parse_filter(self) -> Filter:
        self.skip_spaces()
        left = self.parse_operand()
        self.skip_spaces()
        op: str | None = None
        right: JSONPath | Literal | None = None
        for candidate in _COMPARISONS:
            if self.text.startswith(candidate, self.pos):
                op = candidate
                self.pos += len(candidate)
                self.skip_spaces()
                right = self.parse_operand()
                self.skip_spaces()
                break
        if self.peek() != ")":
            raise self.error("expected ')' closing the filter (only == != < <= > >= are supported)")
        self.pos += 1
        if op is None and isinstance(left, Literal):
            raise self.error("an existence filter needs a path such as @.field")
        return Filter(left=left, op=op, right=right)

    def parse_operand(self) -> JSONPath | Literal:
        char = self.peek()
        if char in ("@", "$"):
            start = self.pos
            steps = self.parse_path(top_level=False)
            return JSONPath(source=self.text[start : self.pos], steps=tuple(steps))
        if char in ("'", '"'):
            return Literal(self.read_quoted())
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in " \t)=!<>":
            self.pos += 1
        word = self.text[start : self.pos]
        if word == "true":
            return Literal(True)
        if word == "false":
            return Literal(False)
        if word == "null":
            return Literal(None)
        try:
            return Literal(int(word))
        except ValueError:
            pass
        try:
            return Literal(float(word))
        except ValueError:
            self.pos = start
            raise self.error(f"unrecognized filter operand {word!r}") from None


# ---------------------------------------------------------------------------------------------
# Evaluation


def _evaluate(steps: Sequence[Step], values: list[Any], allow_missing: bool) -> list[Any]:
    for step in steps:
        values = _apply(step, values, allow_missing)
    return values


def _apply(step: Step, values: list[Any], allow_missing: bool) -> list[Any]:
    out: list[Any] = []
    if isinstance(step, Field):
        for value in values:
            if isinstance(value, dict) and step.name in value:
                out.append(value[step.name])
        if not out and not allow_missing:
            raise JSONPathError(f"{step.name} is not found")
        return out
    if isinstance(step, Keys):
        for value in values:
            if not isinstance(value, dict):
                continue
            for name in step.names:
                if name in value:
                    out.append(value[name])
                elif not allow_missing:
                    raise JSONPathError(f"{name} is not found")
        return out
    if isinstance(step, Wildcard):
        for value in values:
            if isinstance(value, dict):
                out.extend(value[key] for key in sorted(value))
            elif isinstance(value, list):
                out.extend(value)
        return out
    if isinstance(step, Recursive):
        for value in values:
            out.extend(_descendants(value))
        return out
    if isinstance(step, Index):
        for value in values:
            if not isinstance(value, list):
                if allow_missing:
                    continue
                raise JSONPathError(f"{_describe(value)} is not array or slice")
            for index in step.indexes:
                position = index + len(value) if index < 0 else index
                if 0 <= position < len(value):
                    out.append(value[position])
                elif not allow_missing:
                    raise JSONPathError(
                        f"array index out of bounds: index {index}, length {len(value)}"
                    )
        return out
    if isinstance(step, Slice):
        for value in values:
            if not isinstance(value, list):
                if allow_missing:
                    continue
                raise JSONPathError(f"{_describe(value)} is not array or slice")
            out.extend(value[step.start : step.end : step.step])
        return out
    return _apply_filter(step, values, allow_missing)


def _apply_filter(step: Filter, values: list[Any], allow_missing: bool) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if not isinstance(value, list):
            raise JSONPathError(f"{_describe(value)} is not array or slice and cannot be filtered")
        for element in value:
            lefts = _operand(step.left, element)
            if step.op is None:
                if lefts:
                    out.append(element)
                continue
            if not lefts:
                continue
            if len(lefts) > 1:
                raise JSONPathError("can only compare one element at a time")
            assert step.right is not None
            rights = _operand(step.right, element)
            if not rights:
                continue
            if len(rights) > 1:
                raise JSONPathError("can only compare one element at a time")
            if _compare(step.op, lefts[0], rights[0]):
                out.append(element)
    return out


def _operand(operand: JSONPath | Literal, element: Any) -> list[Any]:
    if isinstance(operand, Literal):
        return [operand.value]
    return _evaluate(operand.steps, [element], True)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "composite"


def _compare(op: str, left: Any, right: Any) -> bool:
    left_kind, right_kind = _kind(left), _kind(right)
    if left_kind != right_kind or left_kind == "composite":
        if op in ("==", "!=") and "null" in (left_kind, right_kind):
            return (left is None and right is None) == (op == "==")
        raise JSONPathError(
            f"incompatible types for comparison: {_describe(left)} {op} {_describe(right)}"
        )
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if left_kind in ("bool", "null"):
        raise JSONPathError(f"invalid type for comparison: {_describe(left)} {op}")
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _descendants(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _descendants(value[key])
    elif isinstance(value, list):
        for element in value:
            yield from _descendants(element)


def _describe(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------
# Formatting a result the way Go prints it


def format_text(value: Any) -> str:
    """One result as the apiserver writes it into a ``string`` printer column.

    Objects and lists become compact JSON (Go ``encoding/json``: sorted keys, ``<>&`` escaped),
    strings are verbatim, numbers and booleans use Go's ``%v`` formatting, and JSON null prints
    as Go's ``<no value>``.
    """
    if isinstance(value, dict | list):
        return format_go_json(value)
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_go_float(value)
    return str(value)


def format_go_float(value: float) -> str:
    """Go ``fmt`` ``%v`` for a float64: shortest digits, ``e`` notation outside [1e-4, 1e6)."""
    return _format_float(value, exponent_low=-4, exponent_high=6, json_style=False)


def _format_float(value: float, *, exponent_low: int, exponent_high: int, json_style: bool) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 and not json_style else "0"
    sign, digits_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(str(d) for d in digits_tuple)
    decimal_exponent = len(digits) + exponent - 1  # position of the leading digit
    prefix = "-" if sign else ""
    if decimal_exponent < exponent_low or decimal_exponent >= exponent_high:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp_sign = "-" if decimal_exponent < 0 else "+"
        exp_digits = str(abs(decimal_exponent))
        if not json_style and len(exp_digits) < 2:
            exp_digits = "0" + exp_digits
        return f"{prefix}{mantissa}e{exp_sign}{exp_digits}"
    if decimal_exponent < 0:
        return f"{prefix}0.{'0' * (-decimal_exponent - 1)}{digits}"
    if len(digits) <= decimal_exponent + 1:
        return f"{prefix}{digits}{'0' * (decimal_exponent + 1 - len(digits))}"
    point = decimal_exponent + 1
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def format_go_json(value: Any) -> str:
    """Compact JSON as Go's ``encoding/json`` writes it (sorted keys, HTML-safe escapes)."""
    return "".join(_go_json_parts(value))


def _go_json_parts(value: Any) -> Iterator[str]:
    if value is None:
        yield "null"
    elif isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, int):
        yield str(value)
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise JSONPathError(f"json: unsupported value: {value}")
        yield _format_float(value, exponent_low=-6, exponent_high=21, json_style=True)
    elif isinstance(value, str):
        yield _go_json_string(value)
    elif isinstance(value, dict):
        yield "{"
        for position, key in enumerate(sorted(value)):
            if position:
                yield ","
            yield _go_json_string(str(key))
            yield ":"
            yield from _go_json_parts(value[key])
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for position, element in enumerate(value):
            if position:
                yield ","
            yield from _go_json_parts(element)
        yield "]"
    else:
        raise JSONPathError(f"json: unsupported type {type(value).__name__}")


_GO_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028"}
_GO_HTML_ESCAPES["\u2029"] = "\\u2029"


def _go_json_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    return "".join(_GO_HTML_ESCAPES.get(char, char) for char in encoded)


# ---------------------------------------------------------------------------------------------
# Templates (kubectl -o jsonpath)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


@attrs.frozen
class _Text:
    text: str


@attrs.frozen
class _Expr:
    path: JSONPath
    from_root: bool


@attrs.frozen
class _Range:
    path: JSONPath
    from_root: bool
    body: tuple[_Text | _Expr | _Range, ...]


_Node = _Text | _Expr | _Range


def render_template(template: str, data: Any, *, allow_missing_keys: bool = True) -> str:
    """Render a ``kubectl -o jsonpath`` template over ``data``.

    Several results of one block are joined by a space; objects and lists print as compact
    JSON; ``$`` refers to the whole document and ``.``/``@`` to the current ``range`` element.
    """
    nodes, position = _parse_template(template, 0, inside_range=False)
    if position != len(template):
        raise JSONPathError(f"JSONPath template {template!r}: unexpected {{end}}")
    out: list[str] = []
    _render(nodes, data, data, allow_missing_keys, out)
    return "".join(out)


def _parse_template(template: str, position: int, *, inside_range: bool) -> tuple[list[_Node], int]:
    nodes: list[_Node] = []
    while position < len(template):
        start = template.find("{", position)
        if start < 0:
            nodes.append(_Text(template[position:]))
            return _finish(nodes, len(template), template, inside_range)
        if start > position:
            nodes.append(_Text(template[position:start]))
        end = _closing_brace(template, start)
        action = template[start + 1 : end].strip()
        position = end + 1
        if action == "end":
            if not inside_range:
                raise JSONPathError(f"JSONPath template {template!r}: {{end}} without {{range}}")
            return nodes, position
        if action.startswith("range ") or action == "range":
            expression = action[len("range") :].strip()
            if not expression:
                raise JSONPathError(f"JSONPath template {template!r}: range needs a path")
            body, position = _parse_template(template, position, inside_range=True)
            nodes.append(_Range(parse(expression), expression.startswith("$"), tuple(body)))
            continue
        if len(action) >= 2 and action[0] == action[-1] and action[0] in "\"'":
            nodes.append(_Text(_unquote(action[1:-1])))
            continue
        nodes.append(_Expr(parse(action), action.startswith("$")))
    return _finish(nodes, position, template, inside_range)


def _finish(
    nodes: list[_Node], position: int, template: str, inside_range: bool
) -> tuple[list[_Node], int]:
    if inside_range:
        raise JSONPathError(f"JSONPath template {template!r}: {{range}} without {{end}}")
    return nodes, position


def _closing_brace(template: str, start: int) -> int:
    quote = ""
    position = start + 1
    while position < len(template):
        char = template[position]
        if quote:
            if char == "\\":
                position += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "}":
            return position
        position += 1
    raise JSONPathError(f"JSONPath template {template!r}: unclosed action starting at {start}")


def _unquote(text: str) -> str:
    out: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            out.append(_ESCAPES.get(text[position + 1], text[position + 1]))
            position += 2
            continue
        out.append(char)
        position += 1
    return "".join(out)


def _render(
    nodes: Sequence[_Node], root: Any, current: Any, allow_missing: bool, out: list[str]
) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
            continue
        base = root if node.from_root else current
        results = node.path.find(base, allow_missing_keys=allow_missing)
        if isinstance(node, _Expr):
            out.append(" ".join(format_text(value) for value in results))
            continue
        for value in results:
            _render(node.body, root, value, allow_missing, out)

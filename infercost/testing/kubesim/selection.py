"""Label and field selectors (list and watch filtering).

Parses the selector syntax of ``labelSelector`` and ``fieldSelector`` query parameters and
matches objects against them, with the semantics documented in
kubernetes.io/docs/concepts/overview/working-with-objects/labels/ and .../field-selectors/.
Pure: no storage, no HTTP. A malformed selector raises :class:`SelectorError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from infercost.api.names import is_label_key, is_label_value


class SelectorError(ValueError):
    """A selector that does not parse; the message is shown to the client."""


Matcher = Callable[[dict[str, Any]], bool]


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _check_key(key: str) -> str:
    if not is_label_key(key):
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if not is_label_value(value):
        raise SelectorError(f"unable to parse requirement: invalid label value: {value!r}")
    return value


class _Requirement:
    """One label requirement: ``op`` is one of in, notin, =, !=, exists, !exists."""

    __slots__ = ("key", "op", "values")

    def __init__(self, key: str, op: str, values: frozenset[str] = frozenset()) -> None:
        self.key = key
        self.op = op
        self.values = values

    def __call__(self, labels: dict[str, Any]) -> bool:
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!exists":
            return self.key not in labels
        value = labels.get(self.key)
        if op in ("in", "="):
            return value in self.values
        return value not in self.values


def parse_label_selector(text: str) -> Matcher:
    """Compile a label selector; the empty selector matches everything."""
    text = text.strip()
    if not text:
        return lambda labels: True
    reqs: list[_Requirement] = []
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise SelectorError("unable to parse requirement: found '', expected: identifier")
        m = re.fullmatch(r"(\S+?)\s+(in|notin)\s*\((.*)\)", part)
        if m:
            values = frozenset(_check_value(v.strip()) for v in m.group(3).split(","))
            reqs.append(_Requirement(_check_key(m.group(1)), m.group(2), values))
            continue
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*(\S*)", part)
        if m:
            op = "!=" if m.group(2) == "!=" else "="
            value = frozenset({_check_value(m.group(3))})
            reqs.append(_Requirement(_check_key(m.group(1)), op, value))
            continue
        if part.startswith("!"):
            reqs.append(_Requirement(_check_key(part[1:].strip()), "!exists"))
            continue
        if re.fullmatch(r"\S+", part):
            reqs.append(_Requirement(_check_key(part), "exists"))
            continue
        raise SelectorError(f"unable to parse requirement: {part!r}")
    return lambda labels: all(r(labels) for r in reqs)


def _unescape(value: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    if escaped:
        raise SelectorError(f"invalid field selector: unterminated escape in {value!r}")
    return "".join(out)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_field_selector(text: str) -> list[tuple[str, str, str]]:
    """``[(field, op, value)]`` with op one of ``=``, ``!=``."""
    reqs: list[tuple[str, str, str]] = []
    text = text.strip()
    if not text:
        return reqs
    for part in _split_unescaped(text, ","):
        m = re.fullmatch(r"([^=!]+?)\s*(==|=|!=)\s*(.*)", part.strip())
        if not m:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        op = "!=" if m.group(2) == "!=" else "="
        reqs.append((m.group(1).strip(), op, _unescape(m.group(3))))
    return reqs


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string a field selector compares against (``""`` when absent)."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
        if cur is None:
            return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, dict):
        # Event "source" is an object; the apiserver selects on its component.
        return str(cur.get("component", ""))
    return str(cur)


def field_matcher(reqs: list[tuple[str, str, str]]) -> Matcher:
    if not reqs:
        return lambda obj: True

    def match(obj: dict[str, Any]) -> bool:
        for field, op, value in reqs:
            equal = field_value(obj, field) == value
            if equal != (op == "="):
                return False
        return True

    return match

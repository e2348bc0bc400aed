"""Kubernetes label selectors in their string form (``kubectl -l``), parsed once and matched.

The grammar is apimachinery's ``labels.Parse``: requirements separated by commas, all of which
must hold —

* equality: ``key=value``, ``key==value``, ``key!=value`` (``!=`` also holds when the label is
  absent);
* set-based: ``key in (v1,v2)``, ``key notin (v1,v2)`` (``notin`` also holds when the label is
  absent);
* existence: ``key``; absence: ``!key``.

Keys are qualified names (``[prefix/]name``: a DNS-1123 subdomain prefix of at most 253
characters, a name of at most 63), values at most 63 letters, digits, ``-``, ``_`` or ``.``
beginning and ending with a letter or digit (or empty). The ordering operators ``<``/``>`` that
apimachinery accepts for node affinity are not part of the label-selector syntax users write and
are rejected.

It lives in ``engine`` because both the collector (exporter discovery) and the operator's flag
parsing need it and ``collect`` may import nothing else; it is pure text handling, no I/O.
The CRD validation in ``infercost.api`` keeps its own label-key check, as ``api`` may import
nothing at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

import attrs

__all__ = [
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "label_key_problem",
    "label_value_problem",
]

MAX_PREFIX_LENGTH = 253
MAX_NAME_LENGTH = 63
MAX_VALUE_LENGTH = 63

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# apimachinery's lexer: these characters end an identifier and are tokens of their own
_SPECIAL = "=!(),<>"

EQUALS = "="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"


class SelectorError(ValueError):
    """A label selector that cannot be parsed; the message quotes it and says what is wrong."""


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key, or ``None`` when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return f"label key {key!r}: the prefix before '/' is empty"
        if len(prefix) > MAX_PREFIX_LENGTH or not _SUBDOMAIN.match(prefix):
            return (
                f"label key {key!r}: the prefix must be a DNS subdomain (lowercase letters, "
                f"digits, '-' and '.', at most {MAX_PREFIX_LENGTH} characters)"
            )
    if not name or len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        return (
            f"label key {key!r}: the name must be 1 to {MAX_NAME_LENGTH} letters, digits, '-', "
            "'_' or '.', beginning and ending with a letter or digit"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or ``None`` when it is."""
    if len(value) > MAX_VALUE_LENGTH or not _VALUE.match(value):
        return (
            f"label value {value!r}: at most {MAX_VALUE_LENGTH} letters, digits, '-', '_' or "
            "'.', beginning and ending with a letter or digit"
        )
    return None


@attrs.frozen
class Requirement:
    """One term of a selector: ``key``, an operator and the values it compares with."""

    key: str
    operator: str  # EQUALS, NOT_EQUALS, IN, NOT_IN, EXISTS or DOES_NOT_EXIST
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator in (EQUALS, IN):
            return present and labels[self.key] in self.values
        if self.operator in (NOT_EQUALS, NOT_IN):
            return not present or labels[self.key] not in self.values
        if self.operator == EXISTS:
            return present
        return not present


@attrs.frozen
class LabelSelector:
    """A parsed selector; a label set matches when every requirement holds."""

    requirements: tuple[Requirement, ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse ``text``; raises :class:`SelectorError` naming the problem.

        An empty selector is refused: it would select every pod, which is never what a flag
        that finds particular pods means."""
        if not text.strip():
            raise SelectorError(f"label selector {text!r} is empty (it would match every pod)")
        return cls(_Parser(text).selector(), text)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return self.text


# -- parsing ------------------------------------------------------------------------------------

_IDENT = "identifier"
_END = "end"


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    """(kind, literal) pairs; kind is the literal itself for operators and punctuation."""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "=!" and text[i + 1 : i + 2] == "=":
            yield text[i : i + 2], text[i : i + 2]
            i += 2
        elif char in _SPECIAL:
            yield char, char
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in _SPECIAL:
                i += 1
            yield _IDENT, text[start:i]
    yield _END, ""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self._tokens = list(_tokens(text))
        self._pos = 0

    def _fail(self, problem: str) -> SelectorError:
        return SelectorError(f"label selector {self.text!r}: {problem}")

    def _peek(self) -> tuple[str, str]:
        return self._tokens[self._pos]

    def _next(self) -> tuple[str, str]:
        token = self._tokens[self._pos]
        if token[0] != _END:
            self._pos += 1
        return token

    @staticmethod
    def _shown(token: tuple[str, str]) -> str:
        return "the end" if token[0] == _END else repr(token[1])

    def selector(self) -> tuple[Requirement, ...]:
        requirements = [self._requirement()]
        while True:
            token = self._next()
            if token[0] == _END:
                return tuple(requirements)
            if token[0] != ",":
                raise self._fail(
                    f"expected ',' or the end after the term on {requirements[-1].key!r}, "
                    f"found {self._shown(token)}"
                )
            requirements.append(self._requirement())

    def _key(self, token: tuple[str, str]) -> str:
        if token[0] != _IDENT:
            raise self._fail(f"expected a label key, found {self._shown(token)}")
        problem = label_key_problem(token[1])
        if problem:
            raise self._fail(problem)
        return token[1]

    def _value(self, key: str) -> str:
        token = self._peek()
        if token[0] != _IDENT:
            # apimachinery accepts an empty value: ``key=`` selects key=""
            return ""
        self._next()
        problem = label_value_problem(token[1])
        if problem:
            raise self._fail(f"{problem} (label {key})")
        return token[1]

    def _requirement(self) -> Requirement:
        token = self._next()
        if token[0] == "!":
            return Requirement(self._key(self._next()), DOES_NOT_EXIST)
        key = self._key(token)
        kind, literal = self._peek()
        if kind in (",", _END):
            return Requirement(key, EXISTS)
        if kind in ("=", "=="):
            self._next()
            return Requirement(key, EQUALS, frozenset((self._value(key),)))
        if kind == "!=":
            self._next()
            return Requirement(key, NOT_EQUALS, frozenset((self._value(key),)))
        if kind == _IDENT and literal in (IN, NOT_IN):
            self._next()
            return Requirement(key, literal, self._set(key, literal))
        if kind in ("<", ">"):
            raise self._fail(
                f"the operator {literal!r} (on {key!r}) is not supported; use =, ==, !=, in, "
                "notin, key or !key"
            )
        raise self._fail(
            f"expected an operator (=, ==, !=, in, notin) or ',' after {key!r}, "
            f"found {self._shown((kind, literal))}"
        )

    def _set(self, key: str, operator: str) -> frozenset[str]:
        token = self._next()
        if token[0] != "(":
            raise self._fail(f"expected '(' after {key} {operator}, found {self._shown(token)}")
        values = [self._value(key)]
        while True:
            token = self._next()
            if token[0] == ")":
                return frozenset(values)
            if token[0] != ",":
                raise self._fail(
                    f"expected ',' or ')' in the values of {key} {operator}, "
                    f"found {self._shown(token)}"
                )
            values.append(self._value(key))

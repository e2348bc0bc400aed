"""A fast, narrow reader of the Prometheus text exposition format.

Inference servers expose pages of 50–500 KB of which the operator needs a handful of series
(two or three token counters, power and energy of each GPU). Parsing every line with a general
parser costs far more than the rest of a sampling cycle, so this module:

1. checks the shape of the whole body with C-speed byte operations (binary garbage, HTML, JSON,
   the quoted-JSON string some llama.cpp builds served, a body cut off mid-line, a line that
   starts with anything but a name, a brace or a comment), and
2. finds the lines of the requested series with ``bytes.find`` on their exact names, and parses
   only those lines (labels with escapes, value, optional timestamp).

Both steps have a fast path for what servers actually print and fall back to the general code for
anything else, so the fast path only ever decides *that* a body or line is ordinary, never what an
unusual one means: one regular-expression pass checks every line start and looks for an
OpenMetrics ``# EOF`` at once; names sharing a stem (``x_total``, ``x_created``,
``x_cached_total``) are found with one ``bytes.find`` pass per stem; a sample line with plain
labels, one space and a number is read with one match, and its label set is parsed once per page
(every counter of a server repeats the same few label sets). Control bytes inside a line are
looked for only in a body that is not ASCII: ``prometheus_client`` reads them, and binary data
is hardly ever ASCII. ``python -m bench scanner`` measures all this against
``prometheus_client``.

It must agree with ``prometheus_client.parser`` on every sample it returns (a test compares them
on every fixture page). It does not build metric families, read HELP/TYPE lines, or validate the
lines it was not asked about beyond their first character.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable

import attrs

from infercost.collect.errors import NotPrometheusTextError

Labels = tuple[tuple[str, str], ...]


@attrs.frozen(slots=True)
class Sample:
    """One sample line: the series name as written, its labels sorted by name, the value."""

    name: str
    labels: Labels
    value: float
    timestamp_ms: float | None = None

    def label(self, key: str, default: str | None = None) -> str | None:
        for name, value in self.labels:
            if name == key:
                return value
        return default

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


# Bytes allowed anywhere in a text page: TAB, LF, CR, printable ASCII, and UTF-8 sequences.
_ALLOWED_BYTES = bytes([9, 10, 13, *range(32, 127), *range(128, 256)])
# A line may start (after blanks) with a comment, a metric name, or a brace (quoted UTF-8 names).
_BAD_LINE_START = re.compile(rb"\n[ \t]*([^#a-zA-Z_:{ \t\r\n])")
_LABEL = re.compile(rb'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*')
_ESCAPE = re.compile(rb'\\[\\n"]')
_ESCAPES = {b"\\\\": b"\\", b"\\n": b"\n", b'\\"': b'"'}
_EOF = re.compile(rb"(?:^|(?<=\n))# EOF[ \t]*\r?(?:\n|$)")
# One pass over an ordinary page, whose every line starts with a name, a brace or '#': a line
# that starts otherwise (blank, empty, a bad character) or an EOF comment sends the body to the
# exact checks above.
_UNUSUAL_LINE = re.compile(rb"\n(?:[^#a-zA-Z_:{]|# EOF)")
# The rest of an ordinary sample line after its name: plain labels (no escapes, no blanks, no
# trailing comma), one space, a number, optionally one space and an integer timestamp.
_PLAIN_LABEL = rb'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
_PLAIN_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')
_PLAIN_REST = re.compile(
    rb"(?:\{((?:" + _PLAIN_LABEL + rb",)*" + _PLAIN_LABEL + rb")\})?"
    rb" ([-+.0-9eE]+)(?: (-?[0-9]+))?\n"
)
_SNIPPET = 60


def _snippet(data: bytes) -> str:
    text = data[:_SNIPPET].decode("utf-8", "replace")
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text + ("…" if len(data) > _SNIPPET else "")


def _line_at(body: bytes, pos: int) -> tuple[int, bytes]:
    start = body.rfind(b"\n", 0, pos) + 1
    end = body.find(b"\n", pos)
    if end < 0:
        end = len(body)
    return body.count(b"\n", 0, start) + 1, body[start:end]


def _reject(body: bytes, pos: int, what: str) -> NotPrometheusTextError:
    number, line = _line_at(body, pos)
    snippet = _snippet(line)
    return NotPrometheusTextError(f"not Prometheus text: {what} at line {number}: {snippet!r}")


def check_text(body: bytes) -> bytes:
    """Check that ``body`` looks like a Prometheus text page; return the part to read.

    The part returned stops before an OpenMetrics ``# EOF`` line. Raises
    :class:`NotPrometheusTextError` naming what is wrong. An empty body is valid (no samples).
    """
    stripped = body.lstrip()
    if not stripped:
        return b""
    # Binary data: a control byte at the start of a line is caught with the line starts below;
    # anywhere else it is looked for only in a body that is not ASCII (binary data is hardly
    # ever ASCII, and prometheus_client itself reads control bytes inside lines).
    if not body.isascii():
        if body.translate(None, _ALLOWED_BYTES):  # NUL is not allowed either
            bad = next(i for i, b in enumerate(body) if b not in _ALLOWED_BYTES)
            raise NotPrometheusTextError(
                f"not Prometheus text: binary data (byte 0x{body[bad]:02x} at offset {bad})"
            )
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotPrometheusTextError(
                f"not Prometheus text: invalid UTF-8 at offset {exc.start}"
            ) from None
    first = stripped[:1]
    if first == b"<":
        raise NotPrometheusTextError(
            f"not Prometheus text: the body looks like HTML: {_snippet(stripped)!r}"
        )
    if first == b'"':
        raise NotPrometheusTextError(
            "not Prometheus text: the body is a quoted JSON string "
            f"(a server that JSON-encodes its metrics page): {_snippet(stripped)!r}"
        )
    if first in (b"{", b"["):
        try:
            json.loads(stripped)
        except ValueError:
            if first == b"[":
                raise NotPrometheusTextError(
                    f"not Prometheus text: the body starts with '[': {_snippet(stripped)!r}"
                ) from None
        else:
            raise NotPrometheusTextError(
                f"not Prometheus text: the body is JSON: {_snippet(stripped)!r}"
            )
    if stripped[:1] not in b"#{" and not _is_name_start(stripped[0]):
        raise NotPrometheusTextError(
            f"not Prometheus text: unexpected first character: {_snippet(stripped)!r}"
        )
    if _UNUSUAL_LINE.search(body) is None and not body.startswith(b"# EOF"):
        if not body.endswith(b"\n"):
            raise _reject(body, len(body) - 1, "the body ends in the middle of a line (truncated)")
        return body
    eof = _EOF.search(body) if b"# EOF" in body else None
    if eof is not None:
        if body[eof.end() :].strip():
            raise _reject(body, eof.end(), "content after '# EOF'")
        body = body[: eof.start()]
    elif not body.endswith(b"\n"):
        raise _reject(body, len(body) - 1, "the body ends in the middle of a line (truncated)")
    bad_start = _BAD_LINE_START.search(body)
    if bad_start is not None:
        raise _reject(body, bad_start.start(1), "a line starts with an unexpected character")
    return body


def _is_name_start(byte: int) -> bool:
    return byte in (58, 95) or 65 <= byte <= 90 or 97 <= byte <= 122


def _unescape(raw: bytes) -> str:
    if b"\\" in raw:
        raw = _ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], raw)
    return raw.decode("utf-8")


def _parse_float(token: bytes) -> float:
    if b"_" in token:
        raise ValueError(token)
    return float(token)


def _parse_line(name: str, body: bytes, start: int, end: int) -> Sample:
    """Parse the rest of a sample line ``body[start:end]`` (after the metric name)."""
    labels: list[tuple[str, str]] = []
    pos = start
    if body[pos : pos + 1] == b"{":
        pos += 1
        while True:
            while body[pos : pos + 1] in (b" ", b"\t"):
                pos += 1
            if body[pos : pos + 1] == b"}":
                pos += 1
                break
            match = _LABEL.match(body, pos, end)
            if match is None:
                raise _reject(body, start, f"malformed labels of {name}")
            labels.append((match.group(1).decode("ascii"), _unescape(match.group(2))))
            pos = match.end()
            sep = body[pos : pos + 1]
            if sep == b",":
                pos += 1
            elif sep == b"}":
                pos += 1
                break
            else:
                raise _reject(body, start, f"malformed labels of {name}")
        if len(labels) > 1:
            labels.sort()
            for (a, _), (b, _) in itertools.pairwise(labels):
                if a == b:
                    raise _reject(body, start, f"duplicate label {a!r} in {name}")
    elif body[pos : pos + 1] not in (b" ", b"\t"):
        raise _reject(body, start, f"malformed sample of {name}")
    tokens = body[pos:end].split()
    if not tokens or len(tokens) > 2:
        raise _reject(body, start, f"expected a value and an optional timestamp for {name}")
    try:
        value = _parse_float(tokens[0])
        timestamp = _parse_float(tokens[1]) if len(tokens) == 2 else None
    except ValueError:
        raise _reject(body, start, f"invalid number in sample of {name}") from None
    return Sample(name, tuple(labels), value, timestamp)


class MetricsScanner:
    """Extracts the samples of a fixed set of series names from text pages.

    Names are exact sample names as they appear on the page (``vllm:prompt_tokens_total``,
    ``vllm:prompt_tokens_created``, ``tgi_request_input_length_sum``). Build one per backend and
    reuse it; :meth:`scan` is thread-safe.
    """

    def __init__(self, names: Iterable[str]):
        self.names: tuple[str, ...] = tuple(dict.fromkeys(names))
        for name in self.names:
            if not name or not all(_is_name_start(b) or 48 <= b <= 57 for b in name.encode()):
                raise ValueError(f"not a metric name: {name!r}")
        self._stems = _stems(self.names)

    def scan(self, body: bytes, *, checked: bool = False) -> dict[str, list[Sample]]:
        """Return the samples of every requested name (in page order; absent names map to []).

        ``checked=True`` skips :func:`check_text` for a body that is its result already.
        """
        text = body if checked else check_text(body)
        found: dict[str, list[Sample]] = {name: [] for name in self.names}
        label_sets: dict[bytes | None, Labels] = {None: ()}
        for stem in self._stems:
            needle, plain_line, names = stem.needle, stem.plain_line.match, stem.names
            pos = text.find(needle)
            while pos >= 0:
                nxt_pos = pos + 1
                if pos == 0 or text[pos - 1] == 10 or _at_line_start(text, pos):
                    sample = None
                    plain = plain_line(text, pos)
                    if plain is not None:
                        # an ordinary line; when it is not one after all (a repeated label, a
                        # value that is no number) the general parser below names the error
                        name, raw, value, stamp = plain.groups()
                        labels = label_sets.get(raw)
                        if labels is None and (labels := _plain_labels(raw)) is not None:
                            label_sets[raw] = labels
                        if labels is not None:
                            try:
                                number = float(value)
                                at = float(stamp) if stamp else None
                            except ValueError:
                                pass
                            else:
                                sample = Sample(names[name], labels, number, at)
                                nxt_pos = plain.end()
                    if sample is None and (member := _member_at(text, pos, stem.members)):
                        sample, nxt_pos = _read_sample(member[0], text, member[1])
                    if sample is not None:
                        found[sample.name].append(sample)
                pos = text.find(needle, nxt_pos)
        return found


@attrs.frozen
class _Stem:
    """Requested names sharing a stem: one ``find`` pass finds them all."""

    needle: bytes
    members: tuple[tuple[str, bytes], ...]
    """(name, its bytes), longest first, so ``x_total`` never shadows ``x_total_more``."""
    names: dict[bytes, str]
    plain_line: re.Pattern[bytes]
    """A whole ordinary sample line of one of the members (see :data:`_PLAIN_REST`)."""


def _stems(names: tuple[str, ...]) -> list[_Stem]:
    """Group names by a shared stem: a name's stem is the name without its last ``_suffix``
    (``x_tokens`` for ``x_tokens_total`` and ``x_tokens_created``) when that leaves at least 8
    characters; a stem that starts with a shorter one joins it."""
    own: dict[str, str] = {}
    for name in names:
        cut = name.rfind("_")
        own[name] = name[:cut] if cut >= 8 else name
    roots: list[str] = []
    for stem in sorted(set(own.values()), key=len):
        if not any(stem.startswith(root) for root in roots):
            roots.append(stem)
    groups: dict[str, list[str]] = {root: [] for root in roots}
    for name in names:
        root = next(r for r in roots if own[name].startswith(r))
        groups[root].append(name)
    out = []
    for root, group in groups.items():
        members = tuple((n, n.encode("ascii")) for n in sorted(group, key=len, reverse=True))
        either = b"|".join(re.escape(needle) for _, needle in members)
        out.append(
            _Stem(
                needle=root.encode("ascii"),
                members=members,
                names={needle: name for name, needle in members},
                plain_line=re.compile(b"(" + either + b")" + _PLAIN_REST.pattern),
            )
        )
    return out


def _member_at(
    text: bytes, pos: int, members: tuple[tuple[str, bytes], ...]
) -> tuple[str, int] | None:
    """The requested name whose sample line starts at ``pos``, and where its name ends."""
    for name, needle in members:
        if text.startswith(needle, pos):
            after = pos + len(needle)
            nxt = text[after : after + 1]
            if nxt in (b"{", b" ", b"\t"):
                return name, after
            if nxt in (b"\n", b"\r", b""):
                raise _reject(text, pos, f"no value for {name}")
    return None


def _read_sample(name: str, text: bytes, after: int) -> tuple[Sample, int]:
    """Parse the sample line of ``name`` whose name ends at ``after``; also return the line end."""
    end = text.find(b"\n", after)
    if end < 0:
        end = len(text)
    line_end = end
    if text[end - 1 : end] == b"\r":
        end -= 1
    return _parse_line(name, text, after, end), line_end


def _plain_labels(raw: bytes) -> Labels | None:
    """Labels of a :data:`_PLAIN_REST` match, sorted; None when a name repeats."""
    pairs: list[tuple[str, str]] = _PLAIN_PAIR.findall(raw.decode("utf-8"))
    if len(pairs) > 1:
        pairs.sort()
        if len({key for key, _ in pairs}) != len(pairs):
            return None
    return tuple(pairs)


def _at_line_start(text: bytes, pos: int) -> bool:
    while pos > 0:
        prev = text[pos - 1]
        if prev == 10:
            return True
        if prev not in (32, 9):
            return False
        pos -= 1
    return True


def scan(body: bytes, names: Iterable[str]) -> dict[str, list[Sample]]:
    """One-off form of :meth:`MetricsScanner.scan`."""
    return MetricsScanner(names).scan(body)


def serves_prefix(body: bytes, prefixes: Iterable[str]) -> bool:
    """Whether any sample line of an already checked body starts with one of ``prefixes``."""
    for prefix in prefixes:
        needle = prefix.encode("ascii")
        if body.startswith(needle):
            return True
        pos = body.find(b"\n" + needle)
        if pos >= 0:
            return True
    return False

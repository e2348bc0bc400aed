"""The text scanner reads exactly what prometheus_client reads, and rejects what is not text."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from infercost.collect import errors
from infercost.collect.scanning import MetricsScanner, NotPrometheusTextError, check_text, scan

DATA = Path(__file__).resolve().parents[1] / "data" / "metrics"
GOOD = sorted(p for p in DATA.glob("*.txt") if not p.name.startswith("bad-"))
BAD = sorted(DATA.glob("bad-*"))


Row = tuple[tuple[tuple[str, str], ...], float, float | None]


def _reference(text: str) -> dict[str, list[Row]]:
    """Samples of prometheus_client's parser, with the names as written on the page."""
    out: dict[str, list[Row]] = {}
    written = set(re.findall(r"^[ \t]*([a-zA-Z_:][a-zA-Z0-9_:]*)", text, flags=re.M))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name not in written and name.endswith("_total"):
                name = name[: -len("_total")]  # the parser appends _total to bare counters
            labels = tuple(sorted(sample.labels.items()))
            out.setdefault(name, []).append((labels, float(sample.value), sample.timestamp))
    return out


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_agrees_with_prometheus_client_on_every_fixture(path: Path) -> None:
    body = path.read_bytes()
    reference = _reference(body.decode())
    assert reference, "fixture has samples"
    found = scan(body, reference)
    assert set(found) == set(reference)
    for name, expected in reference.items():
        got = [(s.labels, s.value, s.timestamp_ms) for s in found[name]]
        assert len(got) == len(expected), name
        for (labels, value, ts), (e_labels, e_value, e_ts) in zip(got, expected, strict=True):
            assert labels == e_labels
            assert _same(value, e_value), (name, labels, value, e_value)
            assert (ts / 1000 if ts is not None else None) == e_ts


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_rejects_bodies_that_are_not_text(path: Path) -> None:
    body = path.read_bytes()
    with pytest.raises(NotPrometheusTextError) as info:
        scan(body, ["vllm:prompt_tokens_total", "llamacpp:prompt_tokens_total"])
    assert info.value.reason == errors.NOT_PROMETHEUS_TEXT
    assert str(info.value).startswith("not Prometheus text: ")
    assert "Traceback" not in str(info.value)


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("bad-html-error.html", "looks like HTML"),
        ("bad-json.json", "is JSON"),
        ("bad-llamacpp-quoted-json.txt", "quoted JSON string"),
        ("bad-truncated.txt", "truncated"),
        ("bad-binary.bin", "binary data"),
    ],
)
def test_rejection_says_what_is_wrong(fixture: str, words: str) -> None:
    with pytest.raises(NotPrometheusTextError, match=words):
        check_text((DATA / fixture).read_bytes())


def test_prometheus_client_also_rejects_the_bad_text_fixtures() -> None:
    for name in ("bad-html-error.html", "bad-llamacpp-quoted-json.txt", "bad-json.json"):
        with pytest.raises(ValueError):
            list(text_string_to_metric_families((DATA / name).read_text()))


def test_edge_cases_are_read_exactly() -> None:
    found = scan((DATA / "edge-cases.txt").read_bytes(), ["app:tokens_total", "app:gauge"])
    tokens = found["app:tokens_total"]
    assert [s.label("model_name") for s in tokens] == [
        'a"quoted" model',
        "back\\slash",
        "new\nline",
        "braces } and , commas",
        "indented",
    ]
    assert [s.value for s in tokens] == [1.5e6, 2500.0, 42.0, 7.0, 11.0]
    assert [s.timestamp_ms for s in tokens] == [None, 1764230400000.0, None, 1764230400123.0, None]
    # labels are sorted whatever their order on the page
    assert all(s.labels == tuple(sorted(s.labels)) for s in tokens)
    gauges = {s.label("kind"): s.value for s in found["app:gauge"]}
    assert math.isnan(gauges["nan"])
    assert gauges["pinf"] == math.inf and gauges["ninf"] == -math.inf
    assert gauges["ünïcødé ✓"] == 3.0


def test_only_requested_names_are_returned_and_prefixes_do_not_match() -> None:
    found = scan((DATA / "edge-cases.txt").read_bytes(), ["app:tokens", "app:nolabels"])
    assert found["app:tokens"] == []  # neither app:tokens_total nor the HELP text
    assert [s.value for s in found["app:nolabels"]] == [17.0]


def test_crlf_page_reads_like_lf_page() -> None:
    names = ["app:tokens_total", "app:gauge", "app:emptylabels"]
    lf = scan((DATA / "edge-cases.txt").read_bytes(), names)
    crlf = scan((DATA / "edge-cases-crlf.txt").read_bytes(), names)
    for name in names:
        assert [(s.labels, repr(s.value)) for s in lf[name]] == [
            (s.labels, repr(s.value)) for s in crlf[name]
        ]


def test_openmetrics_eof_ends_the_page() -> None:
    body = (DATA / "openmetrics.txt").read_bytes()
    assert scan(body, ["vllm:prompt_tokens_total"])["vllm:prompt_tokens_total"][0].value == 1234
    with pytest.raises(NotPrometheusTextError, match="after '# EOF'"):
        scan(body + b"vllm:prompt_tokens_total 1\n", ["vllm:prompt_tokens_total"])
    # a comment that merely starts with "# EOF" is a comment
    assert check_text(b"# EOFX is a comment\nx 1\n")


def test_empty_body_has_no_samples() -> None:
    assert scan(b"", ["x"]) == {"x": []}
    assert scan(b"\n\n", ["x"]) == {"x": []}


@pytest.mark.parametrize(
    "line",
    [
        b'x{a="1" 5\n',  # unclosed labels
        b"x{a=1} 5\n",  # unquoted value
        b'x{a="1",a="2"} 5\n',  # duplicate label
        b"x\n",  # no value
        b"x 1_000\n",  # underscores are not numbers here
        b"x abc\n",
        b"x 1 2 3\n",
    ],
)
def test_malformed_requested_lines_are_errors(line: bytes) -> None:
    with pytest.raises(NotPrometheusTextError, match="line 2"):
        scan(b"# HELP x help\n" + line, ["x"])


@pytest.mark.parametrize(
    "body",
    [
        b"x 1\n<p>oops</p>\n",
        b'x 1\n  "quoted": 3\n',
        b"x 1\n\x01\x02\n",
        b"x 1\n\xff\xfe\n",
        b"x 1\n1 2\n",
    ],
)
def test_lines_that_cannot_start_a_text_line_are_errors_anywhere(body: bytes) -> None:
    with pytest.raises(NotPrometheusTextError):
        scan(body, ["x"])


def test_scanner_rejects_bad_names() -> None:
    with pytest.raises(ValueError, match="not a metric name"):
        MetricsScanner(["bad name"])

"""Fuzzing what the operator reads from targets it does not control: random bytes and real
pages broken at random (cut, spliced, values replaced by NaN, negatives, junk) go through the
scanner, every backend adapter and the DCGM reader.

Properties: the only exception ever raised is the reader's own ``ScrapeError`` (which the
sampler turns into a counted, named scrape error), never a crash; nothing impossible comes out
(a reading that passes is a finite, non-negative number); and whenever prometheus_client also
reads the page, the token readings are the samples it reads. ``test/collect`` holds the
scanner-versus-prometheus_client property on well-formed generated pages; these add broken
input and the adapters on top of the scanner.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from infercost.collect.backends import BACKEND_NAMES, BACKENDS, read_tokens
from infercost.collect.dcgm import read_dcgm
from infercost.collect.errors import NotPrometheusTextError, ScrapeError
from infercost.collect.scanning import scan

DATA = Path(__file__).resolve().parent.parent / "data" / "metrics"
# every good page but the two largest (prometheus_client reads 100 KB slowly, many times)
PAGES = {
    p.name: p.read_bytes()
    for p in sorted(DATA.iterdir())
    if p.suffix == ".txt" and not p.name.startswith("bad-") and p.stat().st_size < 40_000
}
ALL_NAMES = sorted(
    {n for b in BACKENDS.values() for r in b.series for n in (r.name, r.created_name)}
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_VALUE = re.compile(rb"(?<=[} ])(-?[0-9][0-9.e+\-]*|NaN|[+-]Inf)(?=[ \r\n]|$)", re.MULTILINE)
ODD_VALUES = [
    b"NaN",
    b"-1",
    b"+Inf",
    b"-Inf",
    b"1e400",
    b"1_000",
    b"0x1F",
    b"",
    b"-0",
    b"12a",
    b"infinity",
    b"+nan",
    "١٢".encode(),  # Arabic-Indic digits: Python's float() reads them
]


BACKEND_OF_PAGE = {
    "vllm": "vllm",
    "llamacpp": "llamacpp",
    "sglang": "sglang",
    "lmdeploy": "lmdeploy",
    "nim": "nim",
    "tgi": "tgi",
    "triton": "triton",
}
BREAKAGES = ["cut", "splice", "value", "flip", "dup-line", "drop-line", "crlf", "eof", "quote"]
# breakages after which the page may still be valid text
GENTLE = ["line-cut", "value", "value", "dup-line", "drop-line", "crlf", "eof"]


@st.composite
def broken_pages(draw: st.DrawFn, kinds: list[str] = BREAKAGES) -> tuple[str, bytes]:
    """(name, body): a real page with one to three random breakages."""
    name = draw(st.sampled_from(sorted(PAGES)))
    page = bytearray(PAGES[name])
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(kinds))
        if not page:
            break
        at = draw(st.integers(0, len(page) - 1))
        if kind == "cut":
            del page[at:]
        elif kind == "line-cut":
            del page[page.rfind(b"\n", 0, at) + 1 :]
        elif kind == "splice":
            page[at:at] = draw(st.binary(min_size=1, max_size=40))
        elif kind == "value":
            values = list(_VALUE.finditer(page))
            if values:
                m = values[draw(st.integers(0, len(values) - 1))]
                new = draw(
                    st.one_of(
                        st.sampled_from(ODD_VALUES),
                        st.floats(allow_nan=True).map(lambda f: repr(f).encode()),
                        st.integers(-(10**20), 10**20).map(lambda i: str(i).encode()),
                    )
                )
                page[m.start() : m.end()] = new
        elif kind == "flip":
            page[at] = draw(st.integers(0, 255))
        elif kind in ("dup-line", "drop-line"):
            start = page.rfind(b"\n", 0, at) + 1
            end = page.find(b"\n", at)
            end = len(page) if end < 0 else end + 1
            line = bytes(page[start:end])
            if kind == "dup-line":
                page[end:end] = line
            else:
                del page[start:end]
        elif kind == "crlf":
            page = bytearray(bytes(page).replace(b"\n", b"\r\n"))
        elif kind == "eof":
            start = page.rfind(b"\n", 0, at) + 1
            page[start:start] = b"# EOF\n"
        elif kind == "quote":
            quote = page.find(b'"', at)
            if quote >= 0:
                del page[quote]
    return name, bytes(page)


bodies = st.one_of(st.binary(max_size=3000), broken_pages().map(lambda p: p[1]))


def _sane(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and value >= 0)


@FUZZ
@given(bodies)
def test_only_scrape_errors_come_out_and_nothing_impossible_gets_in(body: bytes) -> None:
    try:
        scan(body, ALL_NAMES)
    except NotPrometheusTextError as exc:
        assert str(exc).startswith("not Prometheus text: ")
    for backend in BACKEND_NAMES:
        try:
            page = read_tokens(backend, body)
        except ScrapeError as exc:
            assert str(exc) and "Traceback" not in str(exc)
            continue
        for reading in page.readings:
            assert math.isfinite(reading.value) and reading.value >= 0, reading
            assert reading.created is None or not math.isnan(reading.created)
    try:
        dcgm = read_dcgm(body)
    except ScrapeError:
        return
    for gpu in dcgm.gpus:
        assert _sane(gpu.power_watts) and _sane(gpu.energy_mj), gpu


def _reference(body: bytes) -> dict[str, list[tuple[tuple[tuple[str, str], ...], float]]] | None:
    """Samples by name as prometheus_client reads them; None when it rejects the page."""
    try:
        text = body.decode("utf-8")
        out: dict[str, list[tuple[tuple[tuple[str, str], ...], float]]] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.setdefault(s.name, []).append((tuple(sorted(s.labels.items())), s.value))
        return out
    except Exception:  # prometheus_client raises ValueError, TypeError, IndexError, ...
        return None


NAN_CREATED = (
    b"# TYPE vllm:prompt_tokens counter\n"
    b'vllm:prompt_tokens_total{engine="0",model_name="om-model"} 1234.0\n'
    b'vllm:prompt_tokens_created{engine="0",model_name="om-model"} NaN\n'
    b"# EOF\n"
)


@FUZZ
@given(broken_pages(GENTLE), st.sampled_from(sorted(BACKENDS)))
@example(page_and_body=("openmetrics.txt", NAN_CREATED), other="vllm")
def test_readings_are_the_samples_prometheus_client_reads(
    page_and_body: tuple[str, bytes], other: str
) -> None:
    name, body = page_and_body
    prefix = name.split("-")[0].split(".")[0]
    backend = BACKEND_OF_PAGE.get(prefix, other)
    try:
        page = read_tokens(backend, body)
    except ScrapeError as exc:
        event(f"rejected: {exc.reason}")
        return
    reference = _reference(body)
    if reference is None:
        event("read, but prometheus_client rejects the page")
        return
    event("compared with prometheus_client")
    spec = BACKENDS[backend]
    expected = set()
    for rule in spec.series:
        for labels, value in reference.get(rule.name, ()):
            wanted = dict(rule.require)
            if all(dict(labels).get(k, v) == v for k, v in wanted.items()):
                # a sample value is a float64 (the exposition format); prometheus_client keeps
                # integer text as an int, exact beyond 2**53 where a float is not
                expected.add((rule.name, labels, float(value)))
    got = {(r.series, r.labels, r.value) for r in page.readings}
    assert got == expected
    for r in page.readings:
        created = [v for lbl, v in reference.get(spec_created(r.series), ()) if lbl == r.labels]
        # a *_created that is not a time (NaN, ±Inf, negative) is read as absent
        is_time = bool(created) and math.isfinite(created[0]) and created[0] >= 0
        assert r.created == (created[0] if is_time else None)
        model = dict(r.labels).get(spec.model_label or "") or None
        assert r.model == model


def spec_created(series: str) -> str:
    for suffix in ("_total", "_sum"):
        if series.endswith(suffix):
            return series[: -len(suffix)] + "_created"
    return series + "_created"

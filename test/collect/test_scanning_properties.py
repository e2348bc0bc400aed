"""Property: on any well-formed page, the scanner returns exactly prometheus_client's samples."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from infercost.collect.scanning import scan

NAMES = ["vllm:prompt_tokens_total", "vllm:prompt_tokens_created", "tgi_x_sum", "nv_llm_y_sum"]
LABEL_NAMES = ["model_name", "engine", "le", "a_b", "_x", "Z9"]

label_values = st.lists(
    st.sampled_from([*'ab"\\\n},={ #é✓\t', "model", "-0.5", "+Inf"]), max_size=8
).map("".join)
values = st.one_of(
    st.integers(min_value=0, max_value=10**15).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.sampled_from(["NaN", "+Inf", "-Inf", "1.5e+06", "2E3", "-0", "0.000001"]),
)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@st.composite
def sample_lines(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(NAMES))
    keys = draw(st.lists(st.sampled_from(LABEL_NAMES), unique=True, max_size=4))
    parts = []
    for key in keys:
        pad = draw(st.sampled_from(["", " "]))
        parts.append(f'{pad}{key}{pad}={pad}"{escape(draw(label_values))}"{pad}')
    trailing = "," if parts and draw(st.booleans()) else ""
    labels = "{" + ",".join(parts) + trailing + "}" if (parts or draw(st.booleans())) else ""
    sep = draw(st.sampled_from([" ", "\t", "  "]))
    line = f"{name}{labels}{sep}{draw(values)}"
    if draw(st.booleans()):
        line += f"{sep}{draw(st.integers(min_value=0, max_value=2**41))}"
    return line


@st.composite
def pages(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        kind = draw(st.sampled_from(["sample", "sample", "sample", "help", "comment", "blank"]))
        if kind == "sample":
            lines.append(draw(sample_lines()))
        elif kind == "help":
            lines.append(f"# HELP {draw(st.sampled_from(NAMES))} some help \\n text")
        elif kind == "comment":
            lines.append("# " + draw(st.sampled_from(NAMES)) + " 12 mentioned in a comment")
        else:
            lines.append("")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines) + newline


def normalised(value: float) -> str:
    return "nan" if math.isnan(value) else repr(float(value) + 0.0)  # -0 equals 0


@settings(max_examples=300, deadline=None)
@given(pages())
def test_scanner_matches_prometheus_client_on_generated_pages(page: str) -> None:
    reference: dict[str, list[tuple[object, ...]]] = {name: [] for name in NAMES}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            reference[sample.name].append(
                (
                    tuple(sorted(sample.labels.items())),
                    normalised(sample.value),
                    sample.timestamp,
                )
            )
    found = scan(page.encode("utf-8"), NAMES)
    for name in NAMES:
        got = [
            (
                s.labels,
                normalised(s.value),
                s.timestamp_ms / 1000 if s.timestamp_ms is not None else None,
            )
            for s in found[name]
        ]
        assert got == reference[name], name

"""Token extraction from metrics pages: InferCost's scanner against prometheus_client's parser.

SPEC §9 asks for ≥ 80× the speed of ``prometheus_client``'s text parser on a realistic 100 KB
vLLM page (histograms, four engines of a data-parallel server). Both sides do the whole job,
from the bytes a scrape returns to the token counters of every series: the reference decodes
the body, parses every family and picks the counters out; the scanner checks the body and reads
only those lines (:func:`infercost.collect.backends.read_tokens`). Their results are compared
before anything is timed. A llama.cpp page (small, no labels) is measured the same way, and a
plain ``re.finditer`` over the vLLM page's token lines gives the speed of the simplest regular
expression pass over the same bytes, for scale.

Run: ``python -m bench scanner [--small] [--rounds N] [--engines N]``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from bench._timing import best_cpu_seconds, emit, log, machine, parser
from infercost.collect.backends import BACKENDS, read_tokens
from infercost.testing.simservers.pages import ModelCounters, render_llamacpp, render_vllm

Readings = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def vllm_page(engines: int) -> bytes:
    """A vLLM 0.11 page of a data-parallel server (one series set per engine)."""
    counters = [
        ModelCounters(
            model="meta-llama/Llama-3.3-70B-Instruct",
            engine=str(e),
            input_tokens=9_231_004 + 17 * e,
            cached_tokens=3_000_000 + e,
            output_tokens=2_100_455 + 3 * e,
            requests=5_270 + e,
            running=7,
            waiting=2,
            created=1_764_230_412.518,
        )
        for e in range(engines)
    ]
    return render_vllm(counters)


def llamacpp_page() -> bytes:
    counter = ModelCounters(
        model="llama-3.2-3b", input_tokens=812_345, cached_tokens=120_002, output_tokens=95_431
    )
    return render_llamacpp(counter)


def with_scanner(backend: str) -> Callable[[bytes], Readings]:
    def read(body: bytes) -> Readings:
        page = read_tokens(backend, body)
        return {(r.series, r.labels): r.value for r in page.readings}

    return read


def with_prometheus_client(backend: str) -> Callable[[bytes], Readings]:
    names = set(BACKENDS[backend].counter_names)

    def read(body: bytes) -> Readings:
        out = {}
        for family in text_string_to_metric_families(body.decode("utf-8")):
            for sample in family.samples:
                if sample.name in names:
                    out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
        return out

    return read


def token_lines_regex(backend: str) -> re.Pattern[bytes]:
    """The simplest regular expression that finds the token sample lines (no checks at all)."""
    names = b"|".join(re.escape(n.encode()) for n in BACKENDS[backend].counter_names)
    return re.compile(rb"^(?:" + names + rb")(?:\{[^\n]*\})? ([^ \n]+)$", re.MULTILINE)


def measure(backend: str, body: bytes, rounds: int) -> dict[str, float] | None:
    ours, reference = with_scanner(backend), with_prometheus_client(backend)
    if ours(body) != reference(body):
        log(f"the scanner and prometheus_client disagree on the {backend} page")
        return None
    pattern = token_lines_regex(backend)
    found = sum(1 for _ in pattern.finditer(body))
    if found != len(reference(body)):
        log(f"the plain regex found {found} lines on the {backend} page")
    scanner_s = best_cpu_seconds(lambda: ours(body), rounds=rounds)
    reference_s = best_cpu_seconds(lambda: reference(body), rounds=rounds)
    regex_s = best_cpu_seconds(lambda: list(pattern.finditer(body)), rounds=rounds)
    mb = len(body) / 1e6
    return {
        "page_bytes": len(body),
        "series_read": len(reference(body)),
        "scanner_ms": round(scanner_s * 1e3, 4),
        "prometheus_client_ms": round(reference_s * 1e3, 4),
        "speedup": round(reference_s / scanner_s, 1),
        "mb_per_s": round(mb / scanner_s, 1),
        "regex_finditer_mb_per_s": round(mb / regex_s, 1),
        "prometheus_client_mb_per_s": round(mb / reference_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--rounds", type=int, help="timing rounds, best kept (default 9; 2 --small)")
    p.add_argument("--engines", type=int, default=4, help="engines on the vLLM page (4 ≈ 100 KB)")
    args = p.parse_args(argv)
    rounds = args.rounds or (2 if args.small else 9)

    vllm = measure("vllm", vllm_page(args.engines), rounds)
    llamacpp = measure("llamacpp", llamacpp_page(), rounds)
    if vllm is None or llamacpp is None:
        return 1
    log(f"vLLM page: {vllm['speedup']}×; llama.cpp page: {llamacpp['speedup']}×")
    return emit(
        {
            "benchmark": "scanner",
            "small": args.small,
            **vllm,
            "target_speedup": 80,
            "llamacpp": llamacpp,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    sys.exit(main())

"""Token counters of each inference backend (SPEC §3.1), read from one metrics page.

An adapter turns a page into *raw* readings: one per series as served, with its full label set,
the token roles it counts, its model (``None`` when the series has no model label) and the
value of its ``*_created`` series when the server exposes one. Deltas, watermarks and resets are
the ledger's job; this module never sums across series (a sum over ``engine`` taken before the
deltas would hide a reset of one engine).

Roles: ``input`` counts every prompt token, cached ones included; ``cached`` is the part of the
input served from a cache; ``output`` counts generated tokens. One series may carry several
roles: llama.cpp's ``llamacpp:prompt_tokens_cached_total`` is both input and cached, because
llama.cpp's ``prompt_tokens_total`` leaves cache hits out.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping

import attrs

from infercost.api.sharing import SharingTable
from infercost.collect import errors
from infercost.collect.errors import MissingMetricsError, ScrapeError
from infercost.collect.scanning import Labels, MetricsScanner, Sample, check_text, serves_prefix


class Role(enum.Enum):
    INPUT = "input"
    CACHED = "cached"
    OUTPUT = "output"


INPUT = frozenset({Role.INPUT})
CACHED = frozenset({Role.CACHED})
OUTPUT = frozenset({Role.OUTPUT})
INPUT_AND_CACHED = frozenset({Role.INPUT, Role.CACHED})


@attrs.frozen
class SeriesRule:
    """One counter of a backend: its exact sample name and the roles it counts.

    ``require`` lists labels a series must carry with exactly that value *when it carries the
    label at all* (Triton's ``response_metric_type``).
    """

    name: str
    roles: frozenset[Role]
    require: tuple[tuple[str, str], ...] = ()

    @property
    def created_name(self) -> str:
        for suffix in ("_total", "_sum"):
            if self.name.endswith(suffix):
                return self.name[: -len(suffix)] + "_created"
        return self.name + "_created"

    def accepts(self, sample: Sample) -> bool:
        return all(sample.label(key) in (None, value) for key, value in self.require)


@attrs.frozen
class Backend:
    """What the operator knows about one inference server: where it serves, what it counts."""

    name: str
    title: str
    default_port: int
    default_path: str
    model_label: str | None
    series: tuple[SeriesRule, ...]
    markers: tuple[str, ...]
    """Name prefixes of sample lines that prove a page is this backend's, counters or not."""

    def scanner(self) -> MetricsScanner:
        return _scanner(self)

    @property
    def counter_names(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.series)


_BACKEND_LIST = (
    Backend(
        name="vllm",
        title="vLLM",
        default_port=8000,
        default_path="/metrics",
        model_label="model_name",
        series=(
            SeriesRule("vllm:prompt_tokens_total", INPUT),
            SeriesRule("vllm:prompt_tokens_cached_total", CACHED),
            SeriesRule("vllm:generation_tokens_total", OUTPUT),
        ),
        markers=("vllm:",),
    ),
    Backend(
        name="sglang",
        title="SGLang",
        default_port=30000,
        default_path="/metrics",
        model_label="model_name",
        series=(
            SeriesRule("sglang:prompt_tokens_total", INPUT),
            SeriesRule("sglang:generation_tokens_total", OUTPUT),
        ),
        markers=("sglang:",),
    ),
    Backend(
        name="lmdeploy",
        title="LMDeploy",
        default_port=23333,
        default_path="/metrics",
        model_label="model_name",
        series=(
            SeriesRule("lmdeploy:prompt_tokens_total", INPUT),
            SeriesRule("lmdeploy:generation_tokens_total", OUTPUT),
        ),
        markers=("lmdeploy:",),
    ),
    Backend(
        name="llamacpp",
        title="llama.cpp",
        default_port=8080,
        default_path="/metrics",
        model_label=None,
        series=(
            SeriesRule("llamacpp:prompt_tokens_total", INPUT),
            SeriesRule("llamacpp:prompt_tokens_cached_total", INPUT_AND_CACHED),
            SeriesRule("llamacpp:tokens_predicted_total", OUTPUT),
        ),
        markers=("llamacpp:",),
    ),
    Backend(
        name="tgi",
        title="TGI",
        default_port=80,
        default_path="/metrics",
        model_label=None,
        series=(
            SeriesRule("tgi_request_input_length_sum", INPUT),
            SeriesRule("tgi_request_generated_tokens_sum", OUTPUT),
        ),
        markers=("tgi_",),
    ),
    Backend(
        name="triton",
        title="Triton (TensorRT-LLM)",
        default_port=8002,
        default_path="/metrics",
        model_label="model",
        series=(
            SeriesRule(
                "nv_llm_input_token_len_sum",
                INPUT,
                require=(("response_metric_type", "total_input_tokens"),),
            ),
            SeriesRule(
                "nv_llm_output_token_len_sum",
                OUTPUT,
                require=(("response_metric_type", "total_output_tokens"),),
            ),
        ),
        markers=("nv_llm_", "nv_trt_llm_"),
    ),
    Backend(
        name="nim",
        title="NVIDIA NIM",
        default_port=8000,
        default_path="/v1/metrics",
        model_label="model_name",
        series=(
            SeriesRule("prompt_tokens_total", INPUT),
            SeriesRule("generation_tokens_total", OUTPUT),
        ),
        markers=("prompt_tokens_total", "generation_tokens_total", "num_requests_running"),
    ),
)

BACKENDS: Mapping[str, Backend] = {b.name: b for b in _BACKEND_LIST}
"""Known backends by the value of ``infercost.ai/backend``, in auto-detection order."""

AUTO = "auto"
BACKEND_NAMES: tuple[str, ...] = (*BACKENDS, AUTO)

_SCANNERS: dict[str, MetricsScanner] = {}


def _scanner(backend: Backend) -> MetricsScanner:
    scanner = _SCANNERS.get(backend.name)
    if scanner is None:
        names = [n for rule in backend.series for n in (rule.name, rule.created_name)]
        scanner = _SCANNERS[backend.name] = MetricsScanner(names)
    return scanner


_AUTO_SCANNER = MetricsScanner(
    n for b in _BACKEND_LIST for rule in b.series for n in (rule.name, rule.created_name)
)


@attrs.frozen
class TokenReading:
    """One raw token counter as served: the ledger keeps a watermark per (pod UID, :attr:`key`)."""

    series: str
    labels: Labels
    roles: frozenset[Role]
    model: str | None
    value: float
    created: float | None = None
    """The series' ``*_created`` value (seconds); a change means the counter was reset."""

    @property
    def key(self) -> tuple[str, Labels]:
        return self.series, self.labels


@attrs.frozen
class TokenPage:
    """The token readings of one page, and the backend they were read as."""

    backend: str
    readings: tuple[TokenReading, ...]

    def totals(self) -> dict[tuple[str | None, Role], float]:
        """Current counter values summed per (model, role) — for display and tests only."""
        out: dict[tuple[str | None, Role], float] = {}
        for reading in self.readings:
            for role in reading.roles:
                key = (reading.model, role)
                out[key] = out.get(key, 0.0) + reading.value
        return out


def detect_backend(body: bytes) -> Backend:
    """The backend whose metrics a page serves (SPEC §3.1 ``auto``)."""
    text = check_text(body)
    found = _AUTO_SCANNER.scan(text, checked=True)
    for backend in _BACKEND_LIST:
        if any(found[rule.name] for rule in backend.series):
            return backend
    for backend in _BACKEND_LIST:
        if serves_prefix(text, backend.markers):
            return backend
    names = ", ".join(b.series[0].name for b in _BACKEND_LIST)
    raise MissingMetricsError(
        f"cannot detect the inference backend: the page serves none of {names}"
    )


def read_tokens(backend: str, body: bytes) -> TokenPage:
    """Read the token counters of ``backend`` (a name of :data:`BACKEND_NAMES`) from a page.

    Raises :class:`ScrapeError`: ``not_prometheus_text`` for bodies that are not text,
    ``missing_metrics`` for a page that is not this backend's, ``other`` for a counter with an
    impossible value. A page of the right backend that has no counters yet (TGI before its first
    request) yields no readings — that is zero tokens *observed*, not an error.
    """
    if backend == AUTO:
        spec = detect_backend(body)
    else:
        try:
            spec = BACKENDS[backend]
        except KeyError:
            raise ValueError(
                f"unknown backend {backend!r}; expected one of {', '.join(BACKEND_NAMES)}"
            ) from None
    text = check_text(body)
    found = spec.scanner().scan(text, checked=True)
    readings: list[TokenReading] = []
    seen: set[tuple[str, Labels]] = set()
    for rule in spec.series:
        # a *_created that is not a time (NaN, ±Inf, negative) says nothing about resets
        created = {
            s.labels: s.value
            for s in found[rule.created_name]
            if math.isfinite(s.value) and s.value >= 0
        }
        for sample in found[rule.name]:
            if not rule.accepts(sample):
                continue
            reading = _reading(spec, rule, sample, created.get(sample.labels))
            if reading.key in seen:
                raise ScrapeError(
                    f"{spec.title} page repeats the series {_describe(sample)}",
                    reason=errors.OTHER,
                )
            seen.add(reading.key)
            readings.append(reading)
    if not readings and not serves_prefix(text, spec.markers):
        expected = ", ".join(spec.counter_names)
        raise MissingMetricsError(
            f"the page is not a {spec.title} metrics page: none of {expected} "
            f"and no series starting with {' or '.join(spec.markers)}"
        )
    return TokenPage(spec.name, tuple(readings))


def _reading(
    spec: Backend, rule: SeriesRule, sample: Sample, created: float | None
) -> TokenReading:
    value = sample.value
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise ScrapeError(
            f"{spec.title} counter {_describe(sample)} has the impossible value {value}",
            reason=errors.OTHER,
        )
    labels = _shared_labels(sample.labels)
    model = sample.label(spec.model_label) if spec.model_label else None
    return TokenReading(
        series=sample.name,
        labels=labels,
        roles=rule.roles,
        model=model or None,
        value=value,
        created=created,
    )


# Label sets of token series, one copy each: every replica of a model serves the same few, and
# what the operator keeps between cycles would otherwise hold them once per pod.
_shared_labels = SharingTable(4096).one


def _describe(sample: Sample) -> str:
    labels = ",".join(f'{k}="{v}"' for k, v in sample.labels)
    return f"{sample.name}{{{labels}}}"

"""Metrics pages in the exact formats of real inference servers and DCGM exporters.

Each renderer takes ground-truth counters and returns the bytes the real server would serve:

- vLLM (V1 and V0), SGLang, LMDeploy and NIM are Python servers using ``prometheus_client``;
  their pages are produced with ``prometheus_client`` itself (``_total`` on counter TYPE lines,
  ``_created`` gauges, Go-style float formatting, sorted labels);
- llama.cpp writes integers for its counters and plain decimals for gauges, no labels;
- TGI uses the Rust ``metrics-exporter-prometheus`` crate: TYPE lines without HELP, histograms
  with ``_bucket``/``_sum``/``_count``, an empty line between families, no ``_created``;
- Triton (prometheus-cpp) writes ``_count`` and ``_sum`` before the buckets, ``le`` last;
- dcgm-exporter renders a Go template: labels in a fixed, unsorted order, power with ``%f``.

The static fixture pages under ``test/data/metrics`` were produced by these renderers and then
reviewed against the examples of the real servers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import attrs
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = [
    "GpuState",
    "ModelCounters",
    "render",
    "render_dcgm",
]


@attrs.define
class ModelCounters:
    """Ground-truth token counters of one (model, engine) of a simulated server.

    ``input_tokens`` counts every prompt token, cached ones included (SPEC §3.1 semantics);
    ``cached_tokens`` is the part of it served from the prefix cache.
    """

    model: str
    engine: str = "0"
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    created: float = 1_764_230_400.0  # 2025-11-27T08:00:00Z, seconds since the epoch
    running: int = 0
    waiting: int = 0

    def serve(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> None:
        if cached_tokens > input_tokens:
            raise ValueError("cached tokens are part of the input tokens")
        self.input_tokens += input_tokens
        self.cached_tokens += cached_tokens
        self.output_tokens += output_tokens
        self.requests += 1 if (input_tokens or output_tokens) else 0

    def reset(self, created: float) -> None:
        self.input_tokens = self.cached_tokens = self.output_tokens = self.requests = 0
        self.created = created


@attrs.define
class GpuState:
    """One simulated GPU as dcgm-exporter sees it."""

    index: int
    uuid: str
    model_name: str = "NVIDIA H100 80GB HBM3"
    power_watts: float = 70.0
    energy_mj: int = 0
    pod: str = ""
    namespace: str = ""
    container: str = ""
    pci_bus_id: str = ""
    mig_instances: tuple[tuple[str, str, str, str], ...] = ()
    """(GPU_I_ID, GPU_I_PROFILE, namespace, pod) of each MIG instance, when MIG is on."""


# ---------------------------------------------------------------------------------------------
# prometheus_client-based servers


class _Families(Collector):
    def __init__(self, families: Sequence[Metric]):
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


def _expose(families: Sequence[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


def _process_families(uptime_seconds: float, created: float) -> list[Metric]:
    """The default collectors of prometheus_client (gc, platform, process)."""
    families = []
    for name, doc in (
        ("python_gc_objects_collected", "Objects collected during gc"),
        ("python_gc_objects_uncollectable", "Uncollectable objects found during GC"),
        ("python_gc_collections", "Number of times this generation was collected"),
    ):
        metric = Metric(name, doc, "counter")
        for gen, value in (("0", 18734.0), ("1", 3211.0), ("2", 97.0)):
            metric.add_sample(name + "_total", {"generation": gen}, value if "obj" in name else 7)
        families.append(metric)
    info = Metric("python_info", "Python platform information", "gauge")
    info.add_sample(
        "python_info",
        {
            "implementation": "CPython",
            "major": "3",
            "minor": "12",
            "patchlevel": "11",
            "version": "3.12.11",
        },
        1.0,
    )
    families.append(info)
    for name, doc, value in (
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.", 1.1328565248e10),
        ("process_resident_memory_bytes", "Resident memory size in bytes.", 3.567423488e09),
        ("process_start_time_seconds", "Start time since unix epoch in seconds.", created),
        ("process_cpu_seconds_total", "Total user and system CPU time in seconds.", 0.0),
        ("process_open_fds", "Number of open file descriptors.", 67.0),
        ("process_max_fds", "Maximum number of open file descriptors.", 1.048576e06),
    ):
        if name == "process_cpu_seconds_total":
            metric = Metric("process_cpu_seconds", doc, "counter")
            metric.add_sample(name, {}, round(uptime_seconds * 0.37, 2))
        else:
            metric = Metric(name, doc, "gauge")
            metric.add_sample(name, {}, value)
        families.append(metric)
    return families


def _counter(
    name: str,
    doc: str,
    rows: Iterable[tuple[dict[str, str], float, float | None]],
) -> Metric:
    metric = Metric(name, doc, "counter")
    for labels, value, created in rows:
        metric.add_sample(name + "_total", labels, value)
        if created is not None:
            metric.add_sample(name + "_created", labels, created)
    return metric


def _gauge(name: str, doc: str, rows: Iterable[tuple[dict[str, str], float]]) -> Metric:
    metric = Metric(name, doc, "gauge")
    for labels, value in rows:
        metric.add_sample(name, labels, value)
    return metric


def _histogram(
    name: str,
    doc: str,
    bounds: Sequence[float],
    rows: Iterable[tuple[dict[str, str], int, float, float | None]],
) -> Metric:
    """A histogram whose ``count`` observations of mean ``total / count`` fill the buckets."""
    metric = Metric(name, doc, "histogram")
    for labels, count, total, created in rows:
        mean = total / count if count else 0.0
        for bound in [*bounds, math.inf]:
            # A plausible spread: everything up to twice the mean lands by then.
            share = 1.0 if bound >= 2 * mean else max(0.0, bound / (2 * mean)) if mean else 1.0
            le = "+Inf" if math.isinf(bound) else _go_float(bound)
            metric.add_sample(name + "_bucket", {**labels, "le": le}, float(int(count * share)))
        metric.add_sample(name + "_count", labels, float(count))
        metric.add_sample(name + "_sum", labels, float(total))
        if created is not None:
            metric.add_sample(name + "_created", labels, created)
    return metric


def _go_float(value: float) -> str:
    from prometheus_client.utils import floatToGoString

    return floatToGoString(value)


def _one_two_five(limit: int) -> list[float]:
    out: list[float] = []
    scale = 1
    while scale <= limit:
        for step in (1, 2, 5):
            if step * scale <= limit:
                out.append(float(step * scale))
        scale *= 10
    return out


_LATENCY_BUCKETS = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
]  # fmt: skip
_REQUEST_LATENCY_BUCKETS = [
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
    240.0, 480.0, 960.0, 1920.0, 7680.0,
]  # fmt: skip


def render_vllm(
    counters: Sequence[ModelCounters],
    *,
    variant: str = "v1",
    uptime_seconds: float = 3600.0,
    with_cached: bool = True,
    with_created: bool = True,
) -> bytes:
    """A vLLM page: ``v1`` (0.10+, ``engine`` label) or ``v0`` (0.6, ``model_name`` only)."""
    if variant not in ("v1", "v0"):
        raise ValueError(f"unknown vLLM variant {variant!r}")
    v1 = variant == "v1"

    def labels(c: ModelCounters) -> dict[str, str]:
        return {"model_name": c.model, "engine": c.engine} if v1 else {"model_name": c.model}

    def created(c: ModelCounters) -> float | None:
        return c.created if with_created else None

    max_len = 131072
    fams: list[Metric] = _process_families(uptime_seconds, counters[0].created if counters else 0)
    fams.append(
        _gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            [(labels(c), float(c.running)) for c in counters],
        )
    )
    if not v1:
        fams.append(
            _gauge(
                "vllm:num_requests_swapped",
                "Number of requests swapped to CPU.",
                [(labels(c), 0.0) for c in counters],
            )
        )
    fams.append(
        _gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            [(labels(c), float(c.waiting)) for c in counters],
        )
    )
    if v1:
        fams.append(
            _gauge(
                "vllm:kv_cache_usage_perc",
                "KV-cache usage. 1 means 100 percent usage.",
                [(labels(c), min(1.0, c.running * 0.061)) for c in counters],
            )
        )
        fams.append(
            _counter(
                "vllm:prefix_cache_queries",
                "Prefix cache queries, in terms of number of queried tokens.",
                [(labels(c), float(c.input_tokens), created(c)) for c in counters],
            )
        )
        fams.append(
            _counter(
                "vllm:prefix_cache_hits",
                "Prefix cache hits, in terms of number of cached tokens.",
                [(labels(c), float(c.cached_tokens), created(c)) for c in counters],
            )
        )
        fams.append(
            _counter(
                "vllm:num_preemptions",
                "Cumulative number of preemption from the engine.",
                [(labels(c), 0.0, created(c)) for c in counters],
            )
        )
    else:
        fams.append(
            _gauge(
                "vllm:gpu_cache_usage_perc",
                "GPU KV-cache usage. 1 means 100 percent usage.",
                [(labels(c), min(1.0, c.running * 0.061)) for c in counters],
            )
        )
        fams.append(
            _gauge(
                "vllm:cpu_cache_usage_perc",
                "CPU KV-cache usage. 1 means 100 percent usage.",
                [(labels(c), 0.0) for c in counters],
            )
        )
        fams.append(
            _gauge(
                "vllm:avg_prompt_throughput_toks_per_s",
                "Average prefill throughput in tokens/s.",
                [(labels(c), 812.4) for c in counters],
            )
        )
        fams.append(
            _gauge(
                "vllm:avg_generation_throughput_toks_per_s",
                "Average generation throughput in tokens/s.",
                [(labels(c), 201.7) for c in counters],
            )
        )
    fams.append(
        _counter(
            "vllm:prompt_tokens",
            "Number of prefill tokens processed.",
            [(labels(c), float(c.input_tokens), created(c)) for c in counters],
        )
    )
    if v1 and with_cached:
        fams.append(
            _counter(
                "vllm:prompt_tokens_cached",
                "Number of cached prompt tokens (local + external).",
                [(labels(c), float(c.cached_tokens), created(c)) for c in counters],
            )
        )
    fams.append(
        _counter(
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            [(labels(c), float(c.output_tokens), created(c)) for c in counters],
        )
    )
    reasons = ("stop", "length", "abort") if v1 else ("stop", "length")
    fams.append(
        _counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            [
                ({**labels(c), "finished_reason": r}, float(_split(c.requests, i)), created(c))
                for c in counters
                for i, r in enumerate(reasons)
            ],
        )
    )
    token_buckets = _one_two_five(max_len)
    fams.append(
        _histogram(
            "vllm:request_prompt_tokens",
            "Number of prefill tokens processed.",
            token_buckets,
            [(labels(c), c.requests, c.input_tokens, created(c)) for c in counters],
        )
    )
    fams.append(
        _histogram(
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            token_buckets,
            [(labels(c), c.requests, c.output_tokens, created(c)) for c in counters],
        )
    )
    fams.append(
        _histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            _LATENCY_BUCKETS,
            [(labels(c), c.requests, c.requests * 0.183, created(c)) for c in counters],
        )
    )
    itl = "vllm:inter_token_latency_seconds" if v1 else "vllm:time_per_output_token_seconds"
    fams.append(
        _histogram(
            itl,
            "Histogram of inter-token latency in seconds.",
            _LATENCY_BUCKETS[1:],
            [(labels(c), c.output_tokens, c.output_tokens * 0.021, created(c)) for c in counters],
        )
    )
    fams.append(
        _histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            _REQUEST_LATENCY_BUCKETS,
            [(labels(c), c.requests, c.requests * 4.2, created(c)) for c in counters],
        )
    )
    if v1:
        for name, doc, per in (
            ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase.", 0.04),
            ("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL.", 0.18),
            ("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE.", 3.9),
        ):
            fams.append(
                _histogram(
                    name,
                    doc,
                    _REQUEST_LATENCY_BUCKETS,
                    [(labels(c), c.requests, c.requests * per, created(c)) for c in counters],
                )
            )
    info = Metric("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", "gauge")
    for c in counters[:1]:
        info.add_sample(
            "vllm:cache_config_info",
            {
                "block_size": "16",
                "cache_dtype": "auto",
                "enable_prefix_caching": "True",
                "gpu_memory_utilization": "0.9",
                "num_gpu_blocks": "27531",
                **({"engine": c.engine} if v1 else {}),
            },
            1.0,
        )
    fams.append(info)
    return _expose(fams)


def _split(total: int, index: int) -> int:
    """Split a request count into finish reasons: most stop, a few by length, rare aborts."""
    length = total // 33
    abort = total // 2500
    return (total - length - abort, length, abort)[index]


def render_prefixed(
    prefix: str,
    counters: Sequence[ModelCounters],
    *,
    uptime_seconds: float = 3600.0,
    engine_label: bool = False,
    with_created: bool = True,
    extra_labels: dict[str, str] | None = None,
) -> bytes:
    """SGLang (``sglang:``), LMDeploy (``lmdeploy:``) and NIM (no prefix) pages."""

    def labels(c: ModelCounters) -> dict[str, str]:
        out = {"model_name": c.model, **(extra_labels or {})}
        if engine_label:
            out["engine"] = c.engine
        return out

    def created(c: ModelCounters) -> float | None:
        return c.created if with_created else None

    fams: list[Metric] = _process_families(uptime_seconds, counters[0].created if counters else 0)
    fams.append(
        _gauge(
            f"{prefix}num_requests_running",
            "Number of requests currently running on GPU.",
            [(labels(c), float(c.running)) for c in counters],
        )
    )
    fams.append(
        _gauge(
            f"{prefix}num_requests_waiting",
            "Number of requests waiting to be processed.",
            [(labels(c), float(c.waiting)) for c in counters],
        )
    )
    fams.append(
        _gauge(
            f"{prefix}gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage.",
            [(labels(c), min(1.0, c.running * 0.05)) for c in counters],
        )
    )
    fams.append(
        _counter(
            f"{prefix}prompt_tokens",
            "Number of prefill tokens processed.",
            [(labels(c), float(c.input_tokens), created(c)) for c in counters],
        )
    )
    fams.append(
        _counter(
            f"{prefix}generation_tokens",
            "Number of generation tokens processed.",
            [(labels(c), float(c.output_tokens), created(c)) for c in counters],
        )
    )
    if prefix == "sglang:":
        fams.append(
            _counter(
                "sglang:cached_tokens",
                "Number of cached prompt tokens.",
                [(labels(c), float(c.cached_tokens), created(c)) for c in counters],
            )
        )
        fams.append(
            _counter(
                "sglang:num_requests",
                "Number of requests processed.",
                [(labels(c), float(c.requests), created(c)) for c in counters],
            )
        )
    fams.append(
        _histogram(
            f"{prefix}time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            _LATENCY_BUCKETS,
            [(labels(c), c.requests, c.requests * 0.2, created(c)) for c in counters],
        )
    )
    fams.append(
        _histogram(
            f"{prefix}e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds.",
            _REQUEST_LATENCY_BUCKETS,
            [(labels(c), c.requests, c.requests * 3.1, created(c)) for c in counters],
        )
    )
    return _expose(fams)


# ---------------------------------------------------------------------------------------------
# servers with their own exposition code


def render_llamacpp(counter: ModelCounters, *, with_cached: bool = True) -> bytes:
    """llama-server ``--metrics``: no labels, HELP and TYPE on every metric.

    ``with_cached`` renders a current build, as recorded from a real server
    (test/realservers/data): the cached-prompt counter, the speculative-decoding counters, every
    value printed like C's ``%g`` (six significant digits, so counters above 999999 are printed
    in exponent form), counters before gauges. Without it, an older build: no cached counter,
    no speculative counters, integer counters in full, its older HELP texts.
    """
    prompt_seconds = round(counter.input_tokens / 425.0, 3)
    predicted_seconds = round(counter.output_tokens / 45.5, 3)
    prompt_rate = round(counter.input_tokens / prompt_seconds, 4) if prompt_seconds else 0.0
    predicted_rate = (
        round(counter.output_tokens / predicted_seconds, 4) if predicted_seconds else 0.0
    )
    busy = 1.42 if counter.requests else 0.0
    rows: list[tuple[str, str, str, float]]
    if with_cached:
        rows = [
            ("prompt_tokens_total", "counter",
             "Number of prompt tokens processed, excluding cached tokens",
             counter.input_tokens - counter.cached_tokens),
            ("prompt_tokens_cached_total", "counter",
             "Number of prompt tokens reused from the cache", counter.cached_tokens),
            ("prompt_seconds_total", "counter", "Total time spent processing prompts",
             prompt_seconds),
            ("tokens_predicted_total", "counter", "Number of generation tokens processed",
             counter.output_tokens),
            ("tokens_predicted_seconds_total", "counter", "Total time spent generating tokens",
             predicted_seconds),
            ("n_decode_total", "counter",
             "Total number of llama_decode() calls, excluding speculative decoding and "
             "multimodal decoding", counter.output_tokens + counter.requests),
            ("n_tokens_max", "counter",
             "Largest observed sequence length (prompt + generation)",
             min(4096, counter.input_tokens)),
            ("spec_decode_num_draft_tokens_total", "counter",
             "Speculative: Total draft tokens generated", 0),
            ("spec_decode_num_accepted_tokens_total", "counter",
             "Speculative: Total draft tokens accepted by the target model", 0),
            ("spec_decode_num_drafts_total", "counter",
             "Speculative: Total speculative decoding verification steps", 0),
            ("prompt_tokens_seconds", "gauge", "Average prompt throughput in tokens/s",
             prompt_rate),
            ("predicted_tokens_seconds", "gauge", "Average generation throughput in tokens/s",
             predicted_rate),
            ("requests_processing", "gauge", "Number of requests processing", counter.running),
            ("requests_deferred", "gauge", "Number of requests deferred", counter.waiting),
            ("n_busy_slots_per_decode", "gauge",
             "Average number of busy slots per llama_decode() call", busy),
        ]  # fmt: skip
        text = [(n, k, d, f"{v:g}") for n, k, d, v in rows]
    else:
        rows = [
            ("prompt_tokens_total", "counter", "Number of prompt tokens processed.",
             counter.input_tokens - counter.cached_tokens),
            ("prompt_seconds_total", "counter", "Prompt process time", prompt_seconds),
            ("tokens_predicted_total", "counter", "Number of generation tokens processed.",
             counter.output_tokens),
            ("tokens_predicted_seconds_total", "counter", "Predict process time",
             predicted_seconds),
            ("n_decode_total", "counter", "Total number of llama_decode() calls",
             counter.output_tokens + counter.requests),
            ("n_tokens_max", "counter", "Largest observed n_tokens.",
             min(4096, counter.input_tokens)),
            ("n_busy_slots_per_decode", "gauge",
             "Average number of busy slots per llama_decode() call", busy),
            ("prompt_tokens_seconds", "gauge", "Average prompt throughput in tokens/s.",
             prompt_rate),
            ("predicted_tokens_seconds", "gauge", "Average generation throughput in tokens/s.",
             predicted_rate),
            ("requests_processing", "gauge", "Number of requests processing.", counter.running),
            ("requests_deferred", "gauge", "Number of requests deferred.", counter.waiting),
        ]  # fmt: skip
        text = [(n, k, d, str(v) if isinstance(v, int) else _plain(v)) for n, k, d, v in rows]
    out = []
    for name, kind, doc, value in text:
        out.append(f"# HELP llamacpp:{name} {doc}\n# TYPE llamacpp:{name} {kind}\n")
        out.append(f"llamacpp:{name} {value}\n")
    return "".join(out).encode()


def _plain(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def render_tgi(counter: ModelCounters) -> bytes:
    """TGI through ``metrics-exporter-prometheus``: no HELP, blank line between families."""
    blocks = []

    def block(lines: list[str]) -> None:
        blocks.append("\n".join(lines) + "\n")

    count = counter.requests
    block(["# TYPE tgi_request_count counter", f"tgi_request_count {count}"])
    block(["# TYPE tgi_request_success counter", f"tgi_request_success {count}"])
    block(["# TYPE tgi_queue_size gauge", f"tgi_queue_size {counter.waiting}"])
    block(["# TYPE tgi_batch_current_size gauge", f"tgi_batch_current_size {counter.running}"])
    block(
        [
            "# TYPE tgi_batch_current_max_tokens gauge",
            f"tgi_batch_current_max_tokens {counter.running * 2048}",
        ]
    )
    for name, total, bounds in (
        ("tgi_request_input_length", counter.input_tokens, _one_two_five(4096)),
        ("tgi_request_generated_tokens", counter.output_tokens, _one_two_five(4096)),
        ("tgi_request_duration", round(count * 3.4, 6), [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
    ):
        mean = total / count if count else 0.0
        lines = [f"# TYPE {name} histogram"]
        for bound in [*bounds, math.inf]:
            share = 1.0 if not mean or bound >= 2 * mean else bound / (2 * mean)
            le = "+Inf" if math.isinf(bound) else _plain(bound)
            lines.append(f'{name}_bucket{{le="{le}"}} {int(count * share)}')
        lines.append(f"{name}_sum {_plain(total)}")
        lines.append(f"{name}_count {count}")
        if count:
            block(lines)
    block(
        [
            "# TYPE tgi_batch_inference_duration histogram",
            'tgi_batch_inference_duration_bucket{method="prefill",le="0.1"} 0',
            'tgi_batch_inference_duration_bucket{method="prefill",le="+Inf"} 0',
            'tgi_batch_inference_duration_sum{method="prefill"} 0',
            'tgi_batch_inference_duration_count{method="prefill"} 0',
        ]
    )
    return "\n".join(blocks).encode()


def render_triton(counters: Sequence[ModelCounters]) -> bytes:
    """Triton with the TensorRT-LLM backend (prometheus-cpp text serializer)."""
    out: list[str] = []
    out.append("# HELP nv_inference_request_success Number of successful inference requests, "
               "all batch sizes")  # fmt: skip
    out.append("# TYPE nv_inference_request_success counter")
    for c in counters:
        out.append(f'nv_inference_request_success{{model="{c.model}",version="1"}} {c.requests}')
        out.append(f'nv_inference_request_success{{model="tensorrt_llm",version="1"}} {c.requests}')
    out.append("# HELP nv_inference_count Number of inferences performed (does not include cached "
               "requests)")  # fmt: skip
    out.append("# TYPE nv_inference_count counter")
    for c in counters:
        out.append(f'nv_inference_count{{model="{c.model}",version="1"}} {c.requests}')
    for name, role, attr in (
        ("nv_llm_input_token_len", "total_input_tokens", "input_tokens"),
        ("nv_llm_output_token_len", "total_output_tokens", "output_tokens"),
    ):
        out.append(f"# HELP {name} TRT LLM response metrics")
        out.append(f"# TYPE {name} histogram")
        for c in counters:
            total = getattr(c, attr)
            labels = f'model="{c.model}",response_metric_type="{role}",version="1"'
            out.append(f"{name}_count{{{labels}}} {c.requests}")
            out.append(f"{name}_sum{{{labels}}} {total}")
            mean = total / c.requests if c.requests else 0.0
            for bound in (10, 50, 100, 500, 1000, math.inf):
                share = 1.0 if not mean or bound >= 2 * mean else bound / (2 * mean)
                le = "+Inf" if math.isinf(bound) else str(bound)
                out.append(f'{name}_bucket{{{labels},le="{le}"}} {int(c.requests * share)}')
    out.append("# HELP nv_trt_llm_request_metrics TRT LLM request metrics")
    out.append("# TYPE nv_trt_llm_request_metrics gauge")
    for c in counters:
        for kind, value in (("active", c.running), ("max", 64), ("scheduled", c.running),
                            ("context", 0), ("waiting", c.waiting)):  # fmt: skip
            out.append(
                f'nv_trt_llm_request_metrics{{model="tensorrt_llm",request_type="{kind}",'
                f'version="1"}} {value}'
            )
    out.append("# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)")
    out.append("# TYPE nv_gpu_utilization gauge")
    out.append('nv_gpu_utilization{gpu_uuid="GPU-0c2f5a61-90d7-4b3e-8e44-3f2a6c1d9b70"} 0.83')
    out.append("# HELP nv_energy_consumption GPU energy consumption in joules since the Triton "
               "Server started")  # fmt: skip
    out.append("# TYPE nv_energy_consumption counter")
    out.append(
        'nv_energy_consumption{gpu_uuid="GPU-0c2f5a61-90d7-4b3e-8e44-3f2a6c1d9b70"} 1284773.406'
    )
    return ("\n".join(out) + "\n").encode()


# ---------------------------------------------------------------------------------------------
# dcgm-exporter


def render_dcgm(
    gpus: Sequence[GpuState],
    *,
    hostname: str | None = "gpu-node-1",
    hostname_label: str = "Hostname",
    pod_mapping: bool = True,
    driver: str = "570.124.06",
) -> bytes:
    """dcgm-exporter's page: power (W, ``%f``), total energy (mJ), utilization, temperature."""

    def rows(gpu: GpuState) -> list[str]:
        mapped = [("", "", gpu.namespace, gpu.pod)]
        if gpu.mig_instances:
            mapped = [(i, p, ns, pod) for i, p, ns, pod in gpu.mig_instances]
        out = []
        bus = gpu.pci_bus_id or f"00000000:{0x18 + 0x12 * gpu.index:02X}:00.0"
        for instance, profile, namespace, pod in mapped:
            labels = [
                f'gpu="{gpu.index}"',
                f'UUID="{gpu.uuid}"',
                f'pci_bus_id="{bus}"',
                f'device="nvidia{gpu.index}"',
                f'modelName="{gpu.model_name}"',
            ]
            if instance:
                labels += [f'GPU_I_PROFILE="{profile}"', f'GPU_I_ID="{instance}"']
            if hostname is not None:
                labels.append(f'{hostname_label}="{hostname}"')
            labels.append(f'DCGM_FI_DRIVER_VERSION="{driver}"')
            if pod_mapping:
                container = gpu.container if pod else ""
                labels += [
                    f'container="{container}"',
                    f'namespace="{namespace}"',
                    f'pod="{pod}"',
                ]
            out.append("{" + ",".join(labels) + "}")
        return out

    lines: list[str] = []
    for metric, kind, doc, value in (
        ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda g: "1980"),
        ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", lambda g: "2619"),
        ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).",
         lambda g: str(int(30 + g.power_watts / 14))),
        ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).",
         lambda g: f"{g.power_watts:f}"),
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter",
         "Total energy consumption since boot (in mJ).", lambda g: str(int(g.energy_mj))),
        ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).",
         lambda g: str(min(100, int(g.power_watts / 7)))),
        ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", lambda g: "71234"),
    ):  # fmt: skip
        lines.append(f"# HELP {metric} {doc}")
        lines.append(f"# TYPE {metric} {kind}")
        for gpu in gpus:
            for labelset in rows(gpu):
                lines.append(f"{metric}{labelset} {value(gpu)}")
    return ("\n".join(lines) + "\n").encode()


def render(backend: str, counters: Sequence[ModelCounters], **options: object) -> bytes:
    """Dispatch by backend name (``vllm``, ``vllm-v0``, ``llamacpp``, ``sglang``, ``tgi``,
    ``triton``, ``lmdeploy``, ``nim``)."""
    if backend == "vllm":
        return render_vllm(counters, **options)  # type: ignore[arg-type]
    if backend == "vllm-v0":
        return render_vllm(counters, variant="v0", **options)  # type: ignore[arg-type]
    if backend == "llamacpp":
        if len(counters) != 1:
            raise ValueError("llama.cpp serves exactly one model per server")
        return render_llamacpp(counters[0], **options)  # type: ignore[arg-type]
    if backend == "sglang":
        return render_prefixed(
            "sglang:", counters, with_created=False, extra_labels={"engine_type": "unified"},
            **options,  # type: ignore[arg-type]
        )  # fmt: skip
    if backend == "lmdeploy":
        return render_prefixed("lmdeploy:", counters, engine_label=True, **options)  # type: ignore[arg-type]
    if backend == "nim":
        return render_prefixed("", counters, **options)  # type: ignore[arg-type]
    if backend == "tgi":
        if len(counters) != 1:
            raise ValueError("TGI serves exactly one model per server")
        return render_tgi(counters[0])
    if backend == "triton":
        return render_triton(counters)
    raise ValueError(f"no renderer for backend {backend!r}")

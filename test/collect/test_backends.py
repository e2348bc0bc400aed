"""Token counters per backend: raw series, roles, models, _created, and no zero tokens from junk."""

from __future__ import annotations

from pathlib import Path

import pytest

from infercost.collect import errors
from infercost.collect.backends import (
    BACKENDS,
    Role,
    TokenPage,
    detect_backend,
    read_tokens,
)
from infercost.collect.errors import MissingMetricsError, NotPrometheusTextError, ScrapeError
from infercost.testing.simservers import pages

DATA = Path(__file__).resolve().parents[1] / "data" / "metrics"
LLAMA70B = "meta-llama/Llama-3.3-70B-Instruct"


def page(name: str) -> bytes:
    return (DATA / name).read_bytes()


def by_role(tokens: TokenPage, role: Role) -> dict[str | None, float]:
    return {model: value for (model, r), value in tokens.totals().items() if r is role}


def test_vllm_v1_reads_input_cached_output_with_created() -> None:
    tokens = read_tokens("vllm", page("vllm-0.11.txt"))
    assert tokens.backend == "vllm"
    assert by_role(tokens, Role.INPUT) == {LLAMA70B: 18452310}
    assert by_role(tokens, Role.CACHED) == {LLAMA70B: 6120000}
    assert by_role(tokens, Role.OUTPUT) == {LLAMA70B: 4201907}
    assert {r.series for r in tokens.readings} == {
        "vllm:prompt_tokens_total",
        "vllm:prompt_tokens_cached_total",
        "vllm:generation_tokens_total",
    }
    for reading in tokens.readings:
        assert reading.labels == (("engine", "0"), ("model_name", LLAMA70B))
        assert reading.created == pytest.approx(1764230412.5183175)
        assert reading.key == (reading.series, reading.labels)


def test_vllm_v0_old_format_has_no_engine_and_no_cached_counter() -> None:
    tokens = read_tokens("vllm", page("vllm-0.6.txt"))
    model = "mistralai/Mistral-7B-Instruct-v0.3"
    assert by_role(tokens, Role.INPUT) == {model: 912345}
    assert by_role(tokens, Role.OUTPUT) == {model: 230019}
    assert Role.CACHED not in {role for r in tokens.readings for role in r.roles}
    assert all(r.labels == (("model_name", model),) for r in tokens.readings)


def test_vllm_multi_engine_keeps_one_raw_reading_per_engine() -> None:
    tokens = read_tokens("vllm", page("vllm-multi-engine.txt"))
    inputs = [r for r in tokens.readings if r.series == "vllm:prompt_tokens_total"]
    assert sorted(r.labels[0] for r in inputs) == [("engine", e) for e in "0123"]
    assert sorted(r.value for r in inputs) == [9100210, 9221306, 9231004, 9300000]
    assert len({r.key for r in tokens.readings}) == len(tokens.readings) == 12
    assert by_role(tokens, Role.INPUT) == {LLAMA70B: 9231004 + 9221306 + 9100210 + 9300000}


def test_vllm_multi_model_splits_by_model_name() -> None:
    tokens = read_tokens("vllm", page("vllm-multi-model.txt"))
    assert by_role(tokens, Role.OUTPUT) == {
        "Qwen/Qwen2.5-7B-Instruct": 987654,
        "qwen-lora-support": 12345,
    }


def test_llamacpp_input_is_prompt_plus_cached_and_has_no_model() -> None:
    tokens = read_tokens("llamacpp", page("llamacpp.txt"))
    assert by_role(tokens, Role.INPUT) == {None: 96641 + 18000}
    assert by_role(tokens, Role.CACHED) == {None: 18000}
    assert by_role(tokens, Role.OUTPUT) == {None: 23210}
    cached = next(r for r in tokens.readings if r.series == "llamacpp:prompt_tokens_cached_total")
    assert cached.roles == {Role.INPUT, Role.CACHED}
    assert all(r.labels == () and r.created is None for r in tokens.readings)


def test_llamacpp_counters_past_a_million_print_in_exponent_form() -> None:
    # llama-server prints every value like C's %g: six significant digits.
    body = pages.render_llamacpp(
        pages.ModelCounters(
            model="x",
            engine="0",
            input_tokens=18_452_310,
            cached_tokens=1_000_000,
            output_tokens=4_201_907,
            requests=9000,
        )
    )
    assert b"llamacpp:prompt_tokens_total 1.74523e+07\n" in body
    tokens = read_tokens("llamacpp", body)
    assert by_role(tokens, Role.INPUT) == {None: 17_452_300 + 1_000_000}
    assert by_role(tokens, Role.OUTPUT) == {None: 4_201_910}


def test_llamacpp_older_build_without_cached_counter() -> None:
    tokens = read_tokens("llamacpp", page("llamacpp-no-cached.txt"))
    assert by_role(tokens, Role.INPUT) == {None: 96641}
    assert by_role(tokens, Role.CACHED) == {}


@pytest.mark.parametrize(
    ("backend", "fixture", "model", "input_tokens", "output_tokens"),
    [
        ("sglang", "sglang.txt", "meta-llama/Llama-3.1-8B-Instruct", 2345678, 876543),
        ("lmdeploy", "lmdeploy.txt", "internlm/internlm2_5-7b-chat", 654321, 123456),
        ("nim", "nim.txt", "meta/llama-3.1-8b-instruct", 1234567, 345678),
        ("tgi", "tgi.txt", None, 45231, 18230),
        ("triton", "triton-trtllm.txt", "ensemble", 45231, 18230),
    ],
)
def test_other_backends(
    backend: str, fixture: str, model: str | None, input_tokens: int, output_tokens: int
) -> None:
    tokens = read_tokens(backend, page(fixture))
    assert by_role(tokens, Role.INPUT) == {model: input_tokens}
    assert by_role(tokens, Role.OUTPUT) == {model: output_tokens}
    assert read_tokens("auto", page(fixture)).backend == backend


@pytest.mark.parametrize(
    ("fixture", "backend"),
    [
        ("vllm-0.11.txt", "vllm"),
        ("vllm-0.6.txt", "vllm"),
        ("vllm-multi-engine.txt", "vllm"),
        ("llamacpp.txt", "llamacpp"),
        ("llamacpp-no-cached.txt", "llamacpp"),
        ("sglang.txt", "sglang"),
        ("lmdeploy.txt", "lmdeploy"),
        ("nim.txt", "nim"),
        ("tgi.txt", "tgi"),
        ("triton-trtllm.txt", "triton"),
    ],
)
def test_auto_detection_from_the_names_served(fixture: str, backend: str) -> None:
    assert detect_backend(page(fixture)).name == backend
    assert read_tokens("auto", page(fixture)) == read_tokens(backend, page(fixture))


def test_auto_detection_of_a_tgi_server_before_its_first_request() -> None:
    body = b"# TYPE tgi_queue_size gauge\ntgi_queue_size 0\n"
    assert detect_backend(body).name == "tgi"
    assert read_tokens("tgi", body).readings == ()


def test_auto_detection_fails_clearly_on_unknown_pages() -> None:
    with pytest.raises(MissingMetricsError, match="cannot detect the inference backend"):
        read_tokens("auto", page("dcgm-pod-mapping.txt"))


def test_triton_ignores_series_of_the_other_response_type() -> None:
    body = page("triton-trtllm.txt") + (
        b'nv_llm_input_token_len_sum{model="ensemble",response_metric_type="other",'
        b'version="1"} 999999\n'
    )
    assert by_role(read_tokens("triton", body), Role.INPUT) == {"ensemble": 45231}


@pytest.mark.parametrize("backend", [*BACKENDS, "auto"])
@pytest.mark.parametrize(
    "fixture",
    [
        "bad-html-error.html",
        "bad-json.json",
        "bad-llamacpp-quoted-json.txt",
        "bad-truncated.txt",
        "bad-binary.bin",
    ],
)
def test_bad_bodies_are_errors_never_zero_tokens(backend: str, fixture: str) -> None:
    with pytest.raises(NotPrometheusTextError) as info:
        read_tokens(backend, page(fixture))
    assert info.value.reason == errors.NOT_PROMETHEUS_TEXT


@pytest.mark.parametrize(
    ("backend", "fixture"),
    [
        ("vllm", "llamacpp.txt"),
        ("llamacpp", "vllm-0.11.txt"),
        ("tgi", "sglang.txt"),
        ("triton", "tgi.txt"),
        ("nim", "dcgm-mig.txt"),
        ("sglang", "edge-cases.txt"),
    ],
)
def test_a_page_of_another_server_is_missing_metrics(backend: str, fixture: str) -> None:
    with pytest.raises(MissingMetricsError) as info:
        read_tokens(backend, page(fixture))
    assert info.value.reason == errors.MISSING_METRICS
    assert BACKENDS[backend].title in str(info.value)


def test_an_empty_page_is_missing_metrics() -> None:
    with pytest.raises(MissingMetricsError):
        read_tokens("vllm", b"")


@pytest.mark.parametrize("value", [b"NaN", b"-1", b"+Inf"])
def test_impossible_counter_values_are_errors(value: bytes) -> None:
    body = b'vllm:prompt_tokens_total{model_name="m"} ' + value + b"\n"
    with pytest.raises(ScrapeError, match="impossible value") as info:
        read_tokens("vllm", body)
    assert info.value.reason == errors.OTHER


def test_unknown_backend_is_named() -> None:
    with pytest.raises(ValueError, match="'ollama'"):
        read_tokens("ollama", b"")


def test_backend_defaults_follow_the_spec() -> None:
    ports = {name: b.default_port for name, b in BACKENDS.items()}
    assert ports == {
        "vllm": 8000,
        "llamacpp": 8080,
        "sglang": 30000,
        "tgi": 80,
        "triton": 8002,
        "lmdeploy": 23333,
        "nim": 8000,
    }
    assert BACKENDS["nim"].default_path == "/v1/metrics"
    assert {b.default_path for n, b in BACKENDS.items() if n != "nim"} == {"/metrics"}


def test_a_series_served_twice_is_an_error() -> None:
    line = b'vllm:prompt_tokens_total{engine="0",model_name="m"} 5\n'
    with pytest.raises(ScrapeError, match="repeats the series") as info:
        read_tokens(
            "vllm", line + line.replace(b'engine="0",model_name="m"', b'model_name="m",engine="0"')
        )
    assert info.value.reason == errors.OTHER

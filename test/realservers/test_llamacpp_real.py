"""Token accounting against a REAL llama-server (llama.cpp), built from source.

The server runs a tiny random-weight model on 127.0.0.1 with ``--metrics``. Every request sets
``ignore_eos`` and a fixed ``max_tokens`` so it generates exactly that many tokens; prompts are
repeated so the prompt cache serves some of them. The claim under test is SPEC §3.1's llama.cpp
row: OpenAI-style ``usage.prompt_tokens`` summed over requests equals the increase of
``llamacpp:prompt_tokens_total`` plus ``llamacpp:prompt_tokens_cached_total``, and
``usage.completion_tokens`` equals the increase of ``llamacpp:tokens_predicted_total`` — read
through infercost's own llama.cpp adapter and cross-checked with ``prometheus_client``'s parser.

Without a binary these tests skip ("llama-server not built; run tox -e llamacpp"); the
``llamacpp`` tox env builds one and sets ``INFERCOST_REQUIRE_REAL_SERVERS=1`` so that a missing
binary fails there instead of passing as skipped. Set ``INFERCOST_RECORD_FIXTURES=1`` to rewrite
the recorded page in ``data/``.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from infercost.collect.backends import Role, detect_backend, read_tokens
from infercost.collect.scanning import check_text, scan
from infercost.testing import llamaserver

pytestmark = pytest.mark.realserver

DATA = Path(__file__).parent / "data"
RECORDED_PAGE = DATA / "llamacpp-server-metrics.txt"
REQUIRE_ENV = "INFERCOST_REQUIRE_REAL_SERVERS"
RECORD_ENV = "INFERCOST_RECORD_FIXTURES"

PROMPT = "hello world, the server counts every prompt token and every generated token"
CACHED_PROMPT = (
    "the cost of one token is the price of the energy and the hardware that made it; "
    "this prompt is sent twice so the second request is served from the prompt cache"
)
CHAT = [
    {"role": "system", "content": "you count tokens"},
    {"role": "user", "content": "how much power did the model use in the last hour?"},
]
COUNTERS = (
    "llamacpp:prompt_tokens_total",
    "llamacpp:prompt_tokens_cached_total",
    "llamacpp:tokens_predicted_total",
)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _missing(reason: str) -> None:
    if _flag(REQUIRE_ENV):
        pytest.fail(f"{REQUIRE_ENV} is set but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[llamaserver.LlamaServer]:
    reason = llamaserver.unavailable_reason()
    if reason is not None:
        _missing(reason)
    try:
        import gguf  # noqa: F401
    except ImportError:
        _missing("the gguf package is not installed; run tox -e llamacpp")
    from infercost.testing.tinymodel import write_tiny_llama

    model = write_tiny_llama(tmp_path_factory.mktemp("model") / "tiny-llama.gguf", seed=7)
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    running = llamaserver.LlamaServer(model=model, log_path=log_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


# --- helpers ---------------------------------------------------------------------------------


def _parsed(body: bytes) -> dict[str, float]:
    """Unlabelled sample values by sample name, as prometheus_client reads the page."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if not sample.labels:
                out[sample.name] = sample.value
    return out


def _settled_metrics(server: llamaserver.LlamaServer) -> bytes:
    """A page taken when no request is processing and two scrapes agree on the counters.

    The server folds a finished request's counts in on its own loop; scraping until the page is
    quiet keeps the test exact without guessing a sleep.
    """
    deadline = time.monotonic() + 10.0
    previous: dict[str, float] | None = None
    while True:
        body = server.metrics()
        values = _parsed(body)
        current = {name: values.get(name, 0.0) for name in COUNTERS}
        busy = values.get("llamacpp:requests_processing", 0.0) + values.get(
            "llamacpp:requests_deferred", 0.0
        )
        if busy == 0 and current == previous:
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"/metrics did not settle within 10 s: {current}, busy={busy}")
        previous = current
        time.sleep(0.05)


def _completion(server: llamaserver.LlamaServer, prompt: str, max_tokens: int) -> dict[str, Any]:
    answer: dict[str, Any] = server.post_json(
        "/v1/completions",
        {
            "prompt": prompt,
            "max_tokens": max_tokens,
            "ignore_eos": True,
            "temperature": 0,
            "seed": 1,
        },
    )
    return answer


def _chat(
    server: llamaserver.LlamaServer, messages: list[dict[str, str]], max_tokens: int
) -> dict[str, Any]:
    answer: dict[str, Any] = server.post_json(
        "/v1/chat/completions",
        {
            "messages": messages,
            "max_tokens": max_tokens,
            "ignore_eos": True,
            "temperature": 0,
            "seed": 1,
        },
    )
    return answer


def _streamed_chat_usage(
    server: llamaserver.LlamaServer, messages: list[dict[str, str]], max_tokens: int
) -> dict[str, Any]:
    """``usage`` of a streamed chat completion (``stream_options.include_usage``)."""
    response = server.request(
        "POST",
        "/v1/chat/completions",
        {
            "messages": messages,
            "max_tokens": max_tokens,
            "ignore_eos": True,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.status == 200, response.body[:300]
    usage = None
    for line in response.body.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[len("data: ") :])
        if chunk.get("usage"):
            usage = chunk["usage"]
    assert usage is not None, f"no usage chunk in the stream: {response.body[-500:]!r}"
    result: dict[str, Any] = usage
    return result


def _totals(body: bytes) -> Mapping[Role, float]:
    """Token totals per role as infercost's llama.cpp adapter reads them."""
    page = read_tokens("llamacpp", body)
    assert page.backend == "llamacpp"
    return {role: value for (model, role), value in page.totals().items() if model is None}


def _structure(text: str) -> list[str]:
    """HELP/TYPE lines and sample names of a page: its format without the values."""
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            out.append(line)
        elif line.strip():
            out.append(re.split(r"[ {]", line, maxsplit=1)[0])
    return out


# --- tests -----------------------------------------------------------------------------------


def test_server_serves_prometheus_text_that_infercost_detects_as_llamacpp(
    server: llamaserver.LlamaServer,
) -> None:
    response = server.request("GET", "/metrics")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain")
    check_text(response.body)
    assert detect_backend(response.body).name == "llamacpp"
    families = {f.name: f.type for f in text_string_to_metric_families(response.body.decode())}
    # prometheus_client names a counter family without its _total suffix.
    assert families["llamacpp:prompt_tokens"] == "counter"
    assert families["llamacpp:prompt_tokens_cached"] == "counter"
    assert families["llamacpp:tokens_predicted"] == "counter"
    assert families["llamacpp:requests_processing"] == "gauge"


def test_counters_do_not_move_without_inference(server: llamaserver.LlamaServer) -> None:
    before = _totals(_settled_metrics(server))
    assert server.request("GET", "/health").status == 200
    server.post_json("/tokenize", {"content": PROMPT})
    server.metrics()
    assert _totals(_settled_metrics(server)) == before


def test_usage_equals_the_counter_increases(server: llamaserver.LlamaServer) -> None:
    before_body = _settled_metrics(server)
    before, before_parsed = _totals(before_body), _parsed(before_body)

    usages: list[dict[str, Any]] = []
    expected_completion = 0

    def record(answer: dict[str, Any], max_tokens: int) -> None:
        nonlocal expected_completion
        usages.append(answer["usage"])
        expected_completion += max_tokens
        # ignore_eos + max_tokens: exactly max_tokens generated, stopped by the length limit.
        assert answer["usage"]["completion_tokens"] == max_tokens, answer
        assert answer["choices"][0]["finish_reason"] == "length", answer

    # The prompt token count the server reports is the tokenizer's count plus BOS.
    tokens = server.post_json("/tokenize", {"content": PROMPT, "add_special": True})["tokens"]
    first = _completion(server, PROMPT, 8)
    record(first, 8)
    assert first["usage"]["prompt_tokens"] == len(tokens)

    record(_completion(server, CACHED_PROMPT, 5), 5)
    cached = _completion(server, CACHED_PROMPT, 7)
    record(cached, 7)
    assert cached["usage"]["prompt_tokens_details"]["cached_tokens"] > 0, cached["usage"]

    record(_chat(server, CHAT, 6), 6)
    record(_chat(server, CHAT, 4), 4)

    # Two clients released together, so both slots are usually busy in the same batches.
    start = threading.Barrier(2)

    def together(prompt: str, max_tokens: int) -> dict[str, Any]:
        start.wait(timeout=30)
        return _completion(server, prompt, max_tokens)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(together, PROMPT + " one", 40),
            pool.submit(together, "another prompt for the second slot", 30),
        ]
        for future, max_tokens in zip(futures, (40, 30), strict=True):
            record(future.result(timeout=120), max_tokens)

    streamed = _streamed_chat_usage(server, CHAT, 3)
    assert streamed["completion_tokens"] == 3, streamed
    usages.append(streamed)
    expected_completion += 3

    after_body = _settled_metrics(server)
    after, after_parsed = _totals(after_body), _parsed(after_body)

    prompt_sum = sum(u["prompt_tokens"] for u in usages)
    cached_sum = sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages)
    completion_sum = sum(u["completion_tokens"] for u in usages)
    assert completion_sum == expected_completion
    assert cached_sum > 0, "no request was served from the prompt cache"

    # infercost's adapter: input already includes the cached counter (SPEC §3.1).
    assert after[Role.INPUT] - before[Role.INPUT] == prompt_sum
    assert after[Role.CACHED] - before[Role.CACHED] == cached_sum
    assert after[Role.OUTPUT] - before[Role.OUTPUT] == completion_sum

    # The same numbers through prometheus_client's parser.
    def delta(name: str) -> float:
        return after_parsed[name] - before_parsed[name]

    assert delta("llamacpp:prompt_tokens_total") == prompt_sum - cached_sum
    assert delta("llamacpp:prompt_tokens_cached_total") == cached_sum
    assert delta("llamacpp:tokens_predicted_total") == completion_sum

    if _flag(RECORD_ENV):
        DATA.mkdir(exist_ok=True)
        RECORDED_PAGE.write_bytes(after_body)


def test_counters_cover_every_choice_where_usage_reports_only_the_first(
    server: llamaserver.LlamaServer,
) -> None:
    """Requests with several prompts or ``n`` > 1: the counters are the ground truth.

    This build answers such a request with the ``usage`` of its first choice only, while the
    counters count every prompt evaluated and every token generated. With ``n`` > 1 the children
    share the parent's evaluated prompt, so its tokens are counted once. Metering from the
    counters (as infercost does) is exact where summing client-side ``usage`` undercounts.
    """

    def tokens(text: str) -> int:
        return len(server.post_json("/tokenize", {"content": text, "add_special": True})["tokens"])

    prompts = ["first prompt here", "a second and longer prompt for the other slot"]
    before = _totals(_settled_metrics(server))
    answer = server.post_json(
        "/v1/completions",
        {"prompt": prompts, "max_tokens": 5, "ignore_eos": True, "temperature": 0},
    )
    after = _totals(_settled_metrics(server))
    assert len(answer["choices"]) == 2
    assert after[Role.INPUT] - before[Role.INPUT] == sum(tokens(p) for p in prompts)
    assert after[Role.OUTPUT] - before[Role.OUTPUT] == 2 * 5
    assert answer["usage"]["prompt_tokens"] == tokens(prompts[0]), (
        "llama-server now reports usage over all prompts; update SPEC §3.1's note"
    )
    assert answer["usage"]["completion_tokens"] == 5

    shared = "one prompt, two completions of it"
    before = _totals(_settled_metrics(server))
    answer = server.post_json(
        "/v1/completions",
        {"prompt": shared, "n": 2, "max_tokens": 4, "ignore_eos": True, "temperature": 0},
    )
    after = _totals(_settled_metrics(server))
    assert len(answer["choices"]) == 2
    assert after[Role.INPUT] - before[Role.INPUT] == tokens(shared)
    assert after[Role.OUTPUT] - before[Role.OUTPUT] == 2 * 4
    assert answer["usage"]["completion_tokens"] == 4


def test_page_format_matches_the_recorded_page(server: llamaserver.LlamaServer) -> None:
    """Format drift shows up here: names, HELP and TYPE lines as recorded from this build."""
    live = _settled_metrics(server).decode()
    if _flag(RECORD_ENV) and not RECORDED_PAGE.exists():
        DATA.mkdir(exist_ok=True)
        RECORDED_PAGE.write_text(live)
    assert RECORDED_PAGE.exists(), f"no recorded page; rerun with {RECORD_ENV}=1"
    recorded = RECORDED_PAGE.read_text()
    assert _structure(live) == _structure(recorded)
    # infercost's scanner reads every series of the live and the recorded page as
    # prometheus_client does. The names are the page's: prometheus_client reports a counter
    # sample served without ``_total`` (``llamacpp:n_tokens_max``) under ``<name>_total``.
    for text in (live, recorded):
        reference = _parsed(text.encode())
        names = [n for n in _structure(text) if not n.startswith("#")]
        assert len(names) >= 10
        found = scan(text.encode(), names)
        for name in names:
            expected = reference[name] if name in reference else reference[name + "_total"]
            assert [s.value for s in found[name]] == [expected], name
        assert read_tokens("llamacpp", text.encode()).readings


def test_usage_report_over_the_real_server_equals_the_sum_of_usage(
    server: llamaserver.LlamaServer, kube: Any
) -> None:
    """SPEC §3.1 end to end: a UsageReport over a pod backed by the real llama-server counts
    exactly the prompt and completion tokens its responses reported."""
    import datetime as dt

    from infercost.kube.clock import FakeClock
    from infercost.kube.rest import NODES, PODS
    from infercost.testing.ledgerrig import COSTPROFILES, USAGEREPORTS, LedgerRig
    from infercost.testing.simservers.objects import make_node, make_pod

    ns = "llm"
    kube.sim.create_namespace(ns)
    kube.rest.create(NODES, make_node("cpu-gpu-1", gpus=1, labels={"pool": "real"}))
    pod = make_pod(
        "llama-0",
        namespace=ns,
        ip=llamaserver.HOST,
        node="cpu-gpu-1",
        annotations={
            "infercost.ai/backend": "llamacpp",
            "infercost.ai/metrics-port": str(server.port),
            "infercost.ai/model": "tiny-llama",
        },
        gpus=1,
    )
    kube.rest.create(PODS, pod, ns)
    kube.rest.merge_patch(PODS, "llama-0", {"status": pod["status"]}, ns, "status")
    kube.rest.create(
        COSTPROFILES,
        {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "CostProfile",
            "metadata": {"name": "real", "namespace": ns},
            "spec": {
                "hardware": {
                    "gpuModel": "CPU",
                    "gpuCount": 1,
                    "purchasePriceUSD": 8760.0,
                    "amortizationYears": 1,
                    "tdpWatts": 100.0,
                },
                "electricity": {"ratePerKWh": 0.2},
                "nodeSelector": {"pool": "real"},
            },
        },
        ns,
    )
    kube.rest.create(
        USAGEREPORTS,
        {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "UsageReport",
            "metadata": {"name": "today", "namespace": ns},
            "spec": {"costProfileRef": "real"},
        },
        ns,
    )
    clock = FakeClock(dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC))
    with LedgerRig(kube.rest, clock, scrape_timeout=10.0) as rig:
        rig.wait_cached(pods=1)
        _settled_metrics(server)
        rig.sample()  # coverage starts: the counters so far only set watermarks
        usages = [
            _completion(server, PROMPT, 6)["usage"],
            _completion(server, CACHED_PROMPT, 4)["usage"],
            _completion(server, CACHED_PROMPT, 5)["usage"],
            _chat(server, CHAT, 3)["usage"],
        ]
        _settled_metrics(server)
        rig.sample(30.0)
        status = rig.report(ns, "today")
    assert status["inputTokens"] == sum(u["prompt_tokens"] for u in usages)
    assert status["outputTokens"] == sum(u["completion_tokens"] for u in usages)
    assert status["cachedInputTokens"] == sum(
        u.get("prompt_tokens_details", {}).get("cached_tokens", 0) for u in usages
    )
    # 30 s of one GPU at $1/h plus 100 W (TDP) × 30 s at $0.20/kWh
    assert status["estimatedCostUSD"] == pytest.approx(30 / 3600 + 100 * 30 / 3.6e6 * 0.2)
    assert [e["model"] for e in status["byModel"]] == ["tiny-llama"]

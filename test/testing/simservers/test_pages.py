"""The fixture pages under test/data/metrics are exactly what the renderers produce.

This pins the simulated servers' formats to the reviewed fixtures: a change to a renderer that
alters a page fails here, and the fixture must be regenerated and reviewed deliberately.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infercost.testing.simservers import pages
from infercost.testing.simservers.pages import GpuState, ModelCounters

DATA = Path(__file__).resolve().parents[2] / "data" / "metrics"
LLAMA70B = "meta-llama/Llama-3.3-70B-Instruct"


def counters(
    model: str,
    engine: str = "0",
    i: int = 18452310,
    c: int = 6120000,
    o: int = 4201907,
    r: int = 10549,
    run: int = 7,
    wait: int = 2,
) -> ModelCounters:
    return ModelCounters(
        model=model,
        engine=engine,
        input_tokens=i,
        cached_tokens=c,
        output_tokens=o,
        requests=r,
        running=run,
        waiting=wait,
        created=1764230412.5183175,
    )


GPUS = [
    GpuState(0, "GPU-5a1c9e0e-3f7b-4e1c-9d0a-1b2c3d4e5f60", power_watts=512.331,
             energy_mj=1874523011942, pod="llama70b-6f9c7d8b5-x2kqp", namespace="llm-prod",
             container="vllm"),
    GpuState(1, "GPU-7e2d0c11-8a4b-4c2e-a1f3-0c9d8e7f6a51", power_watts=498.02,
             energy_mj=1869011234567, pod="llama70b-6f9c7d8b5-x2kqp", namespace="llm-prod",
             container="vllm"),
    GpuState(2, "GPU-1b3e5d7f-9a2c-4e6b-8d0f-2a4c6e8b0d13", power_watts=301.5,
             energy_mj=1200456789012, pod="trainer-0", namespace="research", container="trainer"),
    GpuState(3, "GPU-9c8b7a65-4321-4fed-b0a9-876543210fed", power_watts=71.874,
             energy_mj=402345678901),
]  # fmt: skip
MIG = [
    GpuState(0, "GPU-3f0a1b2c-d4e5-4f60-8172-93a4b5c6d7e8", model_name="NVIDIA A100-SXM4-80GB",
             power_watts=243.118, energy_mj=987654321098,
             mig_instances=(("1", "3g.40gb", "team-a", "chat-7b-5d8f9c7b6-abcde"),
                            ("2", "2g.20gb", "team-b", "embed-6c7d8e9f0-fghij"),
                            ("3", "1g.10gb", "", ""))),
    GpuState(1, "GPU-4a1b2c3d-e5f6-4071-8293-a4b5c6d7e8f9", model_name="NVIDIA A100-SXM4-80GB",
             power_watts=61.5, energy_mj=456789012345),
]  # fmt: skip

RENDERED = {
    "vllm-0.11.txt": lambda: pages.render_vllm([counters(LLAMA70B)]),
    "vllm-0.6.txt": lambda: pages.render_vllm(
        [counters("mistralai/Mistral-7B-Instruct-v0.3", i=912345, c=0, o=230019, r=1533)],
        variant="v0",
    ),
    "vllm-multi-engine.txt": lambda: pages.render_vllm([
        counters(LLAMA70B, "0", 9231004, 3000000, 2100455, 5270),
        counters(LLAMA70B, "1", 9221306, 3120000, 2101452, 5279),
        counters(LLAMA70B, "2", 9100210, 2999000, 2070000, 5190),
        counters(LLAMA70B, "3", 9300000, 3050100, 2111000, 5301),
    ]),
    "vllm-multi-model.txt": lambda: pages.render_vllm([
        counters("Qwen/Qwen2.5-7B-Instruct", i=3456789, c=120000, o=987654, r=4021),
        counters("qwen-lora-support", i=45678, c=0, o=12345, r=88),
    ]),
    "llamacpp.txt": lambda: pages.render_llamacpp(
        counters("x", i=96641 + 18000, c=18000, o=23210, r=211, run=1, wait=0)
    ),
    "llamacpp-no-cached.txt": lambda: pages.render_llamacpp(
        counters("x", i=96641, c=0, o=23210, r=211, run=1, wait=0), with_cached=False
    ),
    "sglang.txt": lambda: pages.render("sglang", [
        counters("meta-llama/Llama-3.1-8B-Instruct", i=2345678, c=456789, o=876543, r=3120)
    ]),
    "lmdeploy.txt": lambda: pages.render("lmdeploy", [
        counters("internlm/internlm2_5-7b-chat", i=654321, c=0, o=123456, r=990)
    ]),
    "nim.txt": lambda: pages.render("nim", [
        counters("meta/llama-3.1-8b-instruct", i=1234567, c=0, o=345678, r=2048)
    ]),
    "tgi.txt": lambda: pages.render_tgi(counters("x", i=45231, c=0, o=18230, r=120, run=3, wait=1)),
    "triton-trtllm.txt": lambda: pages.render_triton(
        [counters("ensemble", i=45231, c=0, o=18230, r=120, run=2, wait=0)]
    ),
    "dcgm-pod-mapping.txt": lambda: pages.render_dcgm(GPUS, hostname="gpu-node-1"),
    "dcgm-no-pod-mapping.txt": lambda: pages.render_dcgm(
        GPUS[:2], hostname="gpu-node-2", pod_mapping=False
    ),
    "dcgm-hostname-lowercase.txt": lambda: pages.render_dcgm(
        GPUS[:2], hostname="gpu-node-3", hostname_label="hostname"
    ),
    "dcgm-mig.txt": lambda: pages.render_dcgm(MIG, hostname="gpu-node-4"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_renderer_reproduces_the_fixture(name: str) -> None:
    assert RENDERED[name]() == (DATA / name).read_bytes()


def test_render_dispatch_rejects_what_servers_cannot_serve() -> None:
    with pytest.raises(ValueError, match="one model"):
        pages.render("llamacpp", [counters("a"), counters("b")])
    with pytest.raises(ValueError, match="no renderer"):
        pages.render("ollama", [counters("a")])
    with pytest.raises(ValueError, match="cached tokens"):
        counters("a").serve(1, 1, cached_tokens=2)

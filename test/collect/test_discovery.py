"""Discovery from cached pods: inference sources, ports, paths, models, exporters, GPU holders."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from infercost.collect.dcgm import read_dcgm
from infercost.collect.discovery import (
    DiscoveryError,
    LabelSelector,
    PodRef,
    discover_exporters,
    discover_inference,
    gpu_limit,
    inference_backend,
    inference_target,
    model_fallback,
    node_gpu_ids,
    node_holdings,
    parse_dcgm_selectors,
    parse_dcgm_url,
    strip_template_hash,
)
from infercost.kube.transforms import PodInfo, transform_pod
from infercost.testing.simservers import objects


def make_pod(name: str, **options: Any) -> PodInfo:
    """A pod as the informer caches it: what discovery reads."""
    return transform_pod(objects.make_pod(name, **options))


def make_dcgm_exporter_pod(node: str, ip: str, **options: Any) -> PodInfo:
    return transform_pod(objects.make_dcgm_exporter_pod(node, ip, **options))


BACKEND = "infercost.ai/backend"


def test_rule_1_backend_annotation_or_label() -> None:
    assert inference_backend(make_pod("a", annotations={BACKEND: "vllm"})) == (
        "vllm",
        "annotation infercost.ai/backend",
    )
    assert inference_backend(make_pod("a", labels={BACKEND: "llamacpp"}))[0] == "llamacpp"  # type: ignore[index]
    # the annotation wins over the label, and rule 1 over rules 2 and 3
    pod = make_pod(
        "a",
        annotations={BACKEND: "sglang", "infercost.ai/scrape": "true"},
        labels={BACKEND: "tgi", "inference.llmkube.dev/runtime": "llamacpp"},
    )
    assert inference_backend(pod)[0] == "sglang"  # type: ignore[index]


@pytest.mark.parametrize(
    ("labels", "annotations"),
    [
        ({"inference.llmkube.dev/runtime": "llamacpp"}, {}),
        ({"serving.kserve.io/inferenceservice": "llama"}, {}),
        ({}, {"infercost.ai/scrape": "true"}),
        ({}, {"infercost.ai/scrape": "True"}),
    ],
)
def test_rules_2_and_3_auto_detect(labels: dict[str, str], annotations: dict[str, str]) -> None:
    assert inference_backend(make_pod("a", labels=labels, annotations=annotations))[0] == "auto"  # type: ignore[index]


def test_pods_that_are_not_sources() -> None:
    assert inference_backend(make_pod("a")) is None
    assert inference_backend(make_pod("a", annotations={"infercost.ai/scrape": "false"})) is None
    assert inference_target(make_pod("a", annotations={BACKEND: "vllm"}, phase="Pending")) is None
    assert inference_target(make_pod("a", annotations={BACKEND: "vllm"}, ip=None)) is None


def test_unknown_backend_is_named_in_the_error() -> None:
    with pytest.raises(DiscoveryError, match=r"unknown backend 'ollama'.*vllm, sglang"):
        inference_target(make_pod("a", annotations={BACKEND: "ollama"}))


def test_default_port_and_path_per_backend() -> None:
    vllm = inference_target(make_pod("a", ip="127.0.3.4", annotations={BACKEND: "vllm"}))
    assert vllm is not None and vllm.url == "http://127.0.3.4:8000/metrics"
    nim = inference_target(make_pod("a", ip="127.0.3.4", annotations={BACKEND: "nim"}))
    assert nim is not None and nim.url == "http://127.0.3.4:8000/v1/metrics"
    tgi = inference_target(make_pod("a", annotations={BACKEND: "tgi"}))
    assert tgi is not None and tgi.port == 80


def test_port_annotation_precedence() -> None:
    pod = objects.make_pod(
        "a",
        annotations={
            BACKEND: "vllm",
            "infercost.ai/metrics-port": "9000",
            "prometheus.kserve.io/port": "9001",
            "prometheus.io/port": "9002",
        },
    )
    assert inference_target(transform_pod(pod)).port == 9000  # type: ignore[union-attr]
    del pod["metadata"]["annotations"]["infercost.ai/metrics-port"]
    assert inference_target(transform_pod(pod)).port == 9001  # type: ignore[union-attr]
    del pod["metadata"]["annotations"]["prometheus.kserve.io/port"]
    assert inference_target(transform_pod(pod)).port == 9002  # type: ignore[union-attr]


def test_path_annotation_precedence() -> None:
    pod = objects.make_pod(
        "a",
        annotations={
            BACKEND: "llamacpp",
            "infercost.ai/metrics-path": "/metrics?model=llama",
            "prometheus.io/path": "/other",
        },
    )
    assert inference_target(transform_pod(pod)).path == "/metrics?model=llama"  # type: ignore[union-attr]
    del pod["metadata"]["annotations"]["infercost.ai/metrics-path"]
    assert inference_target(transform_pod(pod)).path == "/other"  # type: ignore[union-attr]


def test_named_container_port_is_accepted() -> None:
    pod = make_pod(
        "a", annotations={BACKEND: "vllm", "prometheus.io/port": "http"}, ports=[("http", 8080)]
    )
    assert inference_target(pod).port == 8080  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"infercost.ai/metrics-port": "eighty"}, "infercost.ai/metrics-port: 'eighty' is neither"),
        ({"infercost.ai/metrics-port": "0"}, "out of range"),
        ({"prometheus.io/port": "70000"}, "prometheus.io/port: port '70000' is out of range"),
        ({"infercost.ai/metrics-path": "metrics"}, "is not a URL path"),
        ({"infercost.ai/metrics-path": "/a b"}, "is not a URL path"),
        ({"infercost.ai/metrics-path": "@evil.example/metrics"}, "is not a URL path"),
    ],
)
def test_bad_annotations_are_clear_per_pod_errors(
    annotations: dict[str, str], message: str
) -> None:
    pod = make_pod("bad", namespace="team", annotations={BACKEND: "vllm", **annotations})
    with pytest.raises(DiscoveryError, match=message):
        inference_target(pod)
    found = discover_inference([pod, make_pod("good", annotations={BACKEND: "vllm"})])
    assert [t.pod.name for t in found.targets] == ["good"]
    assert str(found.problems[0]).startswith("pod team/bad: ")


def test_auto_needs_a_port_annotation_unless_llmkube_names_the_runtime() -> None:
    with pytest.raises(DiscoveryError, match="backend auto needs a metrics port"):
        inference_target(make_pod("a", annotations={"infercost.ai/scrape": "true"}))
    ok = make_pod("a", annotations={"infercost.ai/scrape": "true", "prometheus.io/port": "8000"})
    assert inference_target(ok).port == 8000  # type: ignore[union-attr]
    llmkube = make_pod("a", labels={"inference.llmkube.dev/runtime": "llamacpp"})
    assert inference_target(llmkube).port == 8080  # type: ignore[union-attr]


def test_host_is_always_the_pod_ip() -> None:
    pod = make_pod(
        "a",
        ip="127.0.9.9",
        annotations={BACKEND: "vllm", "infercost.ai/metrics-path": "//evil.example:80/metrics"},
    )
    target = inference_target(pod)
    assert target is not None and target.host == "127.0.9.9"
    assert target.url.startswith("http://127.0.9.9:8000/")
    ipv6 = inference_target(make_pod("b", ip="fd00::5", annotations={BACKEND: "vllm"}))
    assert ipv6 is not None and ipv6.url == "http://[fd00::5]:8000/metrics"


def test_model_name_fallback_chain() -> None:
    labels = {
        "app.kubernetes.io/name": "app-name",
        "serving.kserve.io/inferenceservice": "kserve-svc",
        "inference.llmkube.dev/model": "llmkube-model",
    }
    pod = objects.make_pod(
        "p",
        labels=dict(labels),
        annotations={"infercost.ai/model": "explicit"},
        owner=("ReplicaSet", "chat-6f9c7d8b5"),
        template_hash="6f9c7d8b5",
    )
    assert model_fallback(transform_pod(pod)) == "explicit"
    del pod["metadata"]["annotations"]["infercost.ai/model"]
    pod["metadata"]["labels"]["infercost.ai/model"] = "explicit-label"
    assert model_fallback(transform_pod(pod)) == "explicit-label"
    del pod["metadata"]["labels"]["infercost.ai/model"]
    for key, expected in (
        ("inference.llmkube.dev/model", "llmkube-model"),
        ("serving.kserve.io/inferenceservice", "kserve-svc"),
        ("app.kubernetes.io/name", "app-name"),
    ):
        assert model_fallback(transform_pod(pod)) == expected
        del pod["metadata"]["labels"][key]
    assert model_fallback(transform_pod(pod)) == "chat"  # ReplicaSet without its pod-template-hash


def test_owner_names() -> None:
    # the pod-template-hash label strips precisely, even a hash that looks like a word
    pod = make_pod("x", owner=("ReplicaSet", "llama-70b-chat-5d8f9c7b6"), template_hash="5d8f9c7b6")
    assert model_fallback(pod) == "llama-70b-chat"
    assert strip_template_hash("my-model-v2", "abcde") == "my-model-v2"
    # without the label the Kubernetes hash alphabet is recognised
    assert strip_template_hash("chat-7b-6f9c7d8b5") == "chat-7b"
    assert strip_template_hash("qwen-instruct") == "qwen-instruct"  # 'instruct' has vowels
    assert model_fallback(make_pod("x", owner=("StatefulSet", "llama-sts"))) == "llama-sts"
    assert model_fallback(make_pod("lonely-pod")) == "lonely-pod"


def test_target_carries_what_the_ledger_needs() -> None:
    pod = make_pod(
        "chat-6f9c7d8b5-x2kqp",
        namespace="team-a",
        ip="127.0.1.2",
        node="n1",
        annotations={BACKEND: "vllm"},
        ports=[("http", 8000)],
        containers=["vllm", "sidecar"],
        restart_counts={"vllm": 2, "sidecar": 5},
        deleting=True,
    )
    target = inference_target(pod)
    assert target is not None
    assert target.pod == PodRef("team-a", "chat-6f9c7d8b5-x2kqp", pod.uid)
    assert target.node == "n1" and target.container == "vllm" and target.restart_count == 2
    assert target.pod_restarts == 7, "a sidecar's restarts are not the server's"
    assert target.start_time == dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)
    assert target.phase == "Running" and target.deleting


def test_discovery_filters_by_node() -> None:
    pods = [
        make_pod("a", node="n1", annotations={BACKEND: "vllm"}),
        make_pod("b", node="n2", annotations={BACKEND: "vllm"}),
    ]
    assert [t.pod.name for t in discover_inference(pods, {"n2"}).targets] == ["b"]
    assert len(discover_inference(pods).targets) == 2


# --- DCGM exporters ---------------------------------------------------------------------------


def test_exporters_by_default_selectors_and_ports() -> None:
    pods = [
        make_dcgm_exporter_pod("n1", "127.0.5.1"),
        make_dcgm_exporter_pod(
            "n2",
            "127.0.5.2",
            labels={"app.kubernetes.io/name": "dcgm-exporter"},
            port_name="metrics",
            port=9500,
        ),
        make_dcgm_exporter_pod("n3", "127.0.5.3", port_name=None, port=1234),
        make_dcgm_exporter_pod("n4", "127.0.5.4", labels={"app": "something-else"}),
        make_dcgm_exporter_pod("n5", "127.0.5.5", phase="Pending"),
        make_dcgm_exporter_pod("elsewhere", "127.0.5.6"),
    ]
    found = discover_exporters(pods, {"n1", "n2", "n3", "n4", "n5"})
    assert [(t.node, t.url) for t in found.targets] == [
        ("n1", "http://127.0.5.1:9400/metrics"),
        ("n2", "http://127.0.5.2:9500/metrics"),
        ("n3", "http://127.0.5.3:9400/metrics"),  # unnamed port: the default 9400
    ]
    assert list(found.not_running) == ["n5"]
    assert found.nodes_with_exporters() == {"n1", "n2", "n3"}
    forced = discover_exporters(pods, {"n1"}, port=9999)
    assert forced.targets[0].port == 9999


def test_exporters_are_trusted_only_in_the_dcgm_namespaces() -> None:
    pods = [
        make_dcgm_exporter_pod("n1", "127.0.5.1"),
        make_dcgm_exporter_pod("n1", "127.0.5.2", name="not-an-exporter", namespace="aaa"),
        make_dcgm_exporter_pod("n2", "127.0.5.3", name="lookalike", namespace="team-b"),
        make_dcgm_exporter_pod("n3", "127.0.5.4", name="unowned-node", namespace="aaa"),
    ]
    found = discover_exporters(pods, {"n1", "n2"})
    assert [str(t.pod) for t in found.targets] == ["gpu-operator/nvidia-dcgm-exporter-n1"]
    assert [(str(u.pod), u.node) for u in found.untrusted] == [
        ("aaa/not-an-exporter", "n1"),
        ("team-b/lookalike", "n2"),
    ]
    assert not found.not_running
    opened = discover_exporters(pods, {"n1"}, namespaces=("gpu-operator", "aaa"))
    assert len(opened.targets) == 2 and not opened.untrusted


def test_configurable_selector() -> None:
    pods = [make_dcgm_exporter_pod("n1", "127.0.5.1", labels={"team": "gpu", "tier": "x"})]
    assert discover_exporters(pods, None).targets == ()
    selectors = parse_dcgm_selectors(["team=gpu,tier!=y"])
    assert len(discover_exporters(pods, None, selectors).targets) == 1


@pytest.mark.parametrize("text", ["", "a=b,", "bad key=x", "a=b c"])
def test_bad_selectors_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="label selector"):
        LabelSelector.parse(text)


def test_selector_operators() -> None:
    sel = LabelSelector.parse("a==1,b!=2,c,!d")
    assert sel.matches({"a": "1", "b": "3", "c": ""})
    assert not sel.matches({"a": "1", "b": "2", "c": ""})
    assert not sel.matches({"a": "1", "c": "", "d": "x"})


def test_dcgm_url_targets() -> None:
    target = parse_dcgm_url("http://10.1.2.3:9400/metrics")
    assert target.node is None and target.host == "10.1.2.3" and target.port == 9400
    assert parse_dcgm_url("http://exporter.gpu").path == "/metrics"
    for bad in ("https://x:9400/metrics", "ftp://x", "http://:9400/", "http://x:port/"):
        with pytest.raises(ValueError, match="--dcgm-url"):
            parse_dcgm_url(bad)


# --- nodes and GPU holders ------------------------------------------------------------------


def test_gpu_limits() -> None:
    assert gpu_limit(make_pod("p", gpus=2)) == 2
    assert gpu_limit(make_pod("none")) == 0


def test_holders_from_dcgm_pod_labels() -> None:
    from pathlib import Path

    body = (Path(__file__).resolve().parents[1] / "data/metrics/dcgm-pod-mapping.txt").read_bytes()
    readings = read_dcgm(body).gpus
    llama = make_pod("llama70b-6f9c7d8b5-x2kqp", namespace="llm-prod", node="gpu-node-1", gpus=2)
    trainer = make_pod("trainer-0", namespace="research", node="gpu-node-1", gpus=1)
    held = node_holdings("gpu-node-1", [llama, trainer], readings, {llama.uid})
    assert [(h.pod.name, h.gpus, len(h.uuids), h.source, h.inference) for h in held.holdings] == [
        ("llama70b-6f9c7d8b5-x2kqp", 2.0, 2, "dcgm", True),
        ("trainer-0", 1.0, 1, "dcgm", False),  # a training job holds GPUs too
    ]
    assert held.holdings[0].pod.uid == llama.uid
    assert held.unheld_uuids == ("GPU-9c8b7a65-4321-4fed-b0a9-876543210fed",)


def test_holders_from_mig_instances_are_fractions() -> None:
    from pathlib import Path

    body = (Path(__file__).resolve().parents[1] / "data/metrics/dcgm-mig.txt").read_bytes()
    held = node_holdings("gpu-node-4", [], read_dcgm(body).gpus)
    assert [(h.pod.name, round(h.gpus, 4)) for h in held.holdings] == [
        ("chat-7b-5d8f9c7b6-abcde", round(3 / 7, 4)),
        ("embed-6c7d8e9f0-fghij", round(2 / 7, 4)),
    ]
    assert held.unheld_uuids == ("GPU-4a1b2c3d-e5f6-4071-8293-a4b5c6d7e8f9",)


def test_holders_from_gpu_limits_without_dcgm_mapping() -> None:
    pods = [
        make_pod("infer", node="n1", gpus=2, annotations={BACKEND: "vllm"}),
        make_pod("notebook", namespace="ds", node="n1", gpus=1),
        make_pod("cpu-only", node="n1"),
        make_pod("done", node="n1", gpus=4, phase="Succeeded"),
        make_pod("other-node", node="n2", gpus=1),
    ]
    held = node_holdings("n1", pods, (), {pods[0].uid}, node_gpus=4)
    assert [(h.pod.name, h.gpus, h.source, h.inference) for h in held.holdings] == [
        ("infer", 2.0, "limits", True),  # sorted by namespace/name
        ("notebook", 1.0, "limits", False),  # non-inference GPU pods are tracked too
    ]
    ids = ["n1/gpu0", "n1/gpu1", "n1/gpu2", "n1/gpu3"]
    assert dict(held.holdings[0].shares) == dict.fromkeys(ids, 0.5)
    assert dict(held.holdings[1].shares) == dict.fromkeys(ids, 0.25)


def test_gpu_ids_are_dcgm_uuids_then_stable_index_ids_for_the_rest() -> None:
    from pathlib import Path

    body = (Path(__file__).resolve().parents[1] / "data/metrics/dcgm-pod-mapping.txt").read_bytes()
    readings = read_dcgm(body).gpus[:2]
    assert {r.gpu for r in readings} == {"0", "1"}
    ids = node_gpu_ids("n1", 4, readings)
    assert ids == (readings[0].uuid, readings[1].uuid, "n1/gpu2", "n1/gpu3")
    assert node_gpu_ids("n1", 2, ()) == ("n1/gpu0", "n1/gpu1")
    assert node_gpu_ids("n1", 0, ()) == (), "a node without nvidia.com/gpu capacity has none"

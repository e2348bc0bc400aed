"""DCGM pages: one reading per physical GPU, holders, hostname spellings, MIG, node of a reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from infercost.collect.dcgm import (
    GpuHolder,
    assign_nodes,
    dedupe_gpus,
    read_dcgm,
)
from infercost.collect.errors import MissingMetricsError, NotPrometheusTextError
from infercost.engine.costmodel import GpuPower

DATA = Path(__file__).resolve().parents[1] / "data" / "metrics"


def page(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_pod_mapping_page() -> None:
    gpus = read_dcgm(page("dcgm-pod-mapping.txt")).gpus
    assert [g.gpu for g in gpus] == ["0", "1", "2", "3"]
    first = gpus[0]
    assert first.uuid == "GPU-5a1c9e0e-3f7b-4e1c-9d0a-1b2c3d4e5f60"
    assert first.power_watts == pytest.approx(512.331)
    assert first.energy_mj == 1874523011942
    assert first.model_name == "NVIDIA H100 80GB HBM3"
    assert first.hostname == "gpu-node-1"
    assert first.pod_mapping
    assert first.holders == (GpuHolder("llm-prod", "llama70b-6f9c7d8b5-x2kqp"),)
    assert gpus[2].holders == (GpuHolder("research", "trainer-0"),)
    assert gpus[3].holders == () and gpus[3].pod_mapping  # empty strings: unheld
    assert first.power() == GpuPower(first.uuid, "0", pytest.approx(512.331))


def test_page_without_pod_mapping_has_no_holders() -> None:
    gpus = read_dcgm(page("dcgm-no-pod-mapping.txt")).gpus
    assert len(gpus) == 2
    assert all(not g.pod_mapping and g.holders == () for g in gpus)
    assert {g.hostname for g in gpus} == {"gpu-node-2"}


def test_new_lowercase_hostname_label() -> None:
    gpus = read_dcgm(page("dcgm-hostname-lowercase.txt")).gpus
    assert {g.hostname for g in gpus} == {"gpu-node-3"}


def test_mig_rows_are_one_physical_gpu_with_each_instance_holder() -> None:
    gpus = read_dcgm(page("dcgm-mig.txt")).gpus
    assert len(gpus) == 2
    mig = gpus[0]
    assert mig.mig and mig.power_watts == pytest.approx(243.118)
    assert mig.energy_mj == 987654321098
    assert mig.holders == (
        GpuHolder("team-a", "chat-7b-5d8f9c7b6-abcde", "1", "3g.40gb"),
        GpuHolder("team-b", "embed-6c7d8e9f0-fghij", "2", "2g.20gb"),
    )
    assert not gpus[1].mig and gpus[1].holders == ()


def test_exported_labels_win_over_the_exporter_own_pod_labels() -> None:
    body = (
        b'DCGM_FI_DEV_POWER_USAGE{gpu="0",uuid="GPU-a",hostname="n1",exported_pod="vllm-0",'
        b'exported_namespace="team",pod="nvidia-dcgm-exporter-x",namespace="gpu-operator"} 300\n'
        b'DCGM_FI_DEV_POWER_USAGE{gpu="1",uuid="GPU-b",hostname="n1",exported_pod="",'
        b'exported_namespace="",pod="nvidia-dcgm-exporter-x",namespace="gpu-operator"} 60\n'
    )
    gpus = read_dcgm(body).gpus
    assert gpus[0].uuid == "GPU-a"  # lower-case uuid label
    assert gpus[0].holders == (GpuHolder("team", "vllm-0"),)
    assert gpus[1].holders == ()
    assert gpus[0].energy_mj is None


def test_duplicate_rows_and_bad_values() -> None:
    body = (
        b'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a"} 300\n'
        b'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a"} 301\n'
        b'DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-b"} NaN\n'
        b'DCGM_FI_DEV_POWER_USAGE{gpu="2",Hostname="n9"} 10\n'
    )
    gpus = read_dcgm(body).gpus
    assert [(g.uuid, g.power_watts) for g in gpus] == [
        ("GPU-a", 300),
        ("GPU-b", None),
        ("n9/gpu2", 10),
    ]
    assert gpus[1].power() is None


def test_dedupe_keeps_one_reading_per_uuid_first_node_first() -> None:
    a = read_dcgm(page("dcgm-pod-mapping.txt")).gpus
    b = read_dcgm(page("dcgm-hostname-lowercase.txt")).gpus  # shares two UUIDs with a
    shared = {r.uuid for r in a} & {r.uuid for r in b}
    assert len(shared) == 2
    merged = dedupe_gpus({"n2": a, "n1": b})
    assert set(merged["n1"]) == set(b), "n1 comes first by name and keeps all of its GPUs"
    assert [r.uuid for r in merged["n2"]] == [r.uuid for r in a if r.uuid not in shared]
    assert dedupe_gpus({"n1": [*a, *a]}) == {"n1": a}


def test_node_of_a_reading() -> None:
    dcgm = read_dcgm(page("dcgm-pod-mapping.txt"))
    # discovered exporter pod: its spec.nodeName, whatever Hostname says
    assigned = assign_nodes(dcgm, "worker-7")
    assert set(assigned.by_node) == {"worker-7"} and len(assigned.by_node["worker-7"]) == 4
    # --dcgm-url target: the Hostname/hostname label
    url = assign_nodes(dcgm, None)
    assert set(url.by_node) == {"gpu-node-1"}
    lost = assign_nodes(read_dcgm(b'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-x"} 5\n'), None)
    assert lost.by_node == {} and len(lost.unassigned) == 1


def test_empty_page_has_no_readings_but_other_pages_are_errors() -> None:
    assert read_dcgm(b"").gpus == ()
    with pytest.raises(MissingMetricsError, match="not a dcgm-exporter page"):
        read_dcgm(page("vllm-0.11.txt"))
    with pytest.raises(MissingMetricsError, match="collectors CSV"):
        read_dcgm(b'DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-a"} 40\n')
    with pytest.raises(NotPrometheusTextError):
        read_dcgm(page("bad-html-error.html"))


def test_page_declaring_the_families_without_gpu_rows_has_no_readings() -> None:
    # An exporter whose node has no driver loaded (or whose GPUs are all filtered out) still
    # serves HELP/TYPE lines: that is "no readings" (DCGMNotFound), not a scrape error.
    body = (
        b"# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).\n"
        b"# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n"
        b"# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot.\n"
        b"# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n"
    )
    assert read_dcgm(body).gpus == ()

"""The numpy attribution step (SPEC §5) against a plain-Python reference written from the SPEC's
rules, on random clusters; plus hand-checked cases."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infercost.engine.attribution import GPU_SECONDS, AttributionInput, attribute


def _input(gpus, holds, pods, n_nodes, n_keys, n_groups):
    """gpus: [(node, group, amounts)], holds: [(gpu, pod, share)],
    pods: [(node, inference, [(key, tokens)])]."""
    ptr = [0]
    keys, tokens = [], []
    for _, _, entries in pods:
        for k, t in entries:
            keys.append(k)
            tokens.append(float(t))
        ptr.append(len(keys))
    return AttributionInput(
        gpu_node=np.array([g[0] for g in gpus], dtype=np.int64),
        gpu_group=np.array([g[1] for g in gpus], dtype=np.int64),
        gpu_amounts=np.array([g[2] for g in gpus], dtype=np.float64).reshape(-1, 5),
        hold_gpu=np.array([h[0] for h in holds], dtype=np.int64),
        hold_pod=np.array([h[1] for h in holds], dtype=np.int64),
        hold_share=np.array([h[2] for h in holds], dtype=np.float64),
        pod_node=np.array([p[0] for p in pods], dtype=np.int64),
        pod_inference=np.array([p[1] for p in pods], dtype=bool),
        entry_ptr=np.array(ptr, dtype=np.int64),
        entry_key=np.array(keys, dtype=np.int64),
        entry_tokens=np.array(tokens, dtype=np.float64),
        n_nodes=n_nodes,
        n_keys=n_keys,
        n_groups=n_groups,
    )


def reference(gpus, holds, pods, n_keys, n_groups):
    """SPEC §5 rules 1–5, one GPU and one pod at a time. Also returns, per GPU, the share of
    it that each key received and the fraction of it that is idle."""
    to_key = defaultdict(lambda: [0.0] * 5)
    active = defaultdict(float)
    idle = defaultdict(lambda: [0.0] * 5)
    destinations = [defaultdict(float) for _ in gpus]
    rests = []

    def pod_split(pod, fraction, amounts, gpu):
        _, inference, entries = pods[pod]
        total = sum(t for _, t in entries)
        for k, t in entries:
            w = t / total if total > 0 else 1.0 / len(entries)
            destinations[gpu][k] += fraction * w
            for c in range(5):
                to_key[k][c] += fraction * w * amounts[c]
            if t > 0 and inference:
                active[k] += fraction * w * amounts[GPU_SECONDS]

    nodes_with_holders = {gpus[g][0] for g, _, s in holds if s > 0 and gpus[g][0] >= 0}
    for g, (node, group, amounts) in enumerate(gpus):
        mine = [(p, s) for gg, p, s in holds if gg == g]
        held = sum(s for _, s in mine)
        scale = 1.0 / held if held > 1 else 1.0
        given_away = 0.0
        for p, s in mine:
            pod_split(p, s * scale, amounts, g)
            if pods[p][2]:  # a pod without entries passes nothing on
                given_away += s * scale
        if node >= 0 and node not in nodes_with_holders:
            serving = [
                (p, sum(t for _, t in e))
                for p, (n, inf, e) in enumerate(pods)
                if n == node and inf and sum(t for _, t in e) > 0
            ]
            total = sum(t for _, t in serving)
            if total > 0:
                for p, t in serving:
                    pod_split(p, t / total, amounts, g)
                given_away = 1.0
        rest = max(0.0, 1.0 - given_away)
        rests.append(rest)
        for c in range(5):
            idle[group][c] += rest * amounts[c]
    return to_key, active, idle, destinations, rests


@st.composite
def clusters(draw, one_holder_per_gpu=False):
    """Random clusters; ``one_holder_per_gpu``: as DCGM reports them, each GPU named for at
    most one pod, in GPU order, and pods that hold a GPU without any entry."""
    n_nodes = draw(st.integers(1, 4))
    n_groups = draw(st.integers(1, 3))
    n_keys = draw(st.integers(1, 6))
    amount = st.floats(0, 100, allow_nan=False)
    gpus = draw(
        st.lists(
            st.tuples(
                st.integers(-1, n_nodes - 1),
                st.integers(0, n_groups - 1),
                st.lists(amount, min_size=5, max_size=5),
            ),
            min_size=1,
            max_size=8,
        )
    )
    pods = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_nodes - 1),
                st.booleans(),
                st.lists(
                    st.tuples(st.integers(0, n_keys - 1), st.integers(0, 1000)),
                    min_size=0 if one_holder_per_gpu else 1,
                    max_size=3,
                ),
            ),
            min_size=1,
            max_size=6,
        )
    )
    if one_holder_per_gpu:
        held = draw(st.lists(st.integers(0, len(gpus) - 1), unique=True, max_size=len(gpus)))
        holds = [
            (g, draw(st.integers(0, len(pods) - 1)), draw(st.sampled_from([1.0, 1.0, 0.5, 2.0])))
            for g in sorted(held)
        ]
    else:
        holds = draw(
            st.lists(
                st.tuples(
                    st.integers(0, len(gpus) - 1),
                    st.integers(0, len(pods) - 1),
                    st.sampled_from([0.25, 0.5, 1.0, 1 / 3]),
                ),
                max_size=6,
            )
        )
    return gpus, holds, pods, n_nodes, n_keys, n_groups


def _agrees_with_the_reference(cluster) -> None:
    gpus, holds, pods, n_nodes, n_keys, n_groups = cluster
    result = attribute(_input(gpus, holds, pods, n_nodes, n_keys, n_groups))
    to_key, active, idle, destinations, rests = reference(gpus, holds, pods, n_keys, n_groups)
    for k in range(n_keys):
        np.testing.assert_allclose(result.key_amounts[k], to_key[k], rtol=1e-9, atol=1e-9)
        assert result.key_active_seconds[k] == pytest.approx(active[k], rel=1e-9, abs=1e-9)
    for g in range(n_groups):
        np.testing.assert_allclose(result.idle_amounts[g], idle[g], rtol=1e-9, atol=1e-9)
    # where each GPU went, as the ledger reads it for GPUs whose energy comes later
    np.testing.assert_allclose(result.gpu_remainder, rests, rtol=1e-9, atol=1e-12)
    for g, expected in enumerate(destinations):
        got = defaultdict(float)
        for k, w in result.rows_of(g):
            got[k] += w
        for k in set(got) | set(expected):
            assert got[k] == pytest.approx(expected[k], rel=1e-9, abs=1e-12), (g, k)


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_numpy_step_agrees_with_the_reference(cluster) -> None:
    _agrees_with_the_reference(cluster)


@settings(max_examples=300, deadline=None)
@given(clusters(one_holder_per_gpu=True))
def test_numpy_step_agrees_with_the_reference_when_dcgm_names_one_pod_per_gpu(cluster) -> None:
    _agrees_with_the_reference(cluster)


@settings(max_examples=200, deadline=None)
@given(clusters())
def test_booked_plus_idle_is_the_interval_cost_and_nothing_is_negative(cluster) -> None:
    gpus, holds, pods, n_nodes, n_keys, n_groups = cluster
    result = attribute(_input(gpus, holds, pods, n_nodes, n_keys, n_groups))
    total = np.array([g[2] for g in gpus]).sum(axis=0)
    booked = result.key_amounts.sum(axis=0) + result.idle_amounts.sum(axis=0)
    np.testing.assert_allclose(booked, total, rtol=1e-9, atol=1e-9)
    assert (result.key_amounts >= -1e-12).all()
    assert (result.idle_amounts >= -1e-12).all()


@settings(max_examples=100, deadline=None)
@given(clusters(), st.randoms())
def test_pod_order_does_not_change_the_result(cluster, rnd) -> None:
    gpus, holds, pods, n_nodes, n_keys, n_groups = cluster
    order = list(range(len(pods)))
    rnd.shuffle(order)
    new_index = {old: new for new, old in enumerate(order)}
    shuffled = [pods[old] for old in order]
    moved = [(g, new_index[p], s) for g, p, s in holds]
    a = attribute(_input(gpus, holds, pods, n_nodes, n_keys, n_groups))
    b = attribute(_input(gpus, moved, shuffled, n_nodes, n_keys, n_groups))
    np.testing.assert_allclose(a.key_amounts, b.key_amounts, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.idle_amounts, b.idle_amounts, rtol=1e-9, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(clusters(one_holder_per_gpu=True), st.randoms())
def test_the_order_dcgm_names_holders_in_does_not_change_the_result(cluster, rnd) -> None:
    gpus, holds, pods, n_nodes, n_keys, n_groups = cluster
    shuffled = list(holds)
    rnd.shuffle(shuffled)
    a = attribute(_input(gpus, holds, pods, n_nodes, n_keys, n_groups))
    b = attribute(_input(gpus, shuffled, pods, n_nodes, n_keys, n_groups))
    np.testing.assert_allclose(a.key_amounts, b.key_amounts, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.key_active_seconds, b.key_active_seconds, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.idle_amounts, b.idle_amounts, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.gpu_remainder, b.gpu_remainder, rtol=1e-9, atol=1e-12)


def test_worked_example() -> None:
    """Node 0: GPU 0 held by a vLLM pod serving two models 3:1; GPU 1 held by a training pod;
    GPU 2 unheld. Node 1 has no holders: its GPU is split 1:4 by tokens between two pods.
    A pool GPU (shortfall) is idle."""
    one = [10.0, 2.0, 0.1, 0.0, 3600.0]
    gpus = [(0, 0, one), (0, 0, one), (0, 0, one), (1, 0, one), (-1, 0, [5.0, 0, 0, 0, 3600])]
    pods = [
        (0, True, [(0, 300), (1, 100)]),  # vLLM: model a, model b
        (0, False, [(2, 0)]),  # training: (non-inference)
        (1, True, [(3, 100)]),
        (1, True, [(4, 400)]),
    ]
    holds = [(0, 0, 1.0), (1, 1, 1.0)]
    r = attribute(_input(gpus, holds, pods, 2, 5, 1))
    assert r.key_amounts[0][0] == pytest.approx(7.5)
    assert r.key_amounts[1][0] == pytest.approx(2.5)
    assert r.key_amounts[2][0] == pytest.approx(10.0)
    assert r.key_amounts[3][0] == pytest.approx(2.0)
    assert r.key_amounts[4][0] == pytest.approx(8.0)
    assert r.idle_amounts[0][0] == pytest.approx(15.0)  # unheld GPU 2 + the pool GPU
    assert r.key_active_seconds[2] == 0.0  # the training pod is never "active"
    assert r.key_active_seconds[0] == pytest.approx(2700.0)

"""The attribution step of SPEC §5: one vectorised pass that sends every GPU's interval cost to
(namespace, model) keys, for all GPUs and pods of all CostProfiles at once.

Inputs are flat arrays with index maps, no Python objects per pod or GPU:

- GPUs ``g``: ``gpu_node[g]`` (−1 for a profile's virtual pool GPUs: the shortfall and
  profiles that own no node), ``gpu_group[g]`` (its idle group: the ledger uses one per
  CostProfile and checkpoint shard), ``gpu_amounts[g, c]`` (the interval's
  amortization, electricity, energy, estimated energy and GPU-seconds of the GPU, see
  :data:`COMPONENTS`);
- holdings ``h`` (rule 1): ``hold_gpu[h]`` holds ``hold_share[h]`` of GPU ``hold_gpu[h]`` for pod
  ``hold_pod[h]``;
- pods ``p``: ``pod_node[p]``, ``pod_inference[p]``, and their entries in CSR form
  (``entry_ptr``): entry ``m`` of pod ``p`` books to key ``entry_key[m]`` with
  ``entry_tokens[m]`` input + output tokens in the interval (never negative). A pod that served
  nothing has one entry with 0 tokens (its ``(no-traffic)`` or ``(non-inference)`` key).

The rules, in order: a held GPU goes to its holders by share (shares over 1 in total are scaled
down); a GPU on a node where no pod holds GPUs goes to that node's inference pods by their token
share (rule 2); inside a pod, cost goes to its entries by token share (rule 3), or to its one
fallback entry (rules 3–4); whatever is left is idle (rule 5), returned per idle group so the
ledger can spread it by its day weights. The result also carries where each GPU's cost went
(:meth:`Attribution.rows_of`), which the ledger keeps for GPUs whose energy is deferred.

The work grows with GPUs + holdings + pods + entries, never with their product (a shared node's
GPUs are summed before they are split over its pods), and stays within a small multiple of a
memory pass over the input: ``python -m bench attribution`` measures it.
"""

from __future__ import annotations

import attrs
import numpy as np
from numpy.typing import NDArray

AMORTIZATION, ELECTRICITY, ENERGY, ESTIMATED, GPU_SECONDS = range(5)
COMPONENTS = ("amortization_usd", "electricity_usd", "energy_kwh", "estimated_kwh", "gpu_seconds")

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@attrs.frozen
class AttributionInput:
    gpu_node: IntArray
    gpu_group: IntArray
    gpu_amounts: FloatArray
    hold_gpu: IntArray
    hold_pod: IntArray
    hold_share: FloatArray
    pod_node: IntArray
    pod_inference: BoolArray
    entry_ptr: IntArray
    entry_key: IntArray
    entry_tokens: FloatArray
    n_nodes: int
    n_keys: int
    n_groups: int


@attrs.frozen
class Attribution:
    key_amounts: FloatArray
    """(keys, components): what went to each key by rules 1–4."""
    key_active_seconds: FloatArray
    """GPU-seconds per key whose cost went to a model that served tokens in the interval."""
    idle_amounts: FloatArray
    """(groups, components): what is left, per idle group."""
    gpu_remainder: FloatArray
    """Per GPU, the fraction that is idle."""
    # Where each GPU's cost went, kept to answer :meth:`rows_of`: holdings (rule 1, shares
    # scaled), the token shares of nodes whose GPUs are shared (rule 2), and what splits a
    # pod over its entries (rule 3).
    hold_gpu: IntArray
    hold_pod: IntArray
    hold_share: FloatArray
    gpu_shared_node: IntArray
    """Per GPU, its node when rule 2 split it, else −1."""
    share_pod: IntArray
    share_node: IntArray
    share_weight: FloatArray
    entry_ptr: IntArray
    entry_key: IntArray
    entry_tokens: FloatArray
    pod_tokens: FloatArray
    _index: dict[str, IntArray] = attrs.field(factory=dict, eq=False, repr=False)

    def rows_of(self, gpu: int) -> list[tuple[int, float]]:
        """(key, weight) of one GPU's non-idle destinations."""
        node = int(self.gpu_shared_node[gpu])
        if node >= 0:
            pods, shares = self._owners(node, self.share_node, self.share_pod, self.share_weight)
        else:
            pods, shares = self._owners(gpu, self.hold_gpu, self.hold_pod, self.hold_share)
        rows: list[tuple[int, float]] = []
        for pod, share in zip(pods.tolist(), shares.tolist(), strict=True):
            start, end = int(self.entry_ptr[pod]), int(self.entry_ptr[pod + 1])
            total = float(self.pod_tokens[pod])
            keys = self.entry_key[start:end].tolist()
            if total > 0:
                weights = (self.entry_tokens[start:end] / total * share).tolist()
            else:
                weights = [share / (end - start)] * (end - start)
            rows.extend(zip(keys, weights, strict=True))
        return rows

    def _owners(
        self, owner: int, owners: IntArray, pods: IntArray, shares: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        # the ledger asks for every deferred GPU: sort once, then binary search
        name = "share" if owners is self.share_node else "hold"
        order = self._index.get(name)
        if order is None:
            order = self._index[name] = np.argsort(owners, kind="stable")
        sorted_owners = owners[order]
        lo, hi = np.searchsorted(sorted_owners, [owner, owner + 1])
        picked = order[lo:hi]
        return pods[picked], shares[picked]


def _sum_by(index: IntArray, weights: FloatArray, size: int) -> FloatArray:
    """``weights`` summed per ``index`` into ``size`` slots (bincount, but float when empty)."""
    return np.bincount(index, weights, minlength=size).astype(np.float64, copy=False)


def attribute(inp: AttributionInput) -> Attribution:
    """Cost goes GPU → pods → entries: a held GPU to its holders, a shared node's GPUs (summed
    first) to its pods by tokens, a pod's receipts to its entries. Most pods have one entry, so
    an assignment (a holding, or a pod's token share of its node) goes straight to its pod's
    key; only pods with several entries are expanded to their entries. It runs one component
    at a time on 1-D vectors and frees what it no longer reads: on a 100,000-pod cluster,
    gathering rows of 2-D arrays and keeping dead temporaries cost more (in page faults) than
    the arithmetic itself.

    Node-indexed arrays have one spare slot at the end, so that node −1 (a pool GPU, read
    through numpy's negative indexing) lands in a slot that is never set.
    """
    n_gpus = len(inp.gpu_node)
    n_pods = len(inp.pod_node)
    n_components = inp.gpu_amounts.shape[1]
    counts = np.diff(inp.entry_ptr)
    # the pod of each entry: +1 at each pod's first entry (bincount: pods may have none)
    n_entries = len(inp.entry_key)
    entry_pod = np.cumsum(np.bincount(inp.entry_ptr[1:-1], minlength=n_entries + 1)[:n_entries])
    pod_tokens = _sum_by(entry_pod, inp.entry_tokens, n_pods)
    del entry_pod
    silent = pod_tokens <= 0  # rule 3: such a pod's cost is split evenly over its entries

    # rule 1: holders, at most the whole GPU in total
    held = _sum_by(inp.hold_gpu, inp.hold_share, n_gpus)
    hold_share = inp.hold_share / np.maximum(held, 1.0).take(inp.hold_gpu)
    node_has_holders = np.zeros(inp.n_nodes + 1, dtype=bool)
    node_has_holders[inp.gpu_node.take(inp.hold_gpu[inp.hold_share > 0])] = True
    node_has_holders[inp.n_nodes] = False  # a held pool GPU wrote the spare slot

    # rule 2: GPUs of nodes without holders, by the token share of the node's inference pods
    sharing = inp.pod_inference & ~silent
    sharing &= inp.pod_node >= 0
    sharing &= ~node_has_holders.take(inp.pod_node, mode="wrap")
    share_pod = np.flatnonzero(sharing)
    share_node = inp.pod_node.take(share_pod)
    node_tokens = _sum_by(share_node, pod_tokens.take(share_pod), inp.n_nodes + 1)
    shared = node_tokens.take(inp.gpu_node, mode="wrap") > 0
    shared_gpus = np.flatnonzero(shared)
    shared_node = inp.gpu_node.take(shared_gpus)
    share_weight = pod_tokens.take(share_pod) / node_tokens.take(share_node)
    # a holder without entries passes nothing on (rule 5 below)
    passed = hold_share * (counts.take(inp.hold_pod) > 0)
    del held, sharing, node_tokens, shared

    # Assignments: a pod with one entry has its key here (slot n_keys collects the others,
    # which go to their pods first, then to their entries).
    receiver = np.concatenate((inp.hold_pod, share_pod))
    receiver_entries = counts.take(receiver)
    single = receiver_entries == 1
    first_entry = inp.entry_ptr.take(receiver)
    direct_key = inp.entry_key.take(first_entry, mode="clip")
    direct_key[~single] = inp.n_keys
    direct_active = inp.entry_tokens.take(first_entry, mode="clip") > 0
    direct_active &= single
    direct_active &= inp.pod_inference.take(receiver)
    multi = np.flatnonzero(receiver_entries > 1)
    multi_receiver = receiver.take(multi)
    is_multi = np.zeros(n_pods, dtype=bool)
    is_multi[multi_receiver] = True
    multi_pods = np.flatnonzero(is_multi)
    slot_of_pod = np.empty(n_pods, dtype=np.int64)  # read only at multi_pods
    slot_of_pod[multi_pods] = np.arange(len(multi_pods))
    multi_slot = slot_of_pod.take(multi_receiver)
    multi_counts = counts.take(multi_pods)
    # the entries of those pods, CSR-expanded: the slot each belongs to, its index, its weight
    multi_owner = np.repeat(np.arange(len(multi_pods)), multi_counts)
    multi_entry = np.arange(len(multi_owner)) + (
        inp.entry_ptr.take(multi_pods) - (np.cumsum(multi_counts) - multi_counts)
    ).take(multi_owner)
    multi_key = inp.entry_key.take(multi_entry)
    multi_tokens = inp.entry_tokens.take(multi_entry)
    multi_pod_tokens = pod_tokens.take(multi_pods)
    multi_silent = (multi_pod_tokens <= 0).take(multi_owner)
    multi_weight = np.where(multi_silent, 1.0, multi_tokens)
    multi_weight /= np.where(multi_pod_tokens > 0, multi_pod_tokens, multi_counts).take(multi_owner)
    multi_active = (multi_tokens > 0) & inp.pod_inference.take(multi_pods).take(multi_owner)
    del receiver, receiver_entries, single, first_entry, counts, silent
    del multi_receiver, is_multi, slot_of_pod, multi_tokens, multi_silent, multi_pod_tokens

    given = np.empty(len(direct_key))
    given_held, given_shared = given[: len(inp.hold_pod)], given[len(inp.hold_pod) :]
    key_amounts = np.empty((inp.n_keys, n_components))
    key_active = np.zeros(inp.n_keys)
    # the rows of the GPUs read below, gathered once (a strided column gather costs 4× more)
    held_amounts = inp.gpu_amounts.take(inp.hold_gpu, axis=0)
    shared_amounts = inp.gpu_amounts.take(shared_gpus, axis=0)
    # the shared nodes' totals, every component in one bincount (slot: node, component)
    node_slot = shared_node[:, None] * n_components + np.arange(n_components)
    node_amounts = _sum_by(
        node_slot.ravel(), shared_amounts.ravel(), (inp.n_nodes + 1) * n_components
    ).reshape(inp.n_nodes + 1, n_components)
    node_amounts = np.ascontiguousarray(node_amounts.T)  # a row per component
    del node_slot, shared_amounts
    for c in range(n_components):
        np.multiply(held_amounts[:, c], hold_share, out=given_held)
        np.multiply(node_amounts[c].take(share_node), share_weight, out=given_shared)
        to_keys = _sum_by(direct_key, given, inp.n_keys + 1)[: inp.n_keys]
        pods_c = _sum_by(multi_slot, given.take(multi), len(multi_pods))
        entries_c = pods_c.take(multi_owner)
        entries_c *= multi_weight
        to_keys += _sum_by(multi_key, entries_c, inp.n_keys)
        key_amounts[:, c] = to_keys
        if c == GPU_SECONDS:
            given *= direct_active
            entries_c *= multi_active
            key_active = _sum_by(direct_key, given, inp.n_keys + 1)[: inp.n_keys]
            key_active += _sum_by(multi_key, entries_c, inp.n_keys)
    del given, given_held, given_shared, held_amounts, node_amounts

    # rule 5: the rest is idle
    remainder = 1.0 - _sum_by(inp.hold_gpu, passed, n_gpus)
    np.clip(remainder, 0.0, 1.0, out=remainder)
    remainder[shared_gpus] = 0.0
    idle_gpus = np.flatnonzero(remainder > 0)
    idle_rows = inp.gpu_amounts.take(idle_gpus, axis=0)
    idle_rows *= remainder.take(idle_gpus)[:, None]
    # every component in one bincount: slot (group, component) of the flattened rows
    idle_slot = inp.gpu_group.take(idle_gpus)[:, None] * n_components + np.arange(n_components)
    idle = _sum_by(idle_slot.ravel(), idle_rows.ravel(), inp.n_groups * n_components)
    gpu_shared_node = np.full(n_gpus, -1, dtype=np.int64)
    gpu_shared_node[shared_gpus] = shared_node
    return Attribution(
        key_amounts=key_amounts,
        key_active_seconds=key_active,
        idle_amounts=idle.reshape(inp.n_groups, n_components),
        gpu_remainder=remainder,
        hold_gpu=inp.hold_gpu,
        hold_pod=inp.hold_pod,
        hold_share=hold_share,
        gpu_shared_node=gpu_shared_node,
        share_pod=share_pod,
        share_node=share_node,
        share_weight=share_weight,
        entry_ptr=inp.entry_ptr,
        entry_key=inp.entry_key,
        entry_tokens=inp.entry_tokens,
        pod_tokens=pod_tokens,
    )

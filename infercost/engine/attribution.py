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


@attrs.frozen
class _Rows:
    """Where assignments go, one row per destination: ``slot`` (a key, offset by ``n_keys + 1``
    when the row is active), the ``source`` whose amounts it takes (a GPU or a node) and the
    ``weight`` it takes of them."""

    slot: IntArray
    source: IntArray
    weight: FloatArray


def _entry_rows(
    inp: AttributionInput,
    pod_tokens: FloatArray,
    *,
    pods: IntArray,
    weights: FloatArray,
    sources: IntArray,
    pod_entries: IntArray,
) -> _Rows:
    """The assignments of pods with several entries, one row per (assignment, entry): rule 3,
    an entry's token share of its pod, or an even split when the pod served nothing."""
    ends = np.cumsum(pod_entries)
    n_rows = int(ends[-1]) if len(ends) else 0
    # the assignment of each row: +1 at each assignment's first row
    owner = np.cumsum(np.bincount(ends[:-1], minlength=n_rows)[:n_rows])
    entry = inp.entry_ptr.take(pods)
    entry -= ends - pod_entries
    entry = entry.take(owner)
    entry += np.arange(n_rows)
    tokens = inp.entry_tokens.take(entry)
    totals = pod_tokens.take(pods)
    silent = totals <= 0
    per_token = weights / np.where(silent, pod_entries, totals)
    weight = per_token.take(owner)
    weight *= np.where(silent.take(owner), 1.0, tokens)
    active = tokens > 0
    active &= inp.pod_inference.take(pods).take(owner)
    slot = inp.entry_key.take(entry)
    slot += active * (inp.n_keys + 1)
    return _Rows(slot=slot, source=sources.take(owner), weight=weight)


def attribute(inp: AttributionInput) -> Attribution:
    """Cost goes GPU → pods → entries: a held GPU to its holders, a shared node's GPUs (summed
    first) to its pods by tokens, a pod's receipts to its entries.

    Everything about *where* cost goes is worked out once, as index arrays: an assignment (a
    holding, or a pod's token share of its node) whose pod has one entry is one row straight
    to its key; an assignment to a pod with several entries becomes one row per entry. Only
    then are the amounts moved, one component at a time on 1-D vectors (a gather of the
    source's amount, a multiply by the row's weight, a scatter-add to the key). A row's slot
    also says whether it is active (the entry served tokens and the pod serves inference): the
    key space is doubled, so active GPU-seconds come out of the same scatter as all
    GPU-seconds instead of another pass.

    Node-indexed arrays have one spare slot at the end, so that node −1 (a pool GPU, or a pod
    without a node, read through numpy's negative indexing) lands in a slot of its own.
    """
    n_gpus = len(inp.gpu_node)
    n_pods = len(inp.pod_node)
    n_keys = inp.n_keys
    n_components = inp.gpu_amounts.shape[1]
    ptr = inp.entry_ptr
    counts = np.diff(ptr)
    # the pod of each entry: +1 at each pod's first entry (bincount: pods may have none)
    n_entries = len(inp.entry_key)
    entry_pod = np.cumsum(np.bincount(ptr[1:-1], minlength=n_entries + 1)[:n_entries])
    pod_tokens = _sum_by(entry_pod, inp.entry_tokens, n_pods)
    del entry_pod
    serving = pod_tokens > 0
    serving &= inp.pod_inference

    # rule 1: holders, at most the whole GPU in total
    held = _sum_by(inp.hold_gpu, inp.hold_share, n_gpus)
    overheld = bool(n_gpus) and float(held.max()) > 1.0
    if overheld:
        hold_share = inp.hold_share / np.maximum(held, 1.0).take(inp.hold_gpu)
    else:
        hold_share = inp.hold_share
    positive = inp.hold_share > 0
    holding = inp.hold_gpu if positive.all() else inp.hold_gpu[positive]
    # nodes whose pods do not share by tokens: those with holders, and "node −1"
    closed = np.zeros(inp.n_nodes + 1, dtype=bool)
    closed[inp.gpu_node.take(holding)] = True
    closed[inp.n_nodes] = True
    del positive, holding

    # rule 2: GPUs of nodes without holders, by the token share of the node's inference pods
    sharing = serving & ~closed.take(inp.pod_node, mode="wrap")
    share_pod = np.flatnonzero(sharing)
    share_node = inp.pod_node.take(share_pod)
    share_tokens = pod_tokens.take(share_pod)
    node_tokens = _sum_by(share_node, share_tokens, inp.n_nodes + 1)
    share_weight = share_tokens / node_tokens.take(share_node)
    shared = node_tokens.take(inp.gpu_node, mode="wrap") > 0
    shared_gpus = np.flatnonzero(shared)
    shared_node = inp.gpu_node.take(shared_gpus)
    del sharing, share_tokens, node_tokens, closed

    # Rows. A pod with one entry has its key as its slot, active ones in the upper half; the
    # others' slot is n_keys, which nothing reads: their rows come from _entry_rows.
    stride = n_keys + 1
    single = counts == 1
    if n_entries:
        pod_slot = inp.entry_key.take(ptr[:-1], mode="clip")
        pod_slot += serving * stride
        pod_slot = np.where(single, pod_slot, n_keys)
    else:
        pod_slot = np.full(n_pods, n_keys, dtype=np.int64)
    del single, serving
    hold_entries = counts.take(inp.hold_pod)
    hold_slot = pod_slot.take(inp.hold_pod)
    share_slot = pod_slot.take(share_pod)
    share_entries = counts.take(share_pod)
    multi = np.flatnonzero(hold_entries > 1)
    hold_multi = _entry_rows(
        inp,
        pod_tokens,
        pods=inp.hold_pod.take(multi),
        weights=hold_share.take(multi),
        sources=inp.hold_gpu.take(multi),
        pod_entries=hold_entries.take(multi),
    )
    multi = np.flatnonzero(share_entries > 1)
    share_multi = _entry_rows(
        inp,
        pod_tokens,
        pods=share_pod.take(multi),
        weights=share_weight.take(multi),
        sources=share_node.take(multi),
        pod_entries=share_entries.take(multi),
    )
    del pod_slot, share_entries, multi

    # rule 5: the rest is idle (a holder without entries passes nothing on)
    if overheld or not (hold_entries > 0).all():
        passed = hold_share * (hold_entries > 0)
        given = _sum_by(inp.hold_gpu, passed, n_gpus)
        del passed
    else:
        given = held
    remainder = 1.0 - given
    np.clip(remainder, 0.0, 1.0, out=remainder)
    remainder[shared_gpus] = 0.0
    idle_gpus = np.flatnonzero(remainder > 0)
    idle_weight = remainder.take(idle_gpus)
    idle_group = inp.gpu_group.take(idle_gpus)
    del held, given, hold_entries

    # the amounts, a row per component, moved along the rows
    amounts = np.ascontiguousarray(inp.gpu_amounts.T)
    slots = np.zeros((n_components, 2 * n_keys + 1))
    node_amounts = np.zeros(inp.n_nodes + 1)
    idle = np.zeros((n_components, inp.n_groups))
    for c in range(n_components):
        gpu_c = amounts[c]
        to_slot = slots[c]
        given_c = gpu_c.take(inp.hold_gpu)
        given_c *= hold_share
        np.add.at(to_slot, hold_slot, given_c)
        given_c = gpu_c.take(hold_multi.source)
        given_c *= hold_multi.weight
        np.add.at(to_slot, hold_multi.slot, given_c)
        node_amounts[:] = 0.0
        np.add.at(node_amounts, shared_node, gpu_c.take(shared_gpus))
        given_c = node_amounts.take(share_node)
        given_c *= share_weight
        np.add.at(to_slot, share_slot, given_c)
        given_c = node_amounts.take(share_multi.source)
        given_c *= share_multi.weight
        np.add.at(to_slot, share_multi.slot, given_c)
        given_c = gpu_c.take(idle_gpus)
        given_c *= idle_weight
        np.add.at(idle[c], idle_group, given_c)
    del amounts, given_c, node_amounts

    key_amounts = np.empty((n_keys, n_components))
    np.add(slots[:, :n_keys], slots[:, stride:], out=key_amounts.T)
    gpu_shared_node = np.where(shared, inp.gpu_node, -1)
    return Attribution(
        key_amounts=key_amounts,
        key_active_seconds=slots[GPU_SECONDS, stride:].copy(),
        idle_amounts=np.ascontiguousarray(idle.T),
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

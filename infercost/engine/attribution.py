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

# (attribute() moves the first four as two complex pairs: keep each pair adjacent)
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
    # Where each GPU's cost went, kept to answer :meth:`rows_of` and :attr:`gpu_remainder`
    # (the ledger reads them only for GPUs whose energy comes later, so what the step itself
    # does not need is worked out on first use): holdings (rule 1, shares scaled), the pods
    # that may share their node's GPUs by tokens (rule 2), and what splits a pod over its
    # entries (rule 3).
    hold_gpu: IntArray
    hold_pod: IntArray
    hold_share: FloatArray
    gpu_node: IntArray
    pod_node: IntArray
    open_inference: BoolArray
    """Per pod: an inference pod on a node without holders (it shares if it served tokens)."""
    node_tokens: FloatArray
    """Per node, the tokens of its sharing pods (> 0: rule 2 splits its GPUs); the spare last
    slot, read for node −1, stays 0."""
    entry_ptr: IntArray
    entry_key: IntArray
    entry_tokens: FloatArray
    passed_share: FloatArray
    """Per holding, the share of its GPU it passes on (0 for a pod without entries)."""
    remainder: FloatArray | None
    """Per GPU, the fraction that is idle, when the step needed it; else worked out from the
    holdings on first use (:attr:`gpu_remainder`): each GPU held at most once."""
    _index: dict[str, tuple[IntArray, IntArray]] = attrs.field(factory=dict, eq=False, repr=False)
    _cache: dict[str, FloatArray] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def pod_tokens(self) -> FloatArray:
        """Per pod, the tokens of its entries."""
        tokens = self._cache.get("pod_tokens")
        if tokens is None:
            pods = _entry_pods(self.entry_ptr, len(self.entry_key))
            tokens = self._cache["pod_tokens"] = _sum_by(
                pods, self.entry_tokens, len(self.pod_node)
            )
        return tokens

    @property
    def gpu_remainder(self) -> FloatArray:
        """Per GPU, the fraction that is idle."""
        if self.remainder is not None:
            return self.remainder
        remainder = self._cache.get("remainder")
        if remainder is None:
            remainder = np.ones(len(self.gpu_node))
            remainder[self.hold_gpu] = 1.0 - self.passed_share
            remainder[self.node_tokens.take(self.gpu_node, mode="wrap") > 0] = 0.0
            self._cache["remainder"] = remainder
        return remainder

    def rows_of(self, gpu: int) -> list[tuple[int, float]]:
        """(key, weight) of one GPU's non-idle destinations."""
        node = int(self.gpu_node[gpu])
        node_total = float(self.node_tokens[node])
        pod_tokens = self.pod_tokens
        if node_total > 0:
            pods = self._owned("share", node)
            shares = pod_tokens[pods] / node_total
        else:
            picked = self._owned("hold", gpu)
            pods, shares = self.hold_pod[picked], self.hold_share[picked]
        rows: list[tuple[int, float]] = []
        for pod, share in zip(pods.tolist(), shares.tolist(), strict=True):
            start, end = int(self.entry_ptr[pod]), int(self.entry_ptr[pod + 1])
            total = float(pod_tokens[pod])
            keys = self.entry_key[start:end].tolist()
            if not keys:
                continue  # a pod without entries passes nothing on
            if total > 0:
                weights = (self.entry_tokens[start:end] / total * share).tolist()
            else:
                weights = [share / len(keys)] * len(keys)
            rows.extend(zip(keys, weights, strict=True))
        return rows

    def _owned(self, name: str, owner: int) -> IntArray:
        """The sharing pods of node ``owner`` ("share"), or the holdings of GPU ``owner``
        ("hold"). The ledger asks for every deferred GPU: sort once, then binary search."""
        index = self._index.get(name)
        if index is None:
            if name == "share":
                items = np.flatnonzero(self.open_inference & (self.pod_tokens > 0))
                owners = self.pod_node.take(items)
            else:
                items, owners = np.arange(len(self.hold_gpu)), self.hold_gpu
            order = np.argsort(owners, kind="stable")
            index = self._index[name] = (owners.take(order), items.take(order))
        sorted_owners, sorted_items = index
        lo, hi = np.searchsorted(sorted_owners, [owner, owner + 1])
        return sorted_items[lo:hi]


def _sum_by(index: IntArray, weights: FloatArray, size: int) -> FloatArray:
    """``weights`` summed per ``index`` into ``size`` slots (bincount, but float when empty)."""
    return np.bincount(index, weights, minlength=size).astype(np.float64, copy=False)


def _entry_pods(entry_ptr: IntArray, n_entries: int) -> IntArray:
    """The pod of each entry: +1 at each pod's first entry (bincount: pods may have none)."""
    pods = np.bincount(entry_ptr[1:-1], minlength=n_entries + 1)[:n_entries]
    return np.cumsum(pods, out=pods)


@attrs.frozen
class _Rows:
    """Moves ``weight`` × the amount in ``source`` to ``slot``, one row at a time."""

    slot: IntArray
    source: IntArray
    weight: FloatArray


def _entry_rows(inp: AttributionInput, pods: IntArray, sources: IntArray) -> _Rows:
    """Rule 3 for pods with several entries: what a pod received (at ``sources``) goes to
    each entry by its token share of the pod, or evenly when the pod served nothing; an entry
    that served tokens in an inference pod goes to its key's active slot."""
    entries = inp.entry_ptr[1:].take(pods)
    entries -= inp.entry_ptr.take(pods)
    ends = np.cumsum(entries)
    n_rows = int(ends[-1]) if len(ends) else 0
    # the pod of each row: +1 at each pod's first row
    owner = np.cumsum(np.bincount(ends[:-1], minlength=n_rows)[:n_rows])
    entry = inp.entry_ptr.take(pods)
    entry -= ends - entries
    entry = entry.take(owner)
    entry += np.arange(n_rows)
    tokens = inp.entry_tokens.take(entry)
    totals = _sum_by(owner, tokens, len(pods))
    silent = totals <= 0
    weight = np.where(silent.take(owner), 1.0, tokens)
    weight /= np.where(silent, entries, totals).take(owner)
    active = tokens > 0
    active &= inp.pod_inference.take(pods).take(owner)
    slot = inp.entry_key.take(entry)
    slot += active * (inp.n_keys + 1)
    return _Rows(slot=slot, source=sources.take(owner), weight=weight)


def attribute(inp: AttributionInput) -> Attribution:
    """Cost goes GPU → pods → entries: a held GPU to its holders, a shared node's GPUs (summed
    first) to its pods by tokens, a pod's receipts to its entries.

    Where cost goes is worked out once, as index arrays; only then are the amounts moved by a
    few scatter-adds into one vector per component (two components share a complex vector),
    laid out as

        [keys | discard | active keys | idle groups | nodes | pods with several entries]

    First every GPU goes whole to one slot, straight from its column of ``gpu_amounts`` (no
    gather): its holder's key when the holder has one entry, its node when it is shared by
    tokens, its idle group when nobody holds it, or a pod with several entries. What does not
    fit that (a second holder of a GPU, the idle part of a partly held GPU) is a few extra
    rows. Then the nodes and the pods with several entries pass what they received to their
    entries' keys. A key has two slots, so that its active GPU-seconds (its entry served
    tokens in an inference pod) come out of the same scatter as all its GPU-seconds.

    Node-indexed arrays have one spare slot at the end, so that node −1 (a pool GPU, or a pod
    without a node, read through numpy's negative indexing) lands in a slot of its own.
    """
    n_gpus = len(inp.gpu_node)
    n_pods = len(inp.pod_node)
    n_keys = inp.n_keys
    n_components = inp.gpu_amounts.shape[1]
    ptr = inp.entry_ptr
    n_entries = len(inp.entry_key)

    # the slots of the vector the amounts are moved into
    stride = n_keys + 1  # a key's active slot is its slot + stride
    group_base = 2 * n_keys + 1
    node_base = group_base + inp.n_groups
    pod_base = node_base + inp.n_nodes + 1

    # (first: it reads entry_ptr front to back, which the holders then gather from)
    entry_pod = _entry_pods(ptr, n_entries)

    # rule 1: holders, at most the whole GPU in total. Usually DCGM names one pod per GPU,
    # in GPU order: then nothing needs summing per GPU.
    positive = inp.hold_share > 0
    all_positive = bool(positive.all())
    once = all_positive and bool((inp.hold_gpu[1:] > inp.hold_gpu[:-1]).all())
    first_entry = ptr.take(inp.hold_pod)
    hold_entries = ptr[1:].take(inp.hold_pod)
    hold_entries -= first_entry
    passes = hold_entries > 0  # a holder without entries passes nothing on (rule 5)
    all_pass = bool(passes.all())
    remainder: FloatArray | None = None  # worked out only when needed (see below)
    if once:
        hold_share = np.minimum(inp.hold_share, 1.0)
        passed_share = hold_share if all_pass else hold_share * passes
    else:
        held = _sum_by(inp.hold_gpu, inp.hold_share, n_gpus)
        hold_share = inp.hold_share / np.maximum(held, 1.0).take(inp.hold_gpu)
        passed_share = hold_share * passes
        remainder = 1.0 - _sum_by(inp.hold_gpu, passed_share, n_gpus)
        np.clip(remainder, 0.0, 1.0, out=remainder)
        del held
    # nodes whose pods do not share by tokens: those with holders, and "node −1"
    closed = np.zeros(inp.n_nodes + 1, dtype=bool)
    closed[inp.gpu_node.take(inp.hold_gpu if all_positive else inp.hold_gpu[positive])] = True
    closed[inp.n_nodes] = True

    # a holding's slot: its pod's key (active when that entry served tokens in an inference
    # pod), a pod with several entries, or nowhere (a pod without entries)
    served = inp.entry_tokens > 0
    if n_entries:
        hold_slot = inp.entry_key.take(first_entry, mode="clip")
        active = served.take(first_entry, mode="clip")
        active &= inp.pod_inference.take(inp.hold_pod)
        hold_slot += active * stride
        del active
    else:
        hold_slot = np.full(len(inp.hold_pod), n_keys, dtype=np.int64)
    multi = np.flatnonzero(hold_entries > 1)
    is_multi = np.zeros(n_pods, dtype=bool)
    is_multi[inp.hold_pod.take(multi)] = True
    multi_pods = np.flatnonzero(is_multi)
    local = np.empty(n_pods, dtype=np.int64)  # read only at multi_pods
    local[multi_pods] = np.arange(pod_base, pod_base + len(multi_pods))
    hold_slot[multi] = local.take(inp.hold_pod.take(multi))
    if not all_pass:
        hold_slot[~passes] = n_keys
    del is_multi, local, multi, hold_entries, passes

    # rule 2: GPUs of nodes without holders go to the entries of the node's inference pods
    # that served tokens, by their share of the node's tokens (pod share × entry share)
    open_inference = ~closed
    open_inference = open_inference.take(inp.pod_node, mode="wrap")
    open_inference &= inp.pod_inference
    on = open_inference.take(entry_pod)
    on &= served
    node_entries = np.flatnonzero(on)
    entry_node = inp.pod_node.take(entry_pod.take(node_entries))
    entry_tokens = inp.entry_tokens.take(node_entries)
    node_tokens = _sum_by(entry_node, entry_tokens, inp.n_nodes + 1)
    entry_tokens /= node_tokens.take(entry_node)
    entry_node += node_base
    node_slot = inp.entry_key.take(node_entries)
    node_slot += stride
    node_rows = _Rows(slot=node_slot, source=entry_node, weight=entry_tokens)
    shared_nodes = node_tokens > 0
    shared_gpus = np.flatnonzero(shared_nodes.take(inp.gpu_node, mode="wrap"))
    shared_node = inp.gpu_node.take(shared_gpus)
    if remainder is not None:
        remainder[shared_gpus] = 0.0
    pod_rows = _entry_rows(inp, multi_pods, np.arange(pod_base, pod_base + len(multi_pods)))
    del entry_pod, served, closed, on, node_entries, entry_node, entry_tokens, node_slot

    # Each GPU's first slot: its idle group, its node, or its (first) holder's slot
    gpu_slot = inp.gpu_group + group_base
    shared_node += node_base
    gpu_slot[shared_gpus] = shared_node
    del shared_node
    if once:
        first_h = None
        first = inp.hold_gpu
        extra = np.empty(0, dtype=np.int64)
    else:
        candidates = np.flatnonzero(positive)
        winner = np.full(n_gpus, -1, dtype=np.int64)
        winner[inp.hold_gpu.take(candidates)] = candidates
        primary = winner.take(inp.hold_gpu) == np.arange(len(inp.hold_gpu))
        primary &= positive
        first_h = np.flatnonzero(primary)
        extra = np.flatnonzero(~primary)
        first = inp.hold_gpu.take(first_h)
        del candidates, winner, primary
    first_slot = hold_slot if first_h is None else hold_slot.take(first_h)
    first_share = hold_share if first_h is None else hold_share.take(first_h)
    gpu_slot[first] = first_slot
    # a GPU nobody holds goes whole (to its group or node); a held one by its first share
    gpu_weight = None
    if not bool((first_share == 1.0).all()):
        gpu_weight = np.ones(n_gpus)
        gpu_weight[first] = first_share
    # the idle part of a held GPU (none when every holder takes its GPU whole and passes it
    # on), and the holdings that are not a GPU's first
    if once and all_pass and gpu_weight is None:
        part_idle = np.empty(0, dtype=np.int64)
    else:
        if remainder is None:
            remainder = np.ones(n_gpus)
            remainder[inp.hold_gpu] = 1.0 - passed_share
            remainder[shared_gpus] = 0.0
        part_idle = first.take(np.flatnonzero(remainder.take(first) > 0))
    gpu_rows = _Rows(
        slot=np.concatenate((hold_slot.take(extra), inp.gpu_group.take(part_idle) + group_base)),
        source=np.concatenate((inp.hold_gpu.take(extra), part_idle)),
        weight=np.concatenate(
            (
                hold_share.take(extra),
                np.zeros(0) if remainder is None else remainder.take(part_idle),
            )
        ),
    )
    del hold_slot, positive, extra, first, first_h, first_slot, first_share, part_idle
    del shared_gpus

    # Two components travel together as one complex number: a scatter-add of complex128
    # costs less than two of float64. Amortization + i·electricity and energy + i·estimated
    # energy are adjacent columns of gpu_amounts; GPU-seconds travel alone.
    amounts = np.ascontiguousarray(inp.gpu_amounts, dtype=np.float64)
    pairs = amounts[:, :GPU_SECONDS].view(np.complex128)
    size = pod_base + len(multi_pods)
    moved_pairs = np.zeros((2, size), dtype=np.complex128)
    moved_seconds = np.zeros(size)
    # what nodes and pods pass on, with the weights as complex numbers too (a multiply that
    # casts its operand costs more than the cast done once)
    passes_on = [(rows, rows.weight.astype(np.complex128)) for rows in (node_rows, pod_rows)]
    for raw, into in (
        (pairs[:, 0], moved_pairs[0]),
        (pairs[:, 1], moved_pairs[1]),
        (amounts[:, GPU_SECONDS], moved_seconds),
    ):
        np.add.at(into, gpu_slot, raw if gpu_weight is None else raw * gpu_weight)
        if len(gpu_rows.slot):
            rows_c = raw[gpu_rows.source]
            rows_c *= gpu_rows.weight
            np.add.at(into, gpu_rows.slot, rows_c)
        for rows, complex_weight in passes_on:
            rows_c = into.take(rows.source)
            rows_c *= complex_weight if into.dtype == np.complex128 else rows.weight
            np.add.at(into, rows.slot, rows_c)
    del gpu_slot, gpu_weight

    by_component = (
        moved_pairs[0].real,
        moved_pairs[0].imag,
        moved_pairs[1].real,
        moved_pairs[1].imag,
        moved_seconds,
    )
    key_amounts = np.empty((n_components, n_keys))
    idle_amounts = np.empty((inp.n_groups, n_components))
    for c, moved in enumerate(by_component):
        np.add(moved[:n_keys], moved[stride:group_base], out=key_amounts[c])
        idle_amounts[:, c] = moved[group_base:node_base]
    return Attribution(
        key_amounts=key_amounts.T,
        key_active_seconds=moved_seconds[stride:group_base].copy(),
        idle_amounts=idle_amounts,
        hold_gpu=inp.hold_gpu,
        hold_pod=inp.hold_pod,
        hold_share=hold_share,
        gpu_node=inp.gpu_node,
        pod_node=inp.pod_node,
        open_inference=open_inference,
        node_tokens=node_tokens,
        entry_ptr=inp.entry_ptr,
        entry_key=inp.entry_key,
        entry_tokens=inp.entry_tokens,
        passed_share=passed_share,
        remainder=remainder,
    )

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
  ``entry_tokens[m]`` input + output tokens in the interval. A pod that served nothing has one
  entry with 0 tokens (its ``(no-traffic)`` or ``(non-inference)`` key).

The rules, in order: a held GPU goes to its holders by share (shares over 1 in total are scaled
down); a GPU on a node where no pod holds GPUs goes to that node's inference pods by their token
share (rule 2); inside a pod, cost goes to its entries by token share (rule 3), or to its one
fallback entry (rules 3–4); whatever is left is idle (rule 5), returned per idle group so the
ledger can spread it by its day weights. The result also carries the per-GPU rows, which the
ledger keeps for GPUs whose energy is deferred.
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
    row_gpu: IntArray
    row_key: IntArray
    row_weight: FloatArray

    def rows_of(self, gpu: int) -> list[tuple[int, float]]:
        """(key, weight) of one GPU's non-idle destinations."""
        mask = self.row_gpu == gpu
        return list(zip(self.row_key[mask].tolist(), self.row_weight[mask].tolist(), strict=True))


def _expand(counts: IntArray) -> tuple[IntArray, IntArray]:
    """For CSR expansion: (owner index per expanded row, offset of the row inside its owner)."""
    owners = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    offsets = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    return owners, offsets


def attribute(inp: AttributionInput) -> Attribution:
    n_gpus = len(inp.gpu_node)
    n_pods = len(inp.pod_node)
    counts = np.diff(inp.entry_ptr)
    entry_pod = np.repeat(np.arange(n_pods), counts)
    pod_tokens = np.bincount(entry_pod, inp.entry_tokens, minlength=n_pods)

    # rule 3: entry weights inside a pod
    served = pod_tokens[entry_pod] > 0
    safe_tokens = np.where(served, pod_tokens[entry_pod], 1.0)
    entry_weight = np.where(served, inp.entry_tokens / safe_tokens, 1.0 / counts[entry_pod])
    entry_active = (inp.entry_tokens > 0) & inp.pod_inference[entry_pod]

    # rule 1: holders, at most the whole GPU in total
    held = np.bincount(inp.hold_gpu, inp.hold_share, minlength=n_gpus)
    scale = np.where(held > 1.0, 1.0 / np.maximum(held, 1e-300), 1.0)
    hold_share = inp.hold_share * scale[inp.hold_gpu]
    node_has_holders = np.zeros(inp.n_nodes + 1, dtype=bool)
    holder_nodes = inp.gpu_node[inp.hold_gpu[inp.hold_share > 0]]
    node_has_holders[holder_nodes[holder_nodes >= 0]] = True

    # rule 2: GPUs of nodes without holders, by the token share of the node's inference pods
    sharing = inp.pod_inference & (pod_tokens > 0) & (inp.pod_node >= 0)
    candidates = np.flatnonzero(sharing)
    order = candidates[np.argsort(inp.pod_node[candidates], kind="stable")]
    node_count = np.bincount(inp.pod_node[order], minlength=inp.n_nodes)
    node_ptr = np.concatenate(([0], np.cumsum(node_count)))
    node_tokens = np.bincount(inp.pod_node[order], pod_tokens[order], minlength=inp.n_nodes)
    on_node = inp.gpu_node >= 0
    node_of_gpu = np.where(on_node, inp.gpu_node, 0)
    shared = on_node & ~node_has_holders[node_of_gpu] & (node_tokens[node_of_gpu] > 0)
    shared_gpus = np.flatnonzero(shared)
    owners, offsets = _expand(node_count[inp.gpu_node[shared_gpus]])
    s_gpu = shared_gpus[owners]
    s_node = inp.gpu_node[s_gpu]
    s_pod = order[node_ptr[s_node] + offsets]
    s_share = pod_tokens[s_pod] / node_tokens[s_node]

    a_gpu = np.concatenate((inp.hold_gpu, s_gpu))
    a_pod = np.concatenate((inp.hold_pod, s_pod))
    a_share = np.concatenate((hold_share, s_share))

    owners, offsets = _expand(counts[a_pod])
    r_gpu = a_gpu[owners]
    r_entry = inp.entry_ptr[a_pod[owners]] + offsets
    r_weight = a_share[owners] * entry_weight[r_entry]
    r_key = inp.entry_key[r_entry]

    amounts = inp.gpu_amounts
    n_components = amounts.shape[1]
    key_amounts = np.empty((inp.n_keys, n_components))
    for c in range(n_components):
        key_amounts[:, c] = np.bincount(r_key, r_weight * amounts[r_gpu, c], minlength=inp.n_keys)
    active = r_weight * amounts[r_gpu, GPU_SECONDS] * entry_active[r_entry]
    key_active = np.bincount(r_key, active, minlength=inp.n_keys).astype(np.float64)

    assigned = np.bincount(r_gpu, r_weight, minlength=n_gpus)
    remainder = np.clip(1.0 - assigned, 0.0, 1.0)
    idle = np.empty((inp.n_groups, n_components))
    for c in range(n_components):
        idle[:, c] = np.bincount(inp.gpu_group, remainder * amounts[:, c], minlength=inp.n_groups)
    return Attribution(
        key_amounts=key_amounts,
        key_active_seconds=key_active,
        idle_amounts=idle,
        gpu_remainder=remainder,
        row_gpu=r_gpu,
        row_key=r_key,
        row_weight=r_weight,
    )

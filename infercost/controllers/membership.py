"""Which CostProfile owns which node (SPEC §2.1 ``Overlap``, §4 membership).

A node whose labels match the ``nodeSelector`` of several CostProfiles belongs to exactly one of
them: the one with the oldest ``creationTimestamp``, ties broken by namespace, then name. A
profile that matches nodes but owns none of them is in ``Overlap``; one that owns some of its
matched nodes simply loses the others (its Ready message names them).

Only honoured profiles take part: those in ``--profile-namespaces`` (all namespaces when that
is empty) with a valid spec. A profile claims with its last valid ``nodeSelector`` (SPEC §5: an
invalid edit keeps the last valid spec), so a typo does not hand its nodes to another profile;
one that was never valid claims nothing, so it cannot take nodes away from a valid one.

Pure: plain values in, an immutable :class:`Membership` out. The sampler computes it once per
sample, so the data of a sample and the ownership it is booked under always agree.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping

import attrs

__all__ = [
    "Membership",
    "NodeFacts",
    "ProfileClaim",
    "ProfileMembership",
    "namespace_allowed",
    "resolve_membership",
    "selector_matches",
]


def namespace_allowed(namespace: str, allowed: Collection[str]) -> bool:
    """Whether CostProfiles of ``namespace`` are honoured (``allowed`` empty: all are)."""
    return not allowed or namespace in allowed


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A CostProfile ``nodeSelector``: every key present with exactly that value; empty
    matches every node."""
    return all(labels.get(key) == value for key, value in selector.items())


@attrs.frozen
class ProfileClaim:
    """What membership needs to know about one honoured, valid CostProfile."""

    namespace: str
    name: str
    node_selector: Mapping[str, str]
    creation_timestamp: float | None
    """Epoch seconds; a profile without one sorts after every dated profile."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def seniority(self) -> tuple[float, str, str]:
        """Smaller is older: creationTimestamp, then namespace, then name."""
        ts = self.creation_timestamp if self.creation_timestamp is not None else math.inf
        return (ts, self.namespace, self.name)


@attrs.frozen
class NodeFacts:
    """A node as membership sees it."""

    name: str
    labels: Mapping[str, str]


@attrs.frozen
class ProfileMembership:
    """One profile's view: what its selector matches and what it owns."""

    key: str
    node_selector: Mapping[str, str]
    matched: tuple[str, ...]
    """Nodes the selector matches, sorted."""
    owned: tuple[str, ...]
    """Matched nodes that belong to this profile, sorted."""
    lost: Mapping[str, str]
    """Matched nodes owned by an older profile: node → that profile's ``namespace/name``."""

    @property
    def overlap(self) -> bool:
        """Matches nodes, but every one of them belongs to an older profile."""
        return bool(self.matched) and not self.owned


@attrs.frozen
class Membership:
    """Node ownership for one instant."""

    owners: Mapping[str, str]
    """node → owning profile ``namespace/name`` (nodes no profile matches are absent)."""
    profiles: Mapping[str, ProfileMembership]
    """Every honoured, valid profile by ``namespace/name``."""

    def owned_nodes(self) -> tuple[str, ...]:
        """Every node some profile owns, sorted."""
        return tuple(sorted(self.owners))

    def profile(self, key: str) -> ProfileMembership | None:
        return self.profiles.get(key)


def resolve_membership(claims: Iterable[ProfileClaim], nodes: Iterable[NodeFacts]) -> Membership:
    """Assign every node to the oldest profile whose selector matches it."""
    # each profile's key made once: every node it owns and matches names it by that string
    ordered = [(c.key, c) for c in sorted(claims, key=ProfileClaim.seniority)]
    node_list = sorted(nodes, key=lambda n: n.name)
    owners: dict[str, str] = {}
    matched: dict[str, list[str]] = {key: [] for key, _ in ordered}
    for node in node_list:
        for key, claim in ordered:
            if selector_matches(claim.node_selector, node.labels):
                matched[key].append(node.name)
                owners.setdefault(node.name, key)
    profiles = {}
    for key, claim in ordered:
        names = matched[key]
        profiles[key] = ProfileMembership(
            key=key,
            node_selector=dict(claim.node_selector),
            matched=tuple(names),
            owned=tuple(n for n in names if owners[n] == key),
            lost={n: owners[n] for n in names if owners[n] != key},
        )
    return Membership(owners, profiles)

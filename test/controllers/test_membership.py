"""Node ownership between CostProfiles: the oldest matching profile owns a node."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from infercost.controllers.membership import (
    NodeFacts,
    ProfileClaim,
    namespace_allowed,
    resolve_membership,
    selector_matches,
)


def claim(key: str, selector: dict[str, str], ts: float | None) -> ProfileClaim:
    namespace, _, name = key.partition("/")
    return ProfileClaim(namespace, name, selector, ts)


NODES = [
    NodeFacts("gpu-1", {"pool": "h100", "zone": "a"}),
    NodeFacts("gpu-2", {"pool": "h100", "zone": "b"}),
    NodeFacts("gpu-3", {"pool": "a100", "zone": "b"}),
]


def test_selector_needs_every_key_and_empty_matches_all() -> None:
    assert selector_matches({}, {"a": "b"})
    assert selector_matches({"pool": "h100"}, {"pool": "h100", "zone": "a"})
    assert not selector_matches({"pool": "h100", "zone": "b"}, {"pool": "h100", "zone": "a"})
    assert not selector_matches({"pool": ""}, {})


def test_older_profile_owns_shared_nodes_and_younger_loses_them() -> None:
    m = resolve_membership(
        [
            claim("ml/everything", {}, 300.0),
            claim("ml/h100", {"pool": "h100"}, 100.0),
            claim("ml/zone-b", {"zone": "b"}, 200.0),
        ],
        NODES,
    )
    assert m.owners == {"gpu-1": "ml/h100", "gpu-2": "ml/h100", "gpu-3": "ml/zone-b"}
    h100, zone_b, everything = (m.profile(k) for k in ("ml/h100", "ml/zone-b", "ml/everything"))
    assert h100 is not None and zone_b is not None and everything is not None
    assert h100.owned == ("gpu-1", "gpu-2") and not h100.lost and not h100.overlap
    assert zone_b.matched == ("gpu-2", "gpu-3") and zone_b.owned == ("gpu-3",)
    assert zone_b.lost == {"gpu-2": "ml/h100"} and not zone_b.overlap
    assert everything.owned == () and everything.overlap
    assert everything.lost == {"gpu-1": "ml/h100", "gpu-2": "ml/h100", "gpu-3": "ml/zone-b"}
    assert m.owned_nodes() == ("gpu-1", "gpu-2", "gpu-3")


def test_ties_are_broken_by_namespace_then_name() -> None:
    same = 100.0
    m = resolve_membership(
        [claim("b/a", {}, same), claim("a/z", {}, same), claim("a/b", {}, same)], NODES[:1]
    )
    assert m.owners == {"gpu-1": "a/b"}
    assert m.profile("a/z").overlap and m.profile("b/a").overlap  # type: ignore[union-attr]


def test_a_profile_without_creation_time_is_youngest() -> None:
    m = resolve_membership([claim("a/a", {}, None), claim("z/z", {}, 5.0)], NODES[:1])
    assert m.owners == {"gpu-1": "z/z"}


def test_no_match_is_not_overlap() -> None:
    m = resolve_membership([claim("ml/v100", {"pool": "v100"}, 1.0)], NODES)
    member = m.profile("ml/v100")
    assert member is not None and member.matched == () and not member.overlap
    assert m.owners == {} and m.profile("ml/other") is None


def test_profile_namespaces() -> None:
    assert namespace_allowed("anything", ())
    assert namespace_allowed("ml", ("ml", "infra"))
    assert not namespace_allowed("team-x", ("ml",))


labels = st.fixed_dictionaries({"pool": st.sampled_from(["a", "b"]), "zone": st.sampled_from("xy")})
selectors = st.dictionaries(st.sampled_from(["pool", "zone"]), st.sampled_from(["a", "b", "x"]))


@given(
    nodes=st.lists(labels, min_size=0, max_size=6),
    profiles=st.lists(
        st.tuples(selectors, st.one_of(st.none(), st.integers(0, 3))), min_size=0, max_size=5
    ),
)
def test_every_matched_node_has_exactly_one_owner_the_oldest(
    nodes: list[dict[str, str]], profiles: list[tuple[dict[str, str], int | None]]
) -> None:
    facts = [NodeFacts(f"n{i}", lab) for i, lab in enumerate(nodes)]
    claims = [
        claim(f"ns{i % 2}/p{i}", sel, None if ts is None else float(ts))
        for i, (sel, ts) in enumerate(profiles)
    ]
    m = resolve_membership(claims, facts)
    for node in facts:
        matching = [c for c in claims if selector_matches(c.node_selector, node.labels)]
        if not matching:
            assert node.name not in m.owners
            continue
        assert m.owners[node.name] == min(matching, key=ProfileClaim.seniority).key
        owning = [k for k, p in m.profiles.items() if node.name in p.owned]
        assert owning == [m.owners[node.name]]
    for key, member in m.profiles.items():
        assert set(member.owned) | set(member.lost) == set(member.matched)
        assert all(m.owners[n] == key for n in member.owned)

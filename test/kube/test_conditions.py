from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infercost.kube.conditions import (
    ConditionError,
    find_condition,
    is_true,
    remove_condition,
    set_condition,
)

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_new_condition_gets_transition_time_and_generation() -> None:
    conds = set_condition(
        None,
        "Ready",
        status="True",
        reason="CostComputed",
        message="ok",
        observed_generation=3,
        now=T0,
    )
    assert conds == [
        {
            "type": "Ready",
            "status": "True",
            "observedGeneration": 3,
            "lastTransitionTime": "2026-11-27T08:00:00Z",
            "reason": "CostComputed",
            "message": "ok",
        }
    ]
    assert is_true(conds, "Ready")


def test_transition_time_changes_only_on_status_flip() -> None:
    conds = set_condition(
        None,
        "Ready",
        status="True",
        reason="CostComputed",
        message="a",
        observed_generation=1,
        now=T0,
    )
    same = set_condition(
        conds, "Ready", status="True", reason="Other", message="b", observed_generation=2, now=T1
    )
    assert same[0]["lastTransitionTime"] == "2026-11-27T08:00:00Z"
    assert same[0]["reason"] == "Other" and same[0]["observedGeneration"] == 2
    flipped = set_condition(
        same, "Ready", status="False", reason="Stale", message="c", observed_generation=2, now=T1
    )
    assert flipped[0]["lastTransitionTime"] == "2026-11-27T08:05:00Z"
    assert not is_true(flipped, "Ready")
    assert conds[0]["message"] == "a", "the input list is not modified"


def test_other_conditions_keep_their_order() -> None:
    conds = set_condition(
        None, "Ready", status="True", reason="A", message="", observed_generation=1, now=T0
    )
    conds = set_condition(
        conds,
        "DCGMReachable",
        status="Unknown",
        reason="DCGMPartial",
        message="node-2 has no readings",
        observed_generation=1,
        now=T0,
    )
    conds = set_condition(
        conds, "Ready", status="False", reason="Stale", message="", observed_generation=1, now=T1
    )
    assert [c["type"] for c in conds] == ["Ready", "DCGMReachable"]
    assert find_condition(conds, "DCGMReachable")["reason"] == "DCGMPartial"
    assert find_condition(conds, "Missing") is None
    assert [c["type"] for c in remove_condition(conds, "Ready")] == ["DCGMReachable"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"status": "Yes"}, "status 'Yes'"),
        ({"reason": ""}, "reason ''"),
        ({"reason": "has space"}, "reason 'has space'"),
        ({"reason": "1Starts"}, "reason '1Starts'"),
        ({"observed_generation": -1}, "observedGeneration"),
        ({"message": "x" * 40000}, "message longer"),
    ],
)
def test_invalid_fields_are_named(kwargs: dict, fragment: str) -> None:
    args = {"status": "True", "reason": "Fine", "message": "", "observed_generation": 1, "now": T0}
    args.update(kwargs)
    with pytest.raises(ConditionError, match=fragment):
        set_condition(None, "Ready", **args)


def test_invalid_type_and_naive_time() -> None:
    with pytest.raises(ConditionError, match="condition type"):
        set_condition(
            None,
            "not a type!",
            status="True",
            reason="A",
            message="",
            observed_generation=0,
            now=T0,
        )
    with pytest.raises(ValueError, match="timezone"):
        set_condition(
            None,
            "Ready",
            status="True",
            reason="A",
            message="",
            observed_generation=0,
            now=datetime(2026, 1, 1),
        )

"""The pure "is this status change worth a write" decision (SPEC §2 write cadence)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infercost.kube.status import (
    Change,
    FieldClass,
    StatusRules,
    WriteDecision,
    classify_change,
    decide_write,
    merge_patch_diff,
)

RULES = StatusRules.default(
    list_keys={
        "byModel": ("model", "namespace"),
        "byNamespace": ("namespace",),
        "history": ("period",),
    }
)


def report() -> dict[str, Any]:
    return {
        "period": "2026-11-27",
        "observedGeneration": 2,
        "lastUpdated": "2026-11-27T08:00:00Z",
        "inputTokens": 1000,
        "outputTokens": 500,
        "estimatedCostUSD": 1.2345671,
        "byModel": [
            {"model": "llama", "namespace": "a", "inputTokens": 1000, "estimatedCostUSD": 1.2},
        ],
        "byNamespace": [{"namespace": "a", "estimatedCostUSD": 1.2, "sharePercent": 100.0}],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "ReportComputed",
                "message": "",
                "observedGeneration": 2,
                "lastTransitionTime": "2026-11-27T07:00:00Z",
            }
        ],
    }


def changed(**edits: Any) -> dict[str, Any]:
    new = copy.deepcopy(report())
    new.update(edits)
    return new


def test_identical_is_none() -> None:
    assert classify_change(report(), report(), RULES) is Change.NONE


def test_last_updated_and_transition_time_alone_are_ignored() -> None:
    new = changed(lastUpdated="2026-11-27T09:00:00Z")
    new["conditions"][0]["lastTransitionTime"] = "2026-11-27T09:00:00Z"
    assert classify_change(report(), new, RULES) is Change.NONE


def test_money_below_precision_is_none_above_is_cadence() -> None:
    assert classify_change(report(), changed(estimatedCostUSD=1.2345672), RULES) is Change.NONE
    assert classify_change(report(), changed(estimatedCostUSD=1.23457), RULES) is Change.CADENCE


def test_integer_counts_are_significant() -> None:
    assert classify_change(report(), changed(inputTokens=1001), RULES) is Change.SIGNIFICANT
    assert classify_change(report(), changed(observedGeneration=3), RULES) is Change.SIGNIFICANT


def test_period_and_condition_changes_are_significant() -> None:
    assert classify_change(report(), changed(period="2026-11-28"), RULES) is Change.SIGNIFICANT
    new = report()
    new["conditions"][0]["status"] = "False"
    assert classify_change(report(), new, RULES) is Change.SIGNIFICANT
    new = report()
    new["conditions"][0]["message"] = "now stale"
    assert classify_change(report(), new, RULES) is Change.SIGNIFICANT


def test_keyed_list_key_set_change_is_significant_values_are_cadence() -> None:
    new = report()
    new["byModel"].append(
        {"model": "qwen", "namespace": "a", "inputTokens": 0, "estimatedCostUSD": 0.0}
    )
    assert classify_change(report(), new, RULES) is Change.SIGNIFICANT
    new = report()
    new["byNamespace"][0]["estimatedCostUSD"] = 1.3
    assert classify_change(report(), new, RULES) is Change.CADENCE
    new = report()
    new["byModel"][0]["inputTokens"] = 1001
    assert classify_change(report(), new, RULES) is Change.SIGNIFICANT


def test_keyed_list_reorder_is_cosmetic() -> None:
    old = changed(byNamespace=[{"namespace": "a", "x": 1.0}, {"namespace": "b", "x": 2.0}])
    new = changed(byNamespace=[{"namespace": "b", "x": 2.0}, {"namespace": "a", "x": 1.0}])
    assert classify_change(old, new, RULES) is Change.CADENCE


def test_field_appearing_or_disappearing_is_significant() -> None:
    new = changed(costPerMillionTokens=2.5)
    assert classify_change(report(), new, RULES) is Change.SIGNIFICANT
    assert classify_change(new, report(), RULES) is Change.SIGNIFICANT
    assert classify_change({}, report(), RULES) is Change.SIGNIFICANT


def test_int_and_float_of_same_money_value_are_equal() -> None:
    # The apiserver returns 0.0 as 0: a round trip must not look like a change.
    assert classify_change({"cost": 0}, {"cost": 0.0}, RULES) is Change.NONE
    assert classify_change({"cost": 2}, {"cost": 2.0000001}, RULES) is Change.NONE


def test_explicit_field_classes_override_types() -> None:
    rules = StatusRules.default(
        fields={"currentPowerDrawWatts": FieldClass.IGNORE, "powerSource": FieldClass.CADENCE}
    )
    old = {"currentPowerDrawWatts": 300.0, "powerSource": "DCGM"}
    assert classify_change(old, {**old, "currentPowerDrawWatts": 900.0}, rules) is Change.NONE
    assert classify_change(old, {**old, "powerSource": "TDP"}, rules) is Change.CADENCE
    money = StatusRules(fields={"x": FieldClass.MONEY})
    assert classify_change({"x": 1}, {"x": 1.0000001}, money) is Change.NONE
    sig = StatusRules(fields={"x": FieldClass.SIGNIFICANT})
    assert classify_change({"x": 1.0}, {"x": 1.0000001}, sig) is Change.SIGNIFICANT


def test_unkeyed_lists_compare_elementwise() -> None:
    assert classify_change({"n": ["a", "b"]}, {"n": ["a", "c"]}, RULES) is Change.SIGNIFICANT
    assert classify_change({"n": ["a"]}, {"n": ["a", "b"]}, RULES) is Change.SIGNIFICANT
    assert classify_change({"r": [1.0, 2.0]}, {"r": [1.0, 2.5]}, RULES) is Change.CADENCE


def test_merge_patch_diff_sends_only_changes_and_nulls_removed_keys() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}, "gone": True, "l": [1, 2]}
    new = {"a": 1, "b": {"c": 2, "d": 4}, "l": [1, 2, 3], "added": "x"}
    assert merge_patch_diff(old, new) == {"b": {"d": 4}, "gone": None, "l": [1, 2, 3], "added": "x"}
    assert merge_patch_diff(new, new) == {}
    assert merge_patch_diff(None, {"a": 1}) == {"a": 1}


def _apply_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = _apply_merge_patch(result.get(k), v)
    return result


json_scalars = st.one_of(
    st.integers(-5, 5), st.text(max_size=3), st.booleans(), st.floats(-10, 10, allow_nan=False)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text("abc", max_size=2), inner, max_size=3)
    ),
    max_leaves=10,
)
statuses = st.dictionaries(st.text("abcd", min_size=1, max_size=2), json_values, max_size=5)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(statuses, statuses)
def test_merge_patch_diff_round_trips(old: dict, new: dict) -> None:
    assert _apply_merge_patch(old, merge_patch_diff(old, new)) == new


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(statuses)
def test_a_status_never_differs_from_itself(status: dict) -> None:
    assert classify_change(status, copy.deepcopy(status), RULES) is Change.NONE


# -- the write decision: cadence and the lastUpdated refresh (SPEC §2) ---------------------------


def test_significant_changes_are_written_at_once_cadence_ones_wait_for_the_interval() -> None:
    significant = decide_write(report(), changed(inputTokens=1001), RULES, 60.0, 5.0)
    assert significant == WriteDecision(Change.SIGNIFICANT)
    assert significant.write_now
    money = changed(estimatedCostUSD=2.0)
    deferred = decide_write(report(), money, RULES, 60.0, 45.0)
    assert deferred.change is Change.CADENCE and not deferred.write_now
    assert deferred.due_in == 15.0
    assert decide_write(report(), money, RULES, 60.0, 60.0).write_now
    assert decide_write(report(), money, RULES, 60.0, None).write_now, "nothing written yet"


def test_a_cadence_write_due_within_rounding_of_the_interval_is_written_now() -> None:
    # clock readings subtracted in floating point give 59.99999999999991 s, not 60 s: a requeue
    # "after 9e-14 s" is no later than now, so a controller asked to wait would loop on the key
    money = changed(estimatedCostUSD=2.0)
    assert decide_write(report(), money, RULES, 60.0, 59.99999999999991).write_now
    assert decide_write(report(), money, RULES, 60.0, 59.9995).write_now
    assert decide_write(report(), money, RULES, 60.0, 59.99).due_in == 60.0 - 59.99


def test_last_updated_alone_is_refreshed_every_ten_status_intervals() -> None:
    # The data time moves on with every sample that finds nothing changed; the status says so
    # once every 10 × 60 s, whatever was written in between.
    fresh = changed(lastUpdated="2026-11-27T08:09:59Z")
    assert decide_write(report(), fresh, RULES, 60.0, 3600.0) == WriteDecision(Change.NONE)
    due = changed(lastUpdated="2026-11-27T08:10:00Z")
    refresh = decide_write(report(), due, RULES, 60.0, 1.0)
    assert refresh.change is Change.REFRESH and refresh.write_now
    assert merge_patch_diff(report(), due) == {"lastUpdated": "2026-11-27T08:10:00Z"}
    # A status that never had lastUpdated gets it at once; a desired one without it never
    # asks for a refresh.
    bare = {k: v for k, v in report().items() if k != "lastUpdated"}
    assert decide_write(bare, report(), RULES, 60.0, 1.0).change is Change.REFRESH
    assert decide_write(report(), bare, RULES, 60.0, 1.0).change is Change.NONE
    # Rules of a kind whose data time has another name, or that never refreshes.
    other = StatusRules.default(data_time_field="observedAt")
    before, after = {"observedAt": "2026-11-27T08:00:00Z"}, {"observedAt": "2026-11-27T09:00:00Z"}
    assert decide_write(before, after, other, 60.0, 1.0).write_now
    never = StatusRules.default(refresh_intervals=None)
    assert decide_write(report(), due, never, 60.0, 1.0).change is Change.NONE

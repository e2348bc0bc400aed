"""The operator-health alerts (manifests/monitoring): valid for real promtool, written only
on SPEC §6.1's health series, and firing — or staying quiet — on series histories run
through `promtool test rules`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from manifest_files import MANIFESTS, build, one, run, tool, unknown_names

pytestmark = [pytest.mark.prometheus, pytest.mark.kubectl]

JOB = 'job="infercost-operator"'


@pytest.fixture(scope="module")
def groups() -> list[dict[str, Any]]:
    rule = one(build(MANIFESTS / "monitoring"), "PrometheusRule", "infercost-operator")
    return rule["spec"]["groups"]


def _alerts(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in groups for r in g["rules"]}


def test_rules_pass_promtool_check_including_their_templates(groups, tmp_path: Path) -> None:
    path = tmp_path / "operator.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    result = run([tool("promtool", "apt-get install prometheus"), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts(groups))} rules found" in result.stdout


def test_rules_read_only_health_series_and_label_alerts_for_routing(groups) -> None:
    for name, rule in _alerts(groups).items():
        assert unknown_names(rule["expr"]) == [], name
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), name
        assert rule["annotations"]["summary"].endswith("."), name
        assert rule["annotations"]["description"], name
        assert JOB in rule["expr"], f"{name} should read the operator's own job only"


# -- behaviour: promtool test rules ------------------------------------------------------------


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    rendered = ",".join(f'{k}="{v}"' for k, v in {"job": "infercost-operator", **labels}.items())
    return {"series": f"{name}{{{rendered}}}", "values": values}


LEADING = _series("infercost_leader", {"pod": "a"}, "1x60")
STANDBY = _series("infercost_leader", {"pod": "b"}, "0x60")
CHECKPOINTED = _series(  # the value follows time(): checkpointed every minute
    "infercost_ledger_last_checkpoint_timestamp_seconds", {"pod": "a"}, "0+60x60"
)


def _expect(alert: str, at: str, *labels: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [{"exp_labels": {"severity": "warning", **lbl}} for lbl in labels],
    }


def _promtool_test(
    groups: list[dict[str, Any]],
    tmp_path: Path,
    series: list[dict[str, str]],
    checks: list[dict[str, Any]],
) -> None:
    # promtool compares annotations too; the template check above covers them, so the
    # behaviour tests compare labels only.
    bare = [
        {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
        for g in groups
    ]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": bare}))
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": checks}],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = run(
        [tool("promtool", "apt-get install prometheus"), "test", "rules", "tests.yaml"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_healthy_operator_raises_nothing(groups, tmp_path: Path) -> None:
    fresh = _series(
        "infercost_object_last_updated_timestamp_seconds",
        {"kind": "CostProfile", "object": "h100", "object_namespace": "infercost-system"},
        "0+60x60",
    )
    scrapes = _series(
        "infercost_scrape_duration_seconds_count", {"target_kind": "inference"}, "0+100x60"
    )
    a_few_errors = _series(
        "infercost_scrape_errors_total", {"target_kind": "inference", "reason": "timeout"}, "0+5x60"
    )
    reconciles = _series(
        "infercost_reconcile_total", {"controller": "costprofile", "result": "success"}, "0+10x60"
    )
    checks = [
        {"eval_time": "45m", "alertname": alert, "exp_alerts": []} for alert in _alerts(groups)
    ]
    _promtool_test(
        groups,
        tmp_path,
        [LEADING, STANDBY, CHECKPOINTED, fresh, scrapes, a_few_errors, reconciles],
        checks,
    )


def test_no_leader_alerts_after_ten_minutes(groups, tmp_path: Path) -> None:
    only_standbys = _series("infercost_leader", {"pod": "b"}, "0x60")
    _promtool_test(
        groups,
        tmp_path,
        [only_standbys],
        [
            _expect("InferCostNoLeader", "9m"),
            _expect("InferCostNoLeader", "11m", {}),
            # Without a leader nothing checkpoints; the leader alert says it all.
            _expect("InferCostLedgerNotCheckpointing", "30m"),
        ],
    )


def test_an_operator_nobody_scrapes_counts_as_no_leader(groups, tmp_path: Path) -> None:
    other = {"series": 'up{job="something-else"}', "values": "1x60"}
    _promtool_test(
        groups,
        tmp_path,
        [other],
        [_expect("InferCostNoLeader", "11m", {"job": "infercost-operator"})],
    )


def test_a_ledger_that_stops_checkpointing_alerts(groups, tmp_path: Path) -> None:
    stuck = _series("infercost_ledger_last_checkpoint_timestamp_seconds", {"pod": "a"}, "0x60")
    _promtool_test(
        groups,
        tmp_path,
        [LEADING, stuck],
        [
            # 10 minutes without a checkpoint, then 10 minutes of "for".
            _expect("InferCostLedgerNotCheckpointing", "15m"),
            _expect("InferCostLedgerNotCheckpointing", "25m", {}),
        ],
    )


def test_a_leader_that_never_checkpoints_alerts(groups, tmp_path: Path) -> None:
    _promtool_test(
        groups,
        tmp_path,
        [LEADING],
        [_expect("InferCostLedgerNotCheckpointing", "11m", {"job": "infercost-operator"})],
    )


def test_failing_scrapes_alert_per_target_kind(groups, tmp_path: Path) -> None:
    inference = {"target_kind": "inference"}
    dcgm = {"target_kind": "dcgm"}
    series = [
        LEADING,
        CHECKPOINTED,
        _series("infercost_scrape_duration_seconds_count", inference, "0+10x60"),
        _series("infercost_scrape_errors_total", {**inference, "reason": "timeout"}, "0+2x60"),
        _series("infercost_scrape_duration_seconds_count", dcgm, "0+10x60"),
        # A look-alike exporter outside --dcgm-namespaces is no failed scrape of its own.
        _series(
            "infercost_scrape_errors_total", {**dcgm, "reason": "untrusted_namespace"}, "0+10x60"
        ),
    ]
    _promtool_test(
        groups,
        tmp_path,
        series,
        [
            _expect("InferCostScrapeErrors", "40m", inference),
            _expect("InferCostUntrustedExporter", "40m", {}),
        ],
    )


def test_reconcile_errors_alert_per_controller(groups, tmp_path: Path) -> None:
    series = [
        LEADING,
        CHECKPOINTED,
        _series(
            "infercost_reconcile_total", {"controller": "costprofile", "result": "error"}, "0+1x60"
        ),
        _series(
            "infercost_reconcile_total",
            {"controller": "usagereport", "result": "success"},
            "0+5x60",
        ),
    ]
    _promtool_test(
        groups,
        tmp_path,
        series,
        [_expect("InferCostReconcileErrors", "40m", {"controller": "costprofile"})],
    )


def test_an_object_not_confirmed_for_fifteen_minutes_is_stale(groups, tmp_path: Path) -> None:
    frozen = {"kind": "UsageReport", "object": "daily", "object_namespace": "team-a"}
    fresh = {"kind": "CostProfile", "object": "h100", "object_namespace": "infercost-system"}
    series = [
        LEADING,
        CHECKPOINTED,
        _series("infercost_object_last_updated_timestamp_seconds", frozen, "0x60"),
        _series("infercost_object_last_updated_timestamp_seconds", fresh, "0+60x60"),
    ]
    _promtool_test(
        groups,
        tmp_path,
        series,
        [
            # Older than 900 s from 15m on, then 5 minutes of "for".
            _expect("InferCostObjectStale", "18m"),
            _expect("InferCostObjectStale", "25m", frozen),
        ],
    )

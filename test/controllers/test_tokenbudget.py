"""TokenBudgets through the emulator and simulated servers, driven by hand on a FakeClock.

The cluster: CostProfile ``pool-a`` (node gpu-1, two GPUs at $1 per GPU-hour) and ``pool-b``
(node gpu-2, one GPU at $2 per GPU-hour), electricity $0.12/kWh with PUE 1.25. team-a holds
GPU 0 of gpu-1 (400 W) and the GPU of gpu-2 (300 W); team-b holds GPU 1 of gpu-1 (100 W).
So team-a spends 1 + 0.4 × 0.15 + 2 + 0.3 × 0.15 = 3.105 USD per hour and team-b
1 + 0.1 × 0.15 = 1.015 USD per hour: the expected figures below are those rates times time.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from infercost.api import parse_tokenbudget
from infercost.controllers.ledger import LedgerKeeper, PricingWatch
from infercost.controllers.ledgerstore import LedgerStore
from infercost.controllers.operator import CUSTOM_RESOURCES
from infercost.controllers.sampling import Sampler, SamplerSettings
from infercost.controllers.tokenbudget import (
    BUDGET_RULES,
    CRD_RECHECK_SECONDS,
    PROMETHEUSRULES,
    RULE_RECHECK_SECONDS,
    BudgetRules,
    NamespaceCheck,
    TokenBudgetReconciler,
)
from infercost.controllers.usagereport import REPORT_RULES, UsageReportReconciler
from infercost.kube.clock import FakeClock
from infercost.kube.controller import RequeueAfter
from infercost.kube.events import EventRecorder, ObjectRef
from infercost.kube.health import HealthMetrics
from infercost.kube.informer import InformerFactory
from infercost.kube.rest import EVENTS, NODES, PODS, NotFoundError
from infercost.kube.status import StatusWriter
from infercost.outputs.budgetmetrics import BudgetCollector
from infercost.outputs.reportmetrics import UsageReportCollector
from infercost.testing.kubefixtures import KubeEnv, eventually
from infercost.testing.kubesim import KubeSim
from infercost.testing.kubesim.fixtures import SHIPPED_CRDS, infercost_crd_dir
from infercost.testing.simservers.fixtures import SimServers
from infercost.testing.simservers.objects import make_dcgm_exporter_pod, make_node, make_pod

COSTPROFILES = CUSTOM_RESOURCES["CostProfile"]
USAGEREPORTS = CUSTOM_RESOURCES["UsageReport"]
TOKENBUDGETS = CUSTOM_RESOURCES["TokenBudget"]
OPERATOR_NS = "infercost-system"
INFRA = "infra"
TEAM_A_PER_HOUR = 1 + 0.4 * 0.15 + 2 + 0.3 * 0.15
TEAM_B_PER_HOUR = 1 + 0.1 * 0.15
STEP = 30.0
RULE_LABELS = {"release": "kube-prometheus-stack"}


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _create_pod(kube: KubeEnv, pod: dict[str, Any]) -> None:
    ns = pod["metadata"]["namespace"]
    kube.sim.create_namespace(ns)
    kube.rest.create(PODS, pod, ns)
    kube.rest.merge_patch(PODS, pod["metadata"]["name"], {"status": pod["status"]}, ns, "status")


def _profile(name: str, pool: str, gpus: int, usd_per_gpu_hour: float) -> dict[str, Any]:
    return {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": "CostProfile",
        "metadata": {"name": name, "namespace": INFRA},
        "spec": {
            "hardware": {
                "gpuModel": "H100",
                "gpuCount": gpus,
                # 3 years of 8760 h: usd_per_gpu_hour per GPU-hour
                "purchasePriceUSD": usd_per_gpu_hour * gpus * 3 * 8760,
            },
            "electricity": {"ratePerKWh": 0.12, "pueFactor": 1.25},
            "nodeSelector": {"pool": pool},
        },
    }


def budget(
    name: str,
    scope: str,
    limit: float,
    thresholds: Sequence[tuple[int, str]] = (),
    *,
    forecast: bool = True,
    namespace: str | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": "TokenBudget",
        "metadata": {"name": name, "namespace": namespace or scope},
        "spec": {
            "scope": {"namespace": scope},
            "monthlyLimitUSD": limit,
            "alertThresholds": [{"percent": p, "severity": s} for p, s in thresholds],
            "forecastAlert": forecast,
        },
    }


def cluster(kube: KubeEnv, servers: SimServers) -> None:
    """Two profiles, three GPUs, two teams (see the module docstring)."""
    kube.sim.create_namespace(INFRA)
    for ns in ("team-a", "team-b"):
        kube.sim.create_namespace(ns)
    kube.rest.create(NODES, make_node("gpu-1", gpus=2, labels={"pool": "a"}))
    kube.rest.create(NODES, make_node("gpu-2", gpus=1, labels={"pool": "b"}))
    one = servers.dcgm(gpus=2, node="gpu-1")
    one.set_power(0, 400.0)
    one.set_power(1, 100.0)
    one.assign(0, "team-a", "vllm-0")
    one.assign(1, "team-b", "train-0")
    two = servers.dcgm(gpus=1, node="gpu-2")
    two.set_power(0, 300.0)
    two.assign(0, "team-a", "notebook-0")
    _create_pod(kube, make_dcgm_exporter_pod("gpu-1", one.host))
    _create_pod(kube, make_dcgm_exporter_pod("gpu-2", two.host))
    vllm = servers.inference("vllm", models=["qwen"])
    _create_pod(
        kube,
        make_pod(
            "vllm-0",
            namespace="team-a",
            ip=vllm.host,
            node="gpu-1",
            annotations={"infercost.ai/backend": "vllm"},
            gpus=1,
        ),
    )
    _create_pod(kube, make_pod("train-0", namespace="team-b", ip=None, node="gpu-1", gpus=1))
    _create_pod(kube, make_pod("notebook-0", namespace="team-a", ip=None, node="gpu-2", gpus=1))
    kube.rest.create(COSTPROFILES, _profile("pool-a", "a", 2, 1.0), INFRA)
    kube.rest.create(COSTPROFILES, _profile("pool-b", "b", 1, 2.0), INFRA)


class Rig:
    """Sampler, ledger keeper, report and budget reconcilers on one emulator, by hand."""

    def __init__(self, kube: KubeEnv, clock: FakeClock, *, status_interval: float = 0.0) -> None:
        self.kube = kube
        self.clock = clock
        self.informers = InformerFactory(kube.rest)
        self.sampler = Sampler(
            pods=self.informers.pods(),
            nodes=self.informers.nodes(),
            profiles=self.informers.informer(COSTPROFILES),
            settings=SamplerSettings(interval_seconds=STEP, timeout_seconds=2.0),
            clock=clock,
        )
        self.keeper = LedgerKeeper(
            store=LedgerStore(kube.rest, OPERATOR_NS, shards=4),
            clock=clock,
            is_leader=lambda: True,
            pricing=PricingWatch(),
            shards=4,
        )
        self.sampler.add_listener(self.keeper.on_sample)
        self.reports = self.informers.informer(USAGEREPORTS)
        self.budgets = self.informers.informer(TOKENBUDGETS)
        self.events = EventRecorder(kube.rest, host="test", clock=clock)
        self.report_reconciler = UsageReportReconciler(
            reports=self.reports,
            profiles=self.informers.informer(COSTPROFILES),
            keeper=self.keeper,
            writer=StatusWriter(
                kube.rest, USAGEREPORTS, REPORT_RULES, interval_seconds=0.0, clock=clock
            ),
            events=self.events,
            collector=UsageReportCollector(),
            clock=clock,
            scrape_interval=STEP,
            pricing=self.keeper.pricing,
            object_ref=lambda obj: ObjectRef.of(obj, USAGEREPORTS),
        )
        self.collector = BudgetCollector()
        self.metrics = HealthMetrics(CollectorRegistry())
        self.rules = BudgetRules(kube.rest, clock)
        self.reconciler = TokenBudgetReconciler(
            budgets=self.budgets,
            keeper=self.keeper,
            writer=StatusWriter(
                kube.rest,
                TOKENBUDGETS,
                BUDGET_RULES,
                interval_seconds=status_interval,
                clock=clock,
                metrics=self.metrics,
            ),
            events=self.events,
            collector=self.collector,
            rules=self.rules,
            namespaces=NamespaceCheck(kube.rest, clock),
            clock=clock,
            rule_labels=RULE_LABELS,
            object_ref=lambda obj: ObjectRef.of(obj, TOKENBUDGETS),
        )
        self.informers.start()
        eventually(self.informers.has_synced, what="caches synced")
        self.keeper.start()
        assert self.keeper.wait_restored(10)

    def close(self) -> None:
        self.keeper.stop()
        self.keeper.join(5)
        self.sampler.close()
        self.informers.stop()
        self.informers.join(5)

    def wait_cluster(self) -> None:
        eventually(
            lambda: (
                len(self.informers.pods().store.list_keys()) == 5
                and len(self.informers.informer(COSTPROFILES).store.list_keys()) == 2
            ),
            what="cluster cached",
        )

    def sample(self, sim_clock: Any, advance: float = STEP) -> None:
        self.clock.advance(advance)
        sim_clock.advance(advance)
        self.sampler.sample_once()

    def _synced(self, informer: Any, resource: Any, name: str, ns: str) -> dict[str, Any]:
        key = f"{ns}/{name}"

        def cached() -> dict[str, Any] | None:
            obj = self.kube.rest.get(resource, name, ns)
            cache = informer.store.get(key)
            if cache is not None and (
                cache["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
            ):
                return obj
            return None

        obj: dict[str, Any] = eventually(cached, what=f"{key} cached")
        return obj

    def budget(self, name: str, ns: str) -> dict[str, Any]:
        """Reconcile a budget from an up-to-date cache; its status afterwards."""
        self._synced(self.budgets, TOKENBUDGETS, name, ns)
        self.last_result = self.reconciler.reconcile(f"{ns}/{name}")
        return self._synced(self.budgets, TOKENBUDGETS, name, ns).get("status") or {}

    def report(self, name: str) -> dict[str, Any]:
        self._synced(self.reports, USAGEREPORTS, name, INFRA)
        self.report_reconciler.reconcile(f"{INFRA}/{name}")
        return self._synced(self.reports, USAGEREPORTS, name, INFRA)["status"]


def events_of(kube: KubeEnv, name: str, ns: str) -> list[tuple[str, str, str, int]]:
    """(type, reason, message, count) of a budget's Events."""
    items = kube.rest.list(EVENTS, ns)["items"]
    mine = [
        e
        for e in items
        if e["involvedObject"].get("kind") == "TokenBudget" and e["involvedObject"]["name"] == name
    ]
    # by time (the FakeClock's), then by reason for Events of one reconcile
    mine.sort(key=lambda e: (e.get("firstTimestamp") or "", e["reason"], e["message"]))
    return [(e["type"], e["reason"], e["message"], e.get("count", 1)) for e in mine]


def reasons(kube: KubeEnv, name: str, ns: str) -> list[tuple[str, str]]:
    return [(t, r) for t, r, _, _ in events_of(kube, name, ns)]


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def rule_writes(kube: KubeEnv) -> list[tuple[str, str]]:
    """(verb, object name) of every write to a PrometheusRule."""
    return [
        (r.verb, r.name)
        for r in kube.sim.requests()
        if r.resource == PROMETHEUSRULES.display
        and r.verb in ("create", "update", "patch", "delete")
    ]


@pytest.fixture
def clock(sim_servers: SimServers) -> FakeClock:
    return FakeClock(dt.datetime.fromtimestamp(sim_servers.clock(), dt.UTC))


@pytest.fixture
def rig(kube: KubeEnv, clock: FakeClock) -> Iterator[Rig]:
    r = Rig(kube, clock)
    try:
        yield r
    finally:
        r.close()


def start_at(sim_servers: SimServers, when: str) -> FakeClock:
    """Move the simulated world to ``when`` before any server exists; a FakeClock there."""
    assert not sim_servers.started
    sim_servers.clock.set(_utc(when).timestamp())
    return FakeClock(_utc(when))


# ---------------------------------------------------------------------------------------------
# spend


def test_spend_is_the_namespace_over_all_profiles_and_equals_the_monthly_reports(
    kube: KubeEnv, sim_servers: SimServers, rig: Rig, clock: FakeClock
) -> None:
    cluster(kube, sim_servers)
    for profile in ("pool-a", "pool-b"):
        kube.rest.create(
            USAGEREPORTS,
            {
                "apiVersion": "finops.infercost.ai/v1alpha1",
                "kind": "UsageReport",
                "metadata": {"name": f"{profile}-monthly", "namespace": INFRA},
                "spec": {"costProfileRef": profile, "schedule": "monthly"},
            },
            INFRA,
        )
    kube.rest.create(TOKENBUDGETS, budget("a", "team-a", 1000.0), "team-a")
    kube.rest.create(TOKENBUDGETS, budget("b", "team-b", 1000.0), "team-b")
    rig.wait_cluster()
    rig.sampler.sample_once()  # coverage starts here: cost accrues from this sample on
    first = clock.now()
    for _ in range(20):
        rig.sample(sim_servers.clock)
    a = rig.budget("a", "team-a")
    b = rig.budget("b", "team-b")

    hours = 20 * STEP / 3600
    assert a["currentSpendUSD"] == pytest.approx(TEAM_A_PER_HOUR * hours, rel=1e-6)
    assert b["currentSpendUSD"] == pytest.approx(TEAM_B_PER_HOUR * hours, rel=1e-6)
    by_report = [
        e["estimatedCostUSD"]
        for name in ("pool-a-monthly", "pool-b-monthly")
        for e in rig.report(name)["byNamespace"]
        if e["namespace"] == "team-a"
    ]
    assert len(by_report) == 2  # team-a spends on both profiles
    assert a["currentSpendUSD"] == pytest.approx(sum(by_report), rel=1e-9)

    # 2026-11-27 00:10 UTC: the run rate is measured from the first sample; 3 d 23 h 50 m left
    assert (a["periodStart"], a["periodEnd"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    assert _utc(a["lastUpdated"]) == clock.now().replace(microsecond=0)
    left_hours = (dt.datetime(2026, 12, 1, tzinfo=dt.UTC) - clock.now()).total_seconds() / 3600
    assert clock.now() - first == dt.timedelta(minutes=10)
    assert a["projectedSpendUSD"] == pytest.approx(TEAM_A_PER_HOUR * (hours + left_hours), rel=1e-6)
    assert a["utilizationPercent"] == pytest.approx(a["currentSpendUSD"] / 10, rel=1e-12)
    assert a["state"] == "OK" and a["thresholdsCrossed"] == []
    assert "projectedExhaustion" not in a  # 3.105 USD/h never reaches 1000 USD this month
    assert condition(a, "Ready")["status"] == "True"
    assert condition(a, "BudgetExceeded")["status"] == "False"
    # the written status is a valid TokenBudget status
    parse_tokenbudget(kube.rest.get(TOKENBUDGETS, "a", "team-a"))
    # the budget gauges follow the status
    series = {r.name: r for r in rig.collector.records()}
    assert series["a"].spend_usd == a["currentSpendUSD"]
    assert series["a"].scope_namespace == "team-a"
    assert series["b"].used_ratio == pytest.approx(b["currentSpendUSD"] / 1000, rel=1e-12)


def test_spend_restarts_from_zero_when_the_month_turns(
    kube: KubeEnv, sim_servers: SimServers
) -> None:
    clock = start_at(sim_servers, "2026-11-30T23:50:00Z")
    cluster(kube, sim_servers)
    kube.rest.create(TOKENBUDGETS, budget("a", "team-a", 0.5, [(50, "warning")]), "team-a")
    rig = Rig(kube, clock)
    try:
        rig.wait_cluster()
        rig.sampler.sample_once()
        for _ in range(18):  # to 23:59
            rig.sample(sim_servers.clock)
        november = rig.budget("a", "team-a")
        assert november["periodStart"] == "2026-11-01T00:00:00Z"
        assert november["currentSpendUSD"] == pytest.approx(TEAM_A_PER_HOUR * 0.15, rel=1e-6)
        assert november["state"] == "Warning"
        assert [t["percent"] for t in november["thresholdsCrossed"]] == [50]

        for _ in range(4):  # to 00:01: one minute of December
            rig.sample(sim_servers.clock)
        december = rig.budget("a", "team-a")
    finally:
        rig.close()
    assert (december["periodStart"], december["periodEnd"]) == (
        "2026-12-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    )
    assert december["currentSpendUSD"] == pytest.approx(TEAM_A_PER_HOUR / 60, rel=1e-6)
    assert december["state"] == "OK"
    assert december["thresholdsCrossed"] == []
    # the run rate reaches back into November: 3.105 USD/h over the 11 minutes since the first
    # sample, projected over the 31 days of December minus the minute gone
    assert december["projectedSpendUSD"] == pytest.approx(
        TEAM_A_PER_HOUR / 60 + TEAM_A_PER_HOUR * (31 * 24 - 1 / 60), rel=1e-6
    )
    assert reasons(kube, "a", "team-a") == [
        ("Warning", "BudgetWarning"),
        ("Warning", "ThresholdCrossed"),
        ("Normal", "BudgetOK"),
    ]


def test_the_month_turning_while_the_operator_is_down_restarts_the_spend(
    kube: KubeEnv, sim_servers: SimServers
) -> None:
    clock = start_at(sim_servers, "2026-11-30T23:50:00Z")
    cluster(kube, sim_servers)
    kube.rest.create(TOKENBUDGETS, budget("a", "team-a", 100.0), "team-a")
    rig = Rig(kube, clock)
    try:
        rig.wait_cluster()
        rig.sampler.sample_once()
        for _ in range(10):  # to 23:55
            rig.sample(sim_servers.clock)
        before = rig.budget("a", "team-a")
    finally:
        rig.close()
    assert before["periodStart"] == "2026-11-01T00:00:00Z"
    # down for ten minutes, across midnight; a new process restores the checkpoint
    clock.advance(600)
    sim_servers.clock.advance(600)
    second = Rig(kube, clock)
    try:
        second.wait_cluster()
        second.sample(sim_servers.clock)  # 00:05:30
        after = second.budget("a", "team-a")
    finally:
        second.close()
    assert after["periodStart"] == "2026-12-01T00:00:00Z"
    assert after["currentSpendUSD"] == pytest.approx(TEAM_A_PER_HOUR * 5.5 / 60, rel=1e-6)
    assert _utc(after["lastUpdated"]) == _utc("2026-12-01T00:05:30Z")


def test_a_scope_namespace_that_does_not_exist_is_ready_with_no_spend(
    kube: KubeEnv, sim_servers: SimServers, rig: Rig
) -> None:
    cluster(kube, sim_servers)
    kube.rest.create(TOKENBUDGETS, budget("typo", "team-x", 10.0, namespace="team-a"), "team-a")
    rig.wait_cluster()
    rig.sampler.sample_once()
    rig.sample(sim_servers.clock)
    status = rig.budget("typo", "team-a")
    assert status["currentSpendUSD"] == 0
    assert status["state"] == "OK"
    ready = condition(status, "Ready")
    assert ready["status"] == "True"
    assert "namespace team-x does not exist" in ready["message"]
    assert reasons(kube, "typo", "team-a") == [("Warning", "ScopeNamespaceNotFound")]

    # created later: the next check (a few minutes on) drops the remark
    kube.sim.create_namespace("team-x")
    rig.sample(sim_servers.clock, advance=300.0)
    status = rig.budget("typo", "team-a")
    assert "does not exist" not in condition(status, "Ready")["message"]


# ---------------------------------------------------------------------------------------------
# state, thresholds, conditions and Events


def test_state_thresholds_conditions_and_events_follow_the_spend(
    kube: KubeEnv, sim_servers: SimServers, rig: Rig, clock: FakeClock
) -> None:
    cluster(kube, sim_servers)
    # 0.025875 USD per 30 s sample against 0.13 USD: 19.9 %, 39.8 %, 59.7 %, 79.6 %, 99.5 %, 119.4 %
    thresholds = [(50, "info"), (70, "warning"), (90, "critical")]
    kube.rest.create(TOKENBUDGETS, budget("a", "team-a", 0.13, thresholds), "team-a")
    rig.wait_cluster()
    rig.sampler.sample_once()
    seen = []
    crossed_at: dict[int, tuple[int, str]] = {}
    for step in range(1, 7):
        rig.sample(sim_servers.clock)
        status = rig.budget("a", "team-a")
        crossed = [t["percent"] for t in status["thresholdsCrossed"]]
        seen.append((round(status["utilizationPercent"], 1), status["state"], crossed))
        for t in status["thresholdsCrossed"]:
            crossed_at.setdefault(t["percent"], (step, t["crossedTime"]))
            assert t["crossedTime"] == crossed_at[t["percent"]][1]  # kept once crossed
        exceeded = condition(status, "BudgetExceeded")
        assert (exceeded["status"] == "True") == (status["state"] == "Exceeded")
        assert condition(status, "Ready")["status"] == "True"
    assert seen == [
        (19.9, "OK", []),
        (39.8, "OK", []),
        (59.7, "OK", [50]),
        (79.6, "Warning", [50, 70]),
        (99.5, "Critical", [50, 70, 90]),
        (119.4, "Exceeded", [50, 70, 90]),
    ]
    assert {p: s for p, (s, _) in crossed_at.items()} == {50: 3, 70: 4, 90: 5}
    assert condition(status, "BudgetExceeded")["reason"] == "LimitReached"
    assert "projectedExhaustion" not in status  # spend is past the limit

    events = events_of(kube, "a", "team-a")
    assert [(t, r) for t, r, _, _ in events] == [
        ("Normal", "ThresholdCrossed"),
        ("Warning", "BudgetWarning"),
        ("Warning", "ThresholdCrossed"),
        ("Warning", "BudgetCritical"),
        ("Warning", "ThresholdCrossed"),
        ("Warning", "BudgetExceeded"),
    ]
    assert "reached 70% of the monthly limit (warning threshold)" in events[2][2]
    assert events[5][2].startswith("state Exceeded (was Critical): namespace team-a spent 0.16 USD")
    assert all(count == 1 for *_, count in events)


def test_projected_exhaustion_while_below_the_limit(
    kube: KubeEnv, sim_servers: SimServers, rig: Rig, clock: FakeClock
) -> None:
    cluster(kube, sim_servers)
    kube.rest.create(TOKENBUDGETS, budget("a", "team-a", 10.0), "team-a")
    rig.wait_cluster()
    rig.sampler.sample_once()
    for _ in range(4):
        rig.sample(sim_servers.clock)
    status = rig.budget("a", "team-a")
    spent = TEAM_A_PER_HOUR * 2 / 60
    hours_to_limit = (10.0 - spent) / TEAM_A_PER_HOUR
    expected = clock.now() + dt.timedelta(hours=hours_to_limit)
    assert abs((_utc(status["projectedExhaustion"]) - expected).total_seconds()) <= 1


def test_a_limit_edited_mid_month_changes_state_series_and_rule_at_once(
    kube: KubeEnv, sim_servers: SimServers, rig: Rig
) -> None:
    cluster(kube, sim_servers)
    kube.rest.create(TOKENBUDGETS, budget("a", "team-a", 1.0, [(80, "warning")]), "team-a")
    rig.wait_cluster()
    rig.sampler.sample_once()
    for _ in range(4):
        rig.sample(sim_servers.clock)
    status = rig.budget("a", "team-a")
    assert status["state"] == "OK"  # 0.1035 USD of 1 USD
    rule_before = kube.rest.get(PROMETHEUSRULES, "infercost-budget-a", "team-a")

    # lowered below the spend, with a second threshold: no new sample needed
    kube.rest.merge_patch(
        TOKENBUDGETS,
        "a",
        {
            "spec": {
                "monthlyLimitUSD": 0.1,
                "alertThresholds": [
                    {"percent": 80, "severity": "warning"},
                    {"percent": 120, "severity": "critical"},
                ],
            }
        },
        "team-a",
    )
    writes = len(rule_writes(kube))
    status = rig.budget("a", "team-a")
    assert status["state"] == "Exceeded"
    assert status["utilizationPercent"] == pytest.approx(103.5, rel=1e-6)
    assert [t["percent"] for t in status["thresholdsCrossed"]] == [80]
    assert status["observedGeneration"] == 2
    series = {r.name: r for r in rig.collector.records()}["a"]
    assert (series.limit_usd, series.used_ratio) == (0.1, pytest.approx(1.035, rel=1e-6))
    rule = kube.rest.get(PROMETHEUSRULES, "infercost-budget-a", "team-a")
    exprs = [r["expr"] for r in rule["spec"]["groups"][0]["rules"]]
    assert any(e.endswith(">= 1.2") for e in exprs)
    assert len(exprs) == 3  # two thresholds and the forecast
    assert rule["metadata"]["resourceVersion"] != rule_before["metadata"]["resourceVersion"]
    assert len(rule_writes(kube)) == writes + 1
    assert ("Warning", "BudgetExceeded") in reasons(kube, "a", "team-a")


def test_amounts_are_written_once_per_status_interval_and_a_crossing_at_once(
    kube: KubeEnv, sim_servers: SimServers, clock: FakeClock
) -> None:
    cluster(kube, sim_servers)
    # 2.5875 % per sample: the 48 % threshold is crossed at the 19th
    kube.rest.create(TOKENBUDGETS, budget("a", "team-a", 1.0, [(48, "info")]), "team-a")
    rig = Rig(kube, clock, status_interval=60.0)
    try:
        rig.wait_cluster()
        rig.sampler.sample_once()
        rig.budget("a", "team-a")
        writes_by_step = []
        for _ in range(19):
            rig.sample(sim_servers.clock)
            before = _status_writes(kube)
            status = rig.budget("a", "team-a")
            writes_by_step.append(_status_writes(kube) - before)
    finally:
        rig.close()
    # one write every other sample (60 s), and the crossing at once, 30 s after the last write
    assert writes_by_step == [0, 1] * 9 + [1]
    assert [t["percent"] for t in status["thresholdsCrossed"]] == [48]
    assert status["currentSpendUSD"] == pytest.approx(TEAM_A_PER_HOUR * 9.5 / 60, rel=1e-6)


def _status_writes(kube: KubeEnv) -> int:
    return sum(
        1
        for r in kube.sim.requests()
        if r.resource == TOKENBUDGETS.display and r.verb == "patch" and r.subresource == "status"
    )


def test_duplicate_threshold_percents_are_rejected_at_admission(kube: KubeEnv) -> None:
    kubectl = shutil.which("kubectl") or "/usr/bin/kubectl"
    if not os.path.exists(kubectl):
        pytest.skip("kubectl is not installed")
    kube.sim.create_namespace("team-a")
    manifest = """
apiVersion: finops.infercost.ai/v1alpha1
kind: TokenBudget
metadata: {name: twice, namespace: team-a}
spec:
  scope: {namespace: team-a}
  monthlyLimitUSD: 100
  alertThresholds:
    - {percent: 80, severity: warning}
    - {percent: 80, severity: critical}
"""
    done = subprocess.run(
        [kubectl, "--kubeconfig", kube.sim.kubeconfig, "create", "-f", "-"],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert 'The TokenBudget "twice" is invalid' in done.stderr
    assert "spec.alertThresholds[1]: Duplicate value" in done.stderr
    with pytest.raises(NotFoundError):
        kube.rest.get(TOKENBUDGETS, "twice", "team-a")


# ---------------------------------------------------------------------------------------------
# the PrometheusRule


def test_prometheusrule_content_labels_owner_and_no_rewrite_when_unchanged(
    kube: KubeEnv, sim_servers: SimServers, rig: Rig
) -> None:
    cluster(kube, sim_servers)
    created = kube.rest.create(
        TOKENBUDGETS, budget("a", "team-a", 100.0, [(80, "warning"), (100, "critical")]), "team-a"
    )
    rig.wait_cluster()
    rig.sampler.sample_once()
    status = rig.budget("a", "team-a")
    assert status["prometheusRuleRef"] == {"name": "infercost-budget-a", "namespace": "team-a"}
    rule = kube.rest.get(PROMETHEUSRULES, "infercost-budget-a", "team-a")
    assert rule["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "infercost",
        "infercost.ai/budget": "a",
        "release": "kube-prometheus-stack",
    }
    owner = rule["metadata"]["ownerReferences"]
    assert owner == [
        {
            "apiVersion": "finops.infercost.ai/v1alpha1",
            "kind": "TokenBudget",
            "name": "a",
            "uid": created["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    group = rule["spec"]["groups"][0]
    assert [(r["alert"], r["labels"].get("threshold_percent")) for r in group["rules"]] == [
        ("InferCostBudgetThresholdCrossed", "80"),
        ("InferCostBudgetThresholdCrossed", "100"),
        ("InferCostBudgetForecastExceeded", None),
    ]
    assert group["rules"][0]["expr"] == (
        'infercost_budget_used_ratio{budget="a",budget_namespace="team-a"} >= 0.8'
    )
    assert all(r["labels"]["namespace"] == "team-a" for r in group["rules"])
    assert rule_writes(kube) == [("create", "")]

    # samples and reconciles neither read nor write an unchanged rule; the periodic re-read
    # after RULE_RECHECK_SECONDS reads it once and finds nothing to write
    reads = _rule_reads(kube)
    for _ in range(5):
        rig.sample(sim_servers.clock)
        rig.budget("a", "team-a")
    assert _rule_reads(kube) == reads
    rig.sample(sim_servers.clock, advance=RULE_RECHECK_SECONDS)
    rig.budget("a", "team-a")
    assert _rule_reads(kube) == reads + 1
    assert len(rule_writes(kube)) == 1

    # a rule deleted behind the operator's back is back after the next re-read
    kube.rest.delete(PROMETHEUSRULES, "infercost-budget-a", "team-a")
    rig.sample(sim_servers.clock, advance=RULE_RECHECK_SECONDS)
    rig.budget("a", "team-a")
    assert kube.rest.get(PROMETHEUSRULES, "infercost-budget-a", "team-a")["spec"] == rule["spec"]


def _rule_reads(kube: KubeEnv) -> int:
    return sum(
        1 for r in kube.sim.requests() if r.resource == PROMETHEUSRULES.display and r.verb == "get"
    )


def test_the_rule_goes_when_there_is_nothing_to_alert_on_and_with_the_budget(
    kube: KubeEnv, sim_servers: SimServers, rig: Rig
) -> None:
    cluster(kube, sim_servers)
    kube.rest.create(TOKENBUDGETS, budget("a", "team-a", 100.0, [(80, "warning")]), "team-a")
    kube.rest.create(TOKENBUDGETS, budget("b", "team-b", 100.0, [(80, "warning")]), "team-b")
    rig.wait_cluster()
    rig.sampler.sample_once()
    rig.budget("a", "team-a")
    rig.budget("b", "team-b")

    # thresholds removed: the forecast alone still needs the rule, with one alert
    kube.rest.merge_patch(TOKENBUDGETS, "a", {"spec": {"alertThresholds": []}}, "team-a")
    rig.budget("a", "team-a")
    rule = kube.rest.get(PROMETHEUSRULES, "infercost-budget-a", "team-a")
    assert [r["alert"] for r in rule["spec"]["groups"][0]["rules"]] == [
        "InferCostBudgetForecastExceeded"
    ]
    # and the forecast switched off: nothing to alert on, no rule
    kube.rest.merge_patch(TOKENBUDGETS, "a", {"spec": {"forecastAlert": False}}, "team-a")
    status = rig.budget("a", "team-a")
    assert "prometheusRuleRef" not in status
    with pytest.raises(NotFoundError):
        kube.rest.get(PROMETHEUSRULES, "infercost-budget-a", "team-a")
    assert condition(status, "Ready")["status"] == "True"

    # deleting a budget deletes its rule (garbage collection) and its series
    kube.rest.delete(TOKENBUDGETS, "b", "team-b")

    def rule_gone() -> bool:
        try:
            kube.rest.get(PROMETHEUSRULES, "infercost-budget-b", "team-b")
        except NotFoundError:
            return True
        return False

    eventually(rule_gone, what="PrometheusRule garbage-collected")
    eventually(lambda: rig.budgets.store.get("team-b/b") is None, what="deletion cached")
    rig.reconciler.reconcile("team-b/b")
    assert [r.name for r in rig.collector.records()] == ["a"]


def test_a_failing_rule_write_does_not_hold_up_the_status_and_is_retried_soon(
    kube: KubeEnv, sim_servers: SimServers, rig: Rig
) -> None:
    cluster(kube, sim_servers)
    kube.rest.create(TOKENBUDGETS, budget("a", "team-a", 100.0, [(80, "warning")]), "team-a")
    rig.wait_cluster()
    rig.sampler.sample_once()
    rig.sample(sim_servers.clock)
    kube.sim.faults.respond("create", "prometheusrules", 503, count=1)
    status = rig.budget("a", "team-a")
    assert status["currentSpendUSD"] == pytest.approx(TEAM_A_PER_HOUR / 120, rel=1e-6)
    assert "prometheusRuleRef" not in status
    assert "alerts are off" not in condition(status, "Ready")["message"]  # not for a blip
    assert isinstance(rig.last_result, RequeueAfter) and rig.last_result.seconds <= 5
    status = rig.budget("a", "team-a")
    assert status["prometheusRuleRef"] == {"name": "infercost-budget-a", "namespace": "team-a"}
    assert reasons(kube, "a", "team-a") == []


def test_a_rule_of_that_name_not_made_by_infercost_is_left_alone(
    kube: KubeEnv, sim_servers: SimServers, rig: Rig
) -> None:
    cluster(kube, sim_servers)
    theirs = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "infercost-budget-a", "namespace": "team-a"},
        "spec": {"groups": [{"name": "mine", "rules": [{"alert": "Mine", "expr": "vector(1)"}]}]},
    }
    kube.rest.create(PROMETHEUSRULES, theirs, "team-a")
    kube.rest.create(TOKENBUDGETS, budget("a", "team-a", 100.0, [(80, "warning")]), "team-a")
    rig.wait_cluster()
    rig.sampler.sample_once()
    status = rig.budget("a", "team-a")
    ready = condition(status, "Ready")
    assert ready["status"] == "True"
    assert (
        "alerts are off: PrometheusRule infercost-budget-a exists and is not managed"
        in (ready["message"])
    )
    assert "prometheusRuleRef" not in status
    assert kube.rest.get(PROMETHEUSRULES, "infercost-budget-a", "team-a")["spec"] == theirs["spec"]
    assert rule_writes(kube) == [("create", "")]  # the test's own
    assert reasons(kube, "a", "team-a") == [("Warning", "PrometheusRuleNotOwned")]


def test_a_budget_name_too_long_for_a_label_is_an_invalid_spec(
    kube: KubeEnv, sim_servers: SimServers, rig: Rig
) -> None:
    cluster(kube, sim_servers)
    name = "b" * 64
    kube.rest.create(TOKENBUDGETS, budget(name, "team-a", 100.0, [(80, "warning")]), "team-a")
    rig.wait_cluster()
    rig.sampler.sample_once()
    rig.sample(sim_servers.clock)
    status = rig.budget(name, "team-a")
    assert set(status) == {"observedGeneration", "lastUpdated", "conditions"}
    [ready] = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "InvalidSpec")
    assert "metadata.name: must be at most 63 characters" in ready["message"]
    assert reasons(kube, name, "team-a") == [("Warning", "InvalidSpec")]
    assert rig.collector.records() == []
    assert rule_writes(kube) == []


def test_without_the_prometheusrule_crd_alerts_are_off_until_it_is_installed(
    sim_servers: SimServers, clock: FakeClock
) -> None:
    sim = KubeSim(
        crd_dirs=[infercost_crd_dir()], namespaces=(OPERATOR_NS,), bookmark_interval=1.0
    ).start()
    try:
        kube = KubeEnv(sim)
        cluster(kube, sim_servers)
        kube.rest.create(TOKENBUDGETS, budget("a", "team-a", 100.0, [(80, "warning")]), "team-a")
        rig = Rig(kube, clock)
        try:
            rig.wait_cluster()
            rig.sampler.sample_once()
            for _ in range(3):
                rig.sample(sim_servers.clock)
                status = rig.budget("a", "team-a")
                assert status["currentSpendUSD"] > 0
                assert "prometheusRuleRef" not in status
                ready = condition(status, "Ready")
                assert ready["status"] == "True"
                assert "alerts are off" in ready["message"]
            assert events_of(kube, "a", "team-a") == [
                (
                    "Warning",
                    "AlertsDisabled",
                    "alerts are off: the PrometheusRule CRD (prometheusrules.monitoring.coreos.com)"
                    " is not installed; the rule is created once it is",
                    1,
                )
            ]
            discoveries = [r for r in sim.requests() if r.path == "/apis/monitoring.coreos.com/v1"]
            assert len(discoveries) == 1  # not asked again within CRD_RECHECK_SECONDS

            # the CRD is installed; the operator keeps running and finds it on its own
            sim.apply_crds(SHIPPED_CRDS)
            # the budget is looked at again by itself, in time to see the CRD
            assert isinstance(rig.last_result, RequeueAfter)
            assert rig.last_result.seconds <= CRD_RECHECK_SECONDS + 1
            rig.sample(sim_servers.clock, advance=CRD_RECHECK_SECONDS)
            status = rig.budget("a", "team-a")
        finally:
            rig.close()
        assert status["prometheusRuleRef"] == {"name": "infercost-budget-a", "namespace": "team-a"}
        assert "alerts are off" not in condition(status, "Ready")["message"]
        assert kube.rest.get(PROMETHEUSRULES, "infercost-budget-a", "team-a")
        assert reasons(kube, "a", "team-a") == [
            ("Warning", "AlertsDisabled"),
            ("Normal", "AlertsEnabled"),
        ]
    finally:
        sim.stop()


# ---------------------------------------------------------------------------------------------
# kubectl


def test_kubectl_get_tbudget_shows_the_figures(
    kube: KubeEnv, sim_servers: SimServers, rig: Rig
) -> None:
    kubectl = "/usr/bin/kubectl"
    if not os.path.exists(kubectl):
        pytest.skip("kubectl is not installed at /usr/bin/kubectl")
    cluster(kube, sim_servers)
    kube.rest.create(
        TOKENBUDGETS, budget("team-a-monthly", "team-a", 0.1, [(50, "warning")]), "team-a"
    )
    rig.wait_cluster()
    rig.sampler.sample_once()
    for _ in range(2):
        rig.sample(sim_servers.clock)
    status = rig.budget("team-a-monthly", "team-a")
    assert status["state"] == "Warning"
    done = subprocess.run(
        [kubectl, "--kubeconfig", kube.sim.kubeconfig, "get", "tbudget", "-n", "team-a"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "SCOPE",
        "LIMIT",
        "($)",
        "SPEND",
        "($)",
        "USED",
        "%",
        "PROJECTED",
        "($)",
        "STATE",
        "AGE",
    ]
    cells = row.split()
    assert cells[:3] == ["team-a-monthly", "team-a", "0.1"]
    assert float(cells[3]) == pytest.approx(status["currentSpendUSD"], rel=1e-6)
    assert float(cells[4]) == pytest.approx(status["utilizationPercent"], rel=1e-6)
    assert float(cells[5]) == pytest.approx(status["projectedSpendUSD"], rel=1e-6)
    assert cells[6] == "Warning"

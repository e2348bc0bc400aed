"""The controller loop: sync gating, mapping functions, results, errors and their metrics."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import structlog.testing
from prometheus_client import CollectorRegistry

from infercost.api import GROUP, VERSION
from infercost.kube.clock import FakeClock
from infercost.kube.controller import DONE, RETRY, Controller, spec_or_metadata_changed
from infercost.kube.health import HealthMetrics
from infercost.kube.informer import Informer
from infercost.kube.rest import ForbiddenError, Resource
from infercost.kube.transforms import object_key
from infercost.testing.kubefixtures import KubeEnv, eventually

PROFILES = Resource(GROUP, VERSION, "costprofiles", "CostProfile", True)
REPORTS = Resource(GROUP, VERSION, "usagereports", "UsageReport", True)
NS = "default"


def profile(name: str, price: float = 1000.0) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CostProfile",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "hardware": {"gpuModel": "H100", "gpuCount": 8, "purchasePriceUSD": price},
            "electricity": {"ratePerKWh": 0.1},
        },
    }


def report(name: str, ref: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "UsageReport",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"costProfileRef": ref},
    }


def sample(metrics: HealthMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_profile_change_enqueues_its_reports(kube: KubeEnv) -> None:
    metrics = HealthMetrics(CollectorRegistry())
    kube.rest.create(PROFILES, profile("h100"), NS)
    kube.rest.create(PROFILES, profile("a100"), NS)
    kube.rest.create(REPORTS, report("daily", "h100"), NS)
    kube.rest.create(REPORTS, report("weekly", "h100"), NS)
    kube.rest.create(REPORTS, report("other", "a100"), NS)
    profiles = Informer(kube.rest, PROFILES)
    reports = Informer(kube.rest, REPORTS)
    reconciled: list[str] = []
    lock = threading.Lock()

    def reconcile(key: str):
        with lock:
            reconciled.append(key)
        return DONE

    def reports_of(profile_obj: Any) -> list[str]:
        ns = profile_obj["metadata"]["namespace"]
        name = profile_obj["metadata"]["name"]
        return [
            object_key(r)
            for r in reports.store.by_index("namespace", ns)
            if r["spec"]["costProfileRef"] == name
        ]

    ctl = Controller("usagereport", reconcile, primary=reports, metrics=metrics, workers=2)
    ctl.watch(profiles, reports_of)
    assert not ctl.started()

    # Count the controller's looks at the reports cache, to know it has looked again.
    looks = []
    reports_synced = reports.has_synced

    def counted_has_synced() -> bool:
        looks.append(1)
        return reports_synced()

    reports.has_synced = counted_has_synced  # type: ignore[method-assign]
    ctl.start()
    profiles.start()
    try:
        # Workers wait for both informers: with profiles synced and reports not started, the
        # controller checks again and again and does not start.
        eventually(profiles.has_synced, what="profiles synced")
        seen = len(looks)
        eventually(lambda: len(looks) >= seen + 2, what="the controller to check its caches")
        assert not ctl.started() and reconciled == []
        reports.start()
        eventually(ctl.started, what="workers start after both informers synced")
        eventually(lambda: len(set(reconciled)) == 3)
        with lock:
            reconciled.clear()
        kube.rest.merge_patch(PROFILES, "h100", {"spec": {"hardware": {"purchasePriceUSD": 9}}}, NS)
        eventually(lambda: sorted(set(reconciled)) == ["default/daily", "default/weekly"])
        # The mapping enqueued every key of the change at once; once the queue is idle, each of
        # them has been reconciled, so a key that is missing now was never enqueued.
        eventually(lambda: len(ctl.queue) == 0 and not ctl.queue.processing(), what="idle queue")
        assert "default/other" not in reconciled
    finally:
        ctl.stop()
        profiles.stop()
        reports.stop()
        ctl.join(5)
        profiles.join(5)
        reports.join(5)
    assert (
        sample(metrics, "infercost_reconcile_total", controller="usagereport", result="success")
        >= 5
    )
    assert (
        sample(metrics, "infercost_reconcile_duration_seconds_count", controller="usagereport") >= 5
    )


def test_the_echo_of_a_status_write_does_not_reconcile_again(kube: KubeEnv) -> None:
    kube.rest.create(REPORTS, report("daily", "h100"), NS)
    kube.rest.create(REPORTS, report("weekly", "h100"), NS)
    reports = Informer(kube.rest, REPORTS)
    reconciled: list[str] = []
    lock = threading.Lock()

    def reconcile(key: str):
        with lock:
            reconciled.append(key)
        return DONE

    ctl = Controller(
        "usagereport", reconcile, primary=reports, primary_updates=spec_or_metadata_changed
    )

    def settled_on(key: str) -> None:
        eventually(lambda: key in reconciled, what=f"{key} reconciled")
        eventually(lambda: len(ctl.queue) == 0 and not ctl.queue.processing(), what="idle")

    reports.start()
    ctl.start()
    try:
        eventually(lambda: sorted(reconciled) == ["default/daily", "default/weekly"])
        with lock:
            reconciled.clear()
        kube.rest.merge_patch(REPORTS, "daily", {"status": {"inputTokens": 5}}, NS, "status")
        # one watch stream delivers events in order: once the later spec change of "weekly" is
        # reconciled, the status event of "daily" has been handled before it
        kube.rest.merge_patch(REPORTS, "weekly", {"spec": {"costProfileRef": "a100"}}, NS)
        settled_on("default/weekly")
        assert reconciled == ["default/weekly"]
        assert reports.store.get("default/daily")["status"] == {"inputTokens": 5}
        kube.rest.merge_patch(REPORTS, "daily", {"metadata": {"labels": {"team": "a"}}}, NS)
        settled_on("default/daily")
        assert reconciled == ["default/weekly", "default/daily"]
    finally:
        ctl.stop()
        reports.stop()
        ctl.join(5)
        reports.join(5)


def test_update_filter_passes_spec_metadata_and_deletion_changes_only() -> None:
    base = {"metadata": {"name": "r", "generation": 3, "labels": {"a": "1"}}, "status": {}}

    def variant(**meta: Any) -> dict[str, Any]:
        return {"metadata": {**base["metadata"], **meta}, "status": {"inputTokens": 9}}

    assert not spec_or_metadata_changed(base, variant(resourceVersion="42"))
    assert spec_or_metadata_changed(base, variant(generation=4))
    assert spec_or_metadata_changed(base, variant(labels={"a": "2"}))
    assert spec_or_metadata_changed(base, variant(annotations={"x": "y"}))
    assert spec_or_metadata_changed(base, variant(deletionTimestamp="2026-12-06T00:00:00Z"))
    assert spec_or_metadata_changed({"metadata": {}}, {"metadata": {}}), "no generation: pass"


def test_errors_are_retried_rate_limited_logged_and_counted() -> None:
    clock = FakeClock()
    metrics = HealthMetrics(CollectorRegistry())
    attempts: list[str] = []

    def reconcile(key: str):
        attempts.append(key)
        if len(attempts) < 3:
            raise RuntimeError("apiserver hiccup")
        return DONE

    ctl = Controller("t", reconcile, clock=clock, metrics=metrics)
    ctl.process("ns/a")
    assert ctl.queue.num_requeues("ns/a") == 1
    assert ctl.queue.get(timeout=0) is None, "retry waits for the rate limiter"
    clock.advance(0.005)
    assert ctl.queue.get(timeout=0) == "ns/a"
    ctl.queue.done("ns/a")
    ctl.process("ns/a")
    assert ctl.queue.num_requeues("ns/a") == 2
    clock.advance(0.009)
    assert ctl.queue.get(timeout=0) is None
    clock.advance(0.001)
    assert ctl.queue.get(timeout=0) == "ns/a"
    ctl.queue.done("ns/a")
    ctl.process("ns/a")
    assert ctl.queue.num_requeues("ns/a") == 0, "success forgets the failures"
    assert sample(metrics, "infercost_reconcile_total", controller="t", result="error") == 2
    assert sample(metrics, "infercost_reconcile_total", controller="t", result="success") == 1


def test_api_errors_are_logged_in_one_line_bugs_with_their_traceback() -> None:
    failures = iter(
        [
            ForbiddenError(403, "Forbidden", "usagereports is forbidden", method="PUT", path="/x"),
            KeyError("spec"),
        ]
    )

    def reconcile(key: str):
        raise next(failures)

    ctl = Controller("t", reconcile, clock=FakeClock(), metrics=HealthMetrics(CollectorRegistry()))
    with structlog.testing.capture_logs() as logs:
        ctl.process("ns/a")
        ctl.process("ns/a")
    api, bug = (entry for entry in logs if entry["event"] == "reconcile failed")
    assert api["error"] == "ForbiddenError: PUT /x: HTTP 403 Forbidden: usagereports is forbidden"
    assert api["exc_info"] is False
    assert api["key"] == "ns/a" and api["retries"] == 1
    assert bug["error"] == "KeyError: 'spec'" and bug["exc_info"] is True


def test_retry_result_is_rate_limited_but_not_an_error() -> None:
    clock = FakeClock()
    metrics = HealthMetrics(CollectorRegistry())
    ctl = Controller("t", lambda key: RETRY, clock=clock, metrics=metrics)
    ctl.process("ns/a")
    assert sample(metrics, "infercost_reconcile_total", controller="t", result="requeue") == 1
    assert sample(metrics, "infercost_reconcile_total", controller="t", result="error") == 0
    assert ctl.queue.waiting() == 1


def test_queue_depth_gauge_follows_the_queue() -> None:
    metrics = HealthMetrics(CollectorRegistry())
    ctl = Controller("depth", lambda key: DONE, clock=FakeClock(), metrics=metrics)
    for key in ("a", "b", "c", "a"):
        ctl.enqueue(key)
    assert sample(metrics, "infercost_workqueue_depth", controller="depth") == 3


def test_resync_period_below_one_second_is_refused() -> None:
    with pytest.raises(ValueError, match="1 s"):
        Controller("t", lambda key: DONE, resync_seconds=0.5)

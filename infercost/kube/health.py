"""The operator's health series (SPEC §6.1), defined once, on an injectable registry.

Every replica exports these, leader or not. The machinery in this package updates the leader,
reconcile, queue and watch series; the collector updates the scrape series; the status writer
calls :meth:`HealthMetrics.object_updated` whenever a sample confirms an object's figures and
:meth:`HealthMetrics.object_deleted` when it goes away, so a deleted object's series
disappears. Tests pass a fresh ``CollectorRegistry`` to count exactly what they caused.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["RECONCILE_RESULTS", "HealthMetrics"]

# Values of the ``result`` label of infercost_reconcile_total.
RECONCILE_RESULTS = ("success", "requeue", "error")

# Reconciles are short (cache read, pure compute, maybe one PATCH); scrapes up to the timeout.
_RECONCILE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SCRAPE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class HealthMetrics:
    """All health metric objects, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.leader = Gauge(
            "infercost_leader",
            "1 when this replica holds the leader Lease, else 0.",
            registry=r,
        )
        self.reconcile_total = Counter(
            "infercost_reconcile",
            "Reconciles run, by controller and result (success, requeue, error).",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_duration_seconds = Histogram(
            "infercost_reconcile_duration_seconds",
            "Time spent in one reconcile, by controller.",
            ["controller"],
            buckets=_RECONCILE_BUCKETS,
            registry=r,
        )
        self.workqueue_depth = Gauge(
            "infercost_workqueue_depth",
            "Keys ready and waiting for a worker, by controller.",
            ["controller"],
            registry=r,
        )
        self.watch_restarts_total = Counter(
            "infercost_watch_restarts",
            "Watches re-established after an error, an expired resourceVersion (410) or a "
            "read timeout, by resource.",
            ["resource"],
            registry=r,
        )
        self.object_last_updated_timestamp_seconds = Gauge(
            "infercost_object_last_updated_timestamp_seconds",
            "Epoch seconds of the latest sample that confirmed an object's status figures.",
            ["kind", "object", "object_namespace"],
            registry=r,
        )
        self.scrape_duration_seconds = Histogram(
            "infercost_scrape_duration_seconds",
            "Duration of one scrape of an inference pod or exporter, by target kind.",
            ["target_kind"],
            buckets=_SCRAPE_BUCKETS,
            registry=r,
        )
        self.scrape_errors_total = Counter(
            "infercost_scrape_errors",
            "Failed scrapes, by target kind and reason.",
            ["target_kind", "reason"],
            registry=r,
        )
        self.leader.set(0)

    def object_updated(self, kind: str, name: str, namespace: str, timestamp: float) -> None:
        """Record the time of the data last written to an object's status."""
        self.object_last_updated_timestamp_seconds.labels(
            kind=kind, object=name, object_namespace=namespace
        ).set(timestamp)

    def object_deleted(self, kind: str, name: str, namespace: str) -> None:
        """Drop the series of an object that no longer exists."""
        with contextlib.suppress(KeyError):
            self.object_last_updated_timestamp_seconds.remove(kind, name, namespace)

"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does it.

Only the leader samples and writes; standbys keep warm caches and take over when the Lease
expires or is released. The rules, with client-go's defaults (15 s lease, 10 s renew deadline,
2 s retry, jitter 1.2):

- a candidate reads the Lease every ``retry_period`` (×1..1.2 jitter); it may take it when
  nobody holds it (empty ``holderIdentity``) or when the record it observed has not changed
  for ``lease_duration`` seconds of *its own* monotonic clock (never the holder's
  ``renewTime``: clocks of two machines disagree);
- every write is a PUT carrying the resourceVersion it read, so of two candidates only one
  wins; the other gets 409 and tries again later;
- the leader renews every ``retry_period``; if it has not renewed successfully for
  ``renew_deadline`` seconds it has lost the Lease (another replica may lead after
  ``lease_duration``), and ``on_stopped_leading`` runs: the operator exits then;
- on a clean stop the leader releases the Lease (empty holder, 1 s duration, like client-go's
  ``ReleaseOnCancel``) so a standby takes over at its next retry instead of after 15 s.
"""

from __future__ import annotations

import math
import random
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from infercost.kube.clock import Clock, RealClock
from infercost.kube.health import HealthMetrics
from infercost.kube.rest import LEASES, ApiError, ConflictError, NotFoundError, RestClient

__all__ = ["JITTER_FACTOR", "LeaderElector", "default_identity"]

JITTER_FACTOR = 1.2
log = structlog.get_logger("infercost.kube.leaderelection")


def default_identity() -> str:
    """``<hostname>_<uuid>``: unique even when two replicas share a pod name."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _micro_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaigns for the Lease ``namespace/name`` until :meth:`stop`."""

    def __init__(
        self,
        rest: RestClient,
        *,
        namespace: str,
        name: str,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        release_on_stop: bool = True,
        clock: Clock | None = None,
        metrics: HealthMetrics | None = None,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        on_new_leader: Callable[[str], None] | None = None,
        rand: random.Random | None = None,
    ) -> None:
        if lease_duration <= renew_deadline:
            raise ValueError("lease duration must be greater than the renew deadline")
        if renew_deadline <= JITTER_FACTOR * retry_period:
            raise ValueError("renew deadline must be greater than 1.2 × the retry period")
        if retry_period <= 0:
            raise ValueError("retry period must be positive")
        self.rest = rest
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_stop = release_on_stop
        self.clock = clock or RealClock()
        self.metrics = metrics
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self._rand = rand or random.Random()
        self._stop = threading.Event()
        self._leading = threading.Event()
        self._thread: threading.Thread | None = None
        # What we last saw of the Lease, and when (our monotonic clock).
        self._observed: dict[str, Any] | None = None
        self._observed_rv = ""
        self._observed_at = 0.0
        self._last_leader = ""
        self._readable = threading.Event()
        self._log = log.bind(lease=f"{namespace}/{name}", identity=self.identity)

    # -- public ------------------------------------------------------------------------------

    def is_leader(self) -> bool:
        return self._leading.is_set()

    def lease_readable(self) -> bool:
        """Whether the last attempt could read (or create) the Lease: a standby that cannot is
        no ready replacement for the leader."""
        return self._readable.is_set()

    @property
    def leader(self) -> str:
        """The holder last observed ("" when unknown or free)."""
        return self._last_leader

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop campaigning; the run loop releases the Lease if it holds it."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the election loop, and with it both callbacks, to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Acquire, then renew until lost or stopped (blocks)."""
        if not self._acquire():
            return
        self._set_leading(True)
        started: threading.Thread | None = None
        if self.on_started_leading is not None:
            # On its own thread, so that a slow callback never delays a renewal; it is joined
            # below, so that on_stopped_leading never overtakes it.
            started = threading.Thread(target=self.on_started_leading, name="leading", daemon=True)
            started.start()
        self._renew_loop()
        lost = not self._stop.is_set()
        if not lost and self.release_on_stop:
            self.release()
        self._set_leading(False)
        if lost:
            self._log.error("leader lease lost")
        if started is not None:
            started.join()
        if self.on_stopped_leading is not None:
            self.on_stopped_leading()

    # -- the protocol ------------------------------------------------------------------------

    def _jittered(self) -> float:
        return self.retry_period * (1 + self._rand.random() * (JITTER_FACTOR - 1))

    def _acquire(self) -> bool:
        self._log.info("campaigning for the leader lease")
        while not self._stop.is_set():
            if self._try_acquire_or_renew():
                self._log.info("leader lease acquired")
                return True
            if self.clock.sleep(self._jittered(), self._stop):
                break
        return False

    def _renew_loop(self) -> None:
        while not self._stop.is_set():
            deadline = self.clock.monotonic() + self.renew_deadline
            renewed = False
            while not self._stop.is_set() and self.clock.monotonic() < deadline:
                if self._try_acquire_or_renew():
                    renewed = True
                    break
                if self.clock.sleep(self.retry_period, self._stop):
                    return
            if not renewed:
                return  # lost (or stopped while renewing)
            if self.clock.sleep(self.retry_period, self._stop):
                return

    def _lease_body(self, spec: Mapping[str, Any], rv: str) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if rv:
            metadata["resourceVersion"] = rv
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": dict(spec),
        }

    def _try_acquire_or_renew(self) -> bool:
        now = self.clock.now()
        now_text = _micro_time(now)
        mono = self.clock.monotonic()
        desired: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
            "acquireTime": now_text,
            "renewTime": now_text,
            "leaseTransitions": 0,
        }
        try:
            current = self.rest.get(LEASES, self.name, self.namespace)
        except NotFoundError:
            try:
                created = self.rest.create(LEASES, self._lease_body(desired, ""), self.namespace)
            except ConflictError:
                self._readable.set()  # another candidate created it first: it exists
                return False
            except ApiError as exc:
                self._readable.clear()
                self._log.warning("lease creation failed", error=str(exc))
                return False
            self._readable.set()
            self._observe(created, mono)
            return True
        except ApiError as exc:
            self._readable.clear()
            self._log.warning("cannot read the leader lease", error=str(exc))
            return False
        self._readable.set()

        spec = current.get("spec") or {}
        rv = str((current.get("metadata") or {}).get("resourceVersion") or "")
        if self._observed is None or self._observed != spec:
            self._observe(current, mono)
        holder = str(spec.get("holderIdentity") or "")
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        held_by_other = holder not in ("", self.identity)
        if held_by_other and self._observed_at + duration > mono:
            return False
        if holder == self.identity:
            desired["acquireTime"] = spec.get("acquireTime") or now_text
            desired["leaseTransitions"] = int(spec.get("leaseTransitions") or 0)
        else:
            desired["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        try:
            updated = self.rest.replace(LEASES, self._lease_body(desired, rv), self.namespace)
        except ConflictError:
            self._log.debug("lease update lost a race")
            return False
        except ApiError as exc:
            self._log.warning("lease update failed", error=str(exc))
            return False
        self._observe(updated, mono)
        return True

    def _observe(self, lease: Mapping[str, Any], mono: float) -> None:
        spec = dict(lease.get("spec") or {})
        self._observed = spec
        self._observed_rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        self._observed_at = mono
        holder = str(spec.get("holderIdentity") or "")
        if holder != self._last_leader:
            self._last_leader = holder
            if holder:
                self._log.info("new leader observed", leader=holder)
                if self.on_new_leader is not None:
                    self.on_new_leader(holder)

    def release(self) -> bool:
        """Give the Lease up if we hold it (empty holder): a standby takes it at once."""
        try:
            current = self.rest.get(LEASES, self.name, self.namespace)
        except ApiError as exc:
            self._log.warning("cannot read the lease to release it", error=str(exc))
            return False
        spec = current.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            return False
        now_text = _micro_time(self.clock.now())
        released = {
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": now_text,
            "renewTime": now_text,
            "leaseTransitions": int(spec.get("leaseTransitions") or 0),
        }
        rv = str((current.get("metadata") or {}).get("resourceVersion") or "")
        try:
            self.rest.replace(LEASES, self._lease_body(released, rv), self.namespace)
        except ApiError as exc:
            self._log.warning("lease release failed", error=str(exc))
            return False
        self._log.info("leader lease released")
        return True

    def _set_leading(self, leading: bool) -> None:
        if leading:
            self._leading.set()
        else:
            self._leading.clear()
        if self.metrics is not None:
            self.metrics.leader.set(1 if leading else 0)

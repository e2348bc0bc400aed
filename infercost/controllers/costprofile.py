"""The CostProfile controller: status, Events and series of every CostProfile (SPEC §2.1).

``read cache → compute the desired status (pure) → write only the diff``:

- the spec comes from the CostProfile informer's cache and is parsed with
  :func:`infercost.api.parse_costprofile`; a spec the schema let through but the parser rejects
  (e.g. an invalid label key in ``nodeSelector``) gives ``Ready=False/InvalidSpec`` naming the
  field, and no figures;
- power, nodes, GPUs and pods come from the sampler's latest :class:`Sample`
  (:mod:`.sampling`), the figures from :func:`infercost.engine.evaluate_profile` at the
  sample time; ``lastUpdated`` is the sample time;
- ``Ready`` is ``True/CostComputed`` when a sample covering the profile completed at most three
  scrape intervals ago, ``False/Stale`` when it is older (or none came within three intervals of the
  profile appearing), ``False/Overlap`` when every node the selector matches belongs to an older
  profile (:mod:`.membership`);
- ``DCGMReachable`` and ``MetricsScraped`` follow the SPEC tables;
- the status is written through :class:`~infercost.kube.status.StatusWriter` (conditions,
  counts and node sets at once; money at most once per ``--status-interval``), Events are
  recorded when a condition changes, and :class:`~infercost.outputs.metrics.CostProfileCollector`
  gets the profile's series.

Profiles outside ``--profile-namespaces`` are ignored completely: no status, no Events, no
series. Every sample enqueues every profile; a reconcile asks to be requeued just after the
moment its sample would turn stale, so ``Stale`` appears even when the sampler stops.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
import structlog

from infercost.api import (
    COSTPROFILE,
    CostProfileSpec,
    PowerSource,
    ValidationError,
    parse_costprofile,
)
from infercost.collect.scraping import FAILED
from infercost.controllers.membership import namespace_allowed
from infercost.controllers.sampling import (
    ProfileSample,
    Sample,
    Sampler,
    spec_problems,
)
from infercost.controllers.wording import (
    DCGMReason,
    dcgm_reachable,
    format_gpus,
    format_names,
    gpu_count_message,
    power_source,
)
from infercost.engine.costmodel import ProfileCost, evaluate_profile
from infercost.kube.clock import Clock
from infercost.kube.conditions import find_condition, format_time, set_condition
from infercost.kube.controller import DONE, RETRY, Controller, RequeueAfter, Result
from infercost.kube.events import EventRecorder, ObjectRef
from infercost.kube.status import StatusWriter, WriteOutcome
from infercost.outputs.metrics import CostProfileCollector, CostProfileSeries, NodePowerSeries

__all__ = [
    "DCGM_REACHABLE",
    "METRICS_SCRAPED",
    "READY",
    "STALE_INTERVALS",
    "CostProfileReconciler",
    "Figures",
    "build_costprofile_controller",
    "clip_message",
    "compute_figures",
    "metrics_scraped",
]

if TYPE_CHECKING:
    from infercost.controllers.context import OperatorContext

log = structlog.get_logger("infercost.controllers.costprofile")

READY = "Ready"
DCGM_REACHABLE = "DCGMReachable"
METRICS_SCRAPED = "MetricsScraped"

UNTRUSTED_EXPORTER = "UntrustedExporter"
"""Reason of the Warning Event naming a look-alike DCGM exporter outside --dcgm-namespaces."""

STALE_INTERVALS = 3
"""A sample older than this many scrape intervals makes a profile ``Stale``."""

MONEY_DECIMALS = 6
"""USD figures are rounded to 1e-6, the precision status writes compare at."""
WATTS_DECIMALS = 2

_FIGURE_FIELDS = (
    "hourlyCostUSD",
    "amortizationRatePerHour",
    "electricityCostPerHour",
    "currentPowerDrawWatts",
    "powerSource",
    "matchedNodes",
    "matchedGPUs",
    "gpusReporting",
    "inferencePods",
)


MAX_MESSAGE_CHARS = 2048
"""Condition messages are cut here (at a ``; `` boundary when possible): a pool of hundreds of
nodes without exporters would otherwise exceed what ``kubectl describe`` can show, and the API
server's 32 KiB limit."""


def clip_message(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``message`` cut to at most ``limit`` characters, ending in ``; …`` when cut."""
    if len(message) <= limit:
        return message
    suffix = "; …"
    head = message[: limit - len(suffix)]
    cut = head.rsplit("; ", 1)[0] if "; " in head else head
    return cut + suffix


def _money(value: float) -> float:
    return round(value, MONEY_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def metrics_scraped(profile: ProfileSample) -> tuple[str, str, str]:
    """(status, reason, message) of ``MetricsScraped``: True, or False with
    ``k/n inference pods failing: <first error>`` (pods with unusable annotations count as
    failing; pods still loading their model do not)."""
    failing: list[tuple[str, str]] = [
        (str(s.target.pod), str(s.error)) for s in profile.pods if s.state == FAILED
    ]
    failing += [(str(p.pod), str(p)) for p in profile.pod_problems]
    starting = profile.counts.starting
    total = profile.counts.pods + len(profile.pod_problems)
    note = f" ({starting} starting)" if starting else ""
    if failing:
        first = sorted(failing)[0][1]
        return (
            "False",
            "ScrapeFailed",
            f"{len(failing)}/{total} inference pods failing: {first}{note}",
        )
    if not total:
        return "True", "NoInferencePods", "no inference pods on the profile's nodes"
    ok = total - starting
    return "True", "Scraped", f"{ok}/{total} inference pods scraped{note}"


@attrs.frozen
class Figures:
    """The computed part of one profile's status (everything but conditions)."""

    cost: ProfileCost
    owned: tuple[str, ...]
    inference_pods: int
    gpu_count: int

    @property
    def power_source(self) -> PowerSource:
        return power_source(self.cost.power)

    def status_fields(self) -> dict[str, Any]:
        cost = self.cost
        return {
            "hourlyCostUSD": _money(cost.hourly_cost_usd),
            "amortizationRatePerHour": _money(cost.amortization_rate_per_hour),
            "electricityCostPerHour": _money(cost.electricity_cost_per_hour),
            "currentPowerDrawWatts": round(cost.current_power_draw_watts, WATTS_DECIMALS) + 0.0,
            "powerSource": self.power_source.value,
            "matchedNodes": list(self.owned),
            "matchedGPUs": round(cost.matched_gpus) if self.owned else 0,
            "gpusReporting": cost.gpus_reporting,
            "inferencePods": self.inference_pods,
        }


def compute_figures(spec: CostProfileSpec, profile: ProfileSample) -> Figures:
    """Cost and power of ``spec`` over the nodes it owned at the sample (pure)."""
    cost = evaluate_profile(
        spec.hardware,
        rate_per_kwh=spec.electricity.rate_per_kwh,
        pue_factor=spec.electricity.pue_factor,
        node_capacities=profile.node_gpus(),
        exporters=profile.exporter_statuses(),
        readings=profile.power_readings(),
        at=profile.time,
    )
    return Figures(
        cost=cost,
        owned=tuple(profile.membership.owned),
        inference_pods=profile.counts.pods + len(profile.pod_problems),
        gpu_count=spec.hardware.gpu_count,
    )


def _ready_true_message(figures: Figures, profile: ProfileSample) -> str:
    """Stable while the situation is: no times or measured values (a changed message is
    written at once, so it must not change with every sample)."""
    owned = figures.owned
    parts = []
    if owned:
        parts.append(
            f"cost computed from {len(owned)} node(s) and "
            f"{format_gpus(figures.cost.matched_gpus)} GPU(s)"
        )
    else:
        parts.append("the nodeSelector matches no node, so the whole amortization is pool idle")
    counted = gpu_count_message(figures.cost.amortization, figures.gpu_count)
    if owned and counted:
        parts.append(counted)
    lost = profile.membership.lost
    if lost:
        parts.append(_lost_message(lost))
    return "; ".join(parts)


def _lost_message(lost: Mapping[str, str]) -> str:
    by_owner: dict[str, list[str]] = {}
    for node, owner in sorted(lost.items()):
        by_owner.setdefault(owner, []).append(node)
    return "; ".join(
        f"node(s) {format_names(nodes)} also match the older CostProfile {owner}, which owns them"
        for owner, nodes in sorted(by_owner.items())
    )


def _overlap_message(profile: ProfileSample) -> str:
    return (
        f"every node the nodeSelector matches belongs to an older CostProfile: "
        f"{_lost_message(profile.membership.lost)}; this profile owns no node — narrow its "
        "nodeSelector or delete it"
    )


def _series(
    namespace: str, name: str, spec: CostProfileSpec, figures: Figures
) -> CostProfileSeries:
    cost = figures.cost
    return CostProfileSeries(
        namespace=namespace,
        name=name,
        gpu_model=spec.hardware.gpu_model,
        hourly_cost_usd=cost.hourly_cost_usd,
        amortization_per_hour_usd=cost.amortization_rate_per_hour,
        electricity_per_hour_usd=cost.electricity_cost_per_hour,
        power_watts=cost.current_power_draw_watts,
        power_source=figures.power_source.value,
        nodes=tuple(
            NodePowerSeries(node=n.node, gpus=n.measured) for n in cost.power.nodes if n.measured
        ),
    )


@attrs.frozen
class _Pending:
    uid: str
    generation: int
    since: float  # monotonic


class CostProfileReconciler:
    """Reconciles one CostProfile key at a time (thread-safe; several workers may share it)."""

    def __init__(
        self,
        *,
        profiles: Any,
        sampler: Sampler,
        writer: StatusWriter,
        events: EventRecorder,
        collector: CostProfileCollector,
        clock: Clock,
        scrape_interval: float,
        profile_namespaces: Sequence[str] = (),
        object_ref: Callable[[Any], ObjectRef],
    ) -> None:
        self.profiles = profiles
        self.sampler = sampler
        self.writer = writer
        self.events = events
        self.collector = collector
        self.clock = clock
        self.scrape_interval = scrape_interval
        self.profile_namespaces = tuple(profile_namespaces)
        self.object_ref = object_ref
        self._pending: dict[str, _Pending] = {}
        # profile key -> (pod, uid) of look-alike exporters already named in an Event
        self._untrusted_named: dict[str, set[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    @property
    def stale_after(self) -> float:
        return STALE_INTERVALS * self.scrape_interval

    # -- entry point -------------------------------------------------------------------------

    def reconcile(self, key: str) -> Result:
        namespace, _, name = key.partition("/")
        obj = self.profiles.store.get(key)
        if obj is None:
            self._forget(namespace, name)
            return DONE
        if not namespace_allowed(namespace, self.profile_namespaces):
            self._forget(namespace, name)
            return DONE
        meta = obj.get("metadata") or {}
        generation = int(meta.get("generation") or 0)
        current = obj.get("status") or {}
        now = self.clock.now()
        sample = self.sampler.latest()
        try:
            spec = parse_costprofile(obj, include_status=False).spec
        except ValidationError as exc:
            self.collector.remove(namespace, name)
            state = sample.profiles.get(key) if sample is not None else None
            return self._write(
                obj,
                self._invalid(
                    current,
                    generation,
                    exc,
                    now,
                    data_time=sample.time if sample is not None else now,
                    last_valid=state.spec_generation if state is not None else None,
                ),
            )

        profile = sample.profile(key) if sample is not None else None
        mono = self.clock.monotonic()
        if profile is None or dict(profile.membership.node_selector) != dict(spec.node_selector):
            return self._without_sample(
                obj=obj, key=key, current=current, generation=generation, now=now, mono=mono
            )
        with self._lock:
            self._pending.pop(key, None)

        figures = compute_figures(spec, profile)
        # Age from the sample's completion: a cycle slower than the interval must not make
        # its own data look stale (SPEC §2.1 Ready).
        age = mono - profile.completed_monotonic
        desired = self._computed(
            current=current,
            generation=generation,
            figures=figures,
            profile=profile,
            age=age,
            now=now,
        )
        self.collector.update(_series(namespace, name, spec, figures))
        self._name_untrusted_exporters(obj, key, profile)
        result = self._write(obj, desired)
        if isinstance(result, RequeueAfter):
            # look again just after the sample turns stale, in case no newer one comes
            until_stale = self.stale_after - age
            if until_stale > 0:
                return RequeueAfter(min(result.seconds, until_stale + 0.05))
        return result

    # -- desired states (pure apart from reading the clock they are given) ---------------------

    def _conditions(
        self,
        current: Mapping[str, Any],
        generation: int,
        now: datetime,
        entries: Sequence[tuple[str, str, str, str]],
    ) -> list[dict[str, Any]]:
        conditions: list[dict[str, Any]] = [dict(c) for c in current.get("conditions") or ()]
        for type_, status, reason, message in entries:
            conditions = set_condition(
                conditions,
                type_,
                status=status,
                reason=reason,
                message=clip_message(message),
                observed_generation=generation,
                now=now,
            )
        order = {READY: 0, DCGM_REACHABLE: 1, METRICS_SCRAPED: 2}
        return sorted(conditions, key=lambda c: order.get(c.get("type", ""), 3))

    def _computed(
        self,
        *,
        current: Mapping[str, Any],
        generation: int,
        figures: Figures,
        profile: ProfileSample,
        age: float,
        now: datetime,
    ) -> dict[str, Any]:
        power = figures.cost.power
        if profile.membership.overlap:
            ready = ("False", "Overlap", _overlap_message(profile))
            dcgm = (
                "False",
                DCGMReason.NOT_FOUND.value,
                "the profile owns no node (all its nodes belong to an older CostProfile), so no "
                "GPU power is measured for it",
            )
        else:
            reachable = dcgm_reachable(power)
            dcgm = (reachable.status, reachable.reason.value, reachable.message)
            if age > self.stale_after:
                ready = ("False", "Stale", self._stale_message(profile.time))
            else:
                ready = ("True", "CostComputed", _ready_true_message(figures, profile))
        scraped = metrics_scraped(profile)
        status = {
            **{k: v for k, v in current.items() if k not in ("conditions",)},
            **figures.status_fields(),
            "observedGeneration": generation,
            "lastUpdated": format_time(profile.time),
        }
        status["conditions"] = self._conditions(
            current,
            generation,
            now,
            [
                (READY, *ready),
                (DCGM_REACHABLE, *dcgm),
                (METRICS_SCRAPED, *scraped),
            ],
        )
        return status

    def _stale_message(self, since: datetime | None) -> str:
        window = f"{STALE_INTERVALS} scrape intervals of {self.scrape_interval:g}s"
        if since is None:
            return (
                f"no sample of this profile's nodes within {window}; check that the operator's "
                "leader is running and sampling"
            )
        return (
            f"the last sample of this profile's nodes is from {format_time(since)}, more than "
            f"{window} ago; the figures shown are from then — check that the operator's leader "
            "is running and sampling"
        )

    def _invalid(
        self,
        current: Mapping[str, Any],
        generation: int,
        exc: ValidationError,
        now: datetime,
        *,
        data_time: datetime,
        last_valid: int | None,
    ) -> dict[str, Any]:
        """``Ready=False/InvalidSpec``: figures, ``DCGMReachable`` and ``MetricsScraped`` are
        dropped (nothing vouches for them under this spec); ``lastUpdated`` is the time of the
        latest sample (of ``now`` before the first)."""
        message = f"invalid spec: {spec_problems(exc)}"
        if last_valid is not None and last_valid != generation:
            message += (
                f"; cost is booked with the last valid spec (generation {last_valid}) "
                "until it is fixed"
            )
        status = {
            k: v
            for k, v in current.items()
            if k not in _FIGURE_FIELDS and k not in ("conditions", "lastUpdated")
        }
        status["observedGeneration"] = generation
        status["lastUpdated"] = format_time(data_time)
        ready = find_condition(current.get("conditions"), READY)
        status["conditions"] = self._conditions(
            {"conditions": [ready] if ready is not None else []},
            generation,
            now,
            [(READY, "False", "InvalidSpec", message)],
        )
        return status

    def _without_sample(
        self,
        *,
        obj: Mapping[str, Any],
        key: str,
        current: Mapping[str, Any],
        generation: int,
        now: datetime,
        mono: float,
    ) -> Result:
        """No sample covers this profile (as its spec is now) yet: wait for one, and call the
        profile stale when none comes within :data:`STALE_INTERVALS` intervals."""
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        with self._lock:
            pending = self._pending.get(key)
            if pending is None or pending.uid != uid or pending.generation != generation:
                pending = self._pending[key] = _Pending(uid, generation, mono)
        self.sampler.request_sample()
        waited = mono - pending.since
        if waited < self.stale_after:
            return RequeueAfter(min(self.scrape_interval, self.stale_after - waited + 0.05))
        last = current.get("lastUpdated")
        since = _parse_rfc3339(last) if isinstance(last, str) else None
        status = {k: v for k, v in current.items() if k != "conditions"}
        status["observedGeneration"] = generation
        status["conditions"] = self._conditions(
            current, generation, now, [(READY, "False", "Stale", self._stale_message(since))]
        )
        return self._write(obj, status)

    # -- the write and what follows it ---------------------------------------------------------

    def _write(self, obj: Mapping[str, Any], desired: Mapping[str, Any]) -> Result:
        old_conditions = (obj.get("status") or {}).get("conditions") or ()
        result = self.writer.write(obj, desired)
        if result.outcome is WriteOutcome.CONFLICT:
            return RETRY
        if result.outcome is WriteOutcome.GONE:
            meta = obj.get("metadata") or {}
            self._forget(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            return DONE
        if result.outcome is WriteOutcome.WRITTEN:
            self._record_events(obj, old_conditions, desired.get("conditions") or ())
        requeue = self.scrape_interval
        if result.outcome is WriteOutcome.DEFERRED and result.due_in is not None:
            requeue = min(requeue, result.due_in + 0.05)
        return RequeueAfter(requeue)

    def _record_events(
        self,
        obj: Mapping[str, Any],
        old: Sequence[Mapping[str, Any]],
        new: Sequence[Mapping[str, Any]],
    ) -> None:
        ref = self.object_ref(obj)
        for type_ in (READY, DCGM_REACHABLE, METRICS_SCRAPED):
            before = find_condition(old, type_)
            after = find_condition(new, type_)
            if after is None:
                continue
            same = before is not None and (before.get("status"), before.get("reason")) == (
                after.get("status"),
                after.get("reason"),
            )
            if same:
                continue
            healthy = after.get("status") == "True"
            if healthy and before is None and type_ != READY:
                continue  # a first healthy state is not news; Ready's first True is
            reason = str(after.get("reason"))
            message = str(after.get("message") or "")
            if healthy:
                self.events.normal(ref, reason, f"{type_}: {message}")
            else:
                self.events.warning(ref, reason, f"{type_}: {message}")

    def _name_untrusted_exporters(
        self, obj: Mapping[str, Any], key: str, profile: ProfileSample
    ) -> None:
        """One Warning Event per look-alike exporter on the profile's nodes (SPEC §3.2)."""
        with self._lock:
            named = self._untrusted_named.setdefault(key, set())
            new = [u for u in profile.untrusted_exporters if (str(u.pod), u.pod.uid) not in named]
            named.update((str(u.pod), u.pod.uid) for u in new)
        if not new:
            return
        pods = "; ".join(f"pod {u.pod} on node {u.node}" for u in new)
        trusted = ", ".join(self.sampler.settings.dcgm_namespaces)
        self.events.warning(
            self.object_ref(obj),
            UNTRUSTED_EXPORTER,
            f"ignored {pods}: labelled like a DCGM exporter but outside --dcgm-namespaces "
            f"({trusted}); its power readings and GPU holders are not used",
        )

    def _forget(self, namespace: str, name: str) -> None:
        self.collector.remove(namespace, name)
        self.writer.forget(namespace, name)
        with self._lock:
            self._pending.pop(f"{namespace}/{name}", None)
            self._untrusted_named.pop(f"{namespace}/{name}", None)


def _parse_rfc3339(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


# -- wiring ------------------------------------------------------------------------------------


def build_costprofile_controller(context: OperatorContext) -> Controller:
    """The ``costprofile`` component of ``infercost run`` (leader only).

    Subscribes to the operator's sampler (:attr:`OperatorContext.sampler`), reconciles every
    CostProfile after each sample and registers the CostProfile series.
    """
    sampler = context.sampler
    profiles = context.custom_informer(COSTPROFILE.kind)
    collector = CostProfileCollector()
    context.register_collector(collector, leader_only=True)
    reconciler = CostProfileReconciler(
        profiles=profiles,
        sampler=sampler,
        writer=context.status_writer(COSTPROFILE.kind),
        events=context.events,
        collector=collector,
        clock=context.clock,
        scrape_interval=context.config.scrape_interval,
        profile_namespaces=context.config.profile_namespaces,
        object_ref=lambda obj: context.object_ref(COSTPROFILE.kind, obj),
    )
    controller: Controller = context.controller(
        "costprofile",
        reconciler.reconcile,
        primary=profiles,
        requires=[context.informers.pods(), context.informers.nodes()],
    )

    def enqueue_all(_: Sample) -> None:
        for key in profiles.store.list_keys():
            controller.enqueue(key)

    sampler.add_listener(enqueue_all)
    return controller

"""The TokenBudget controller: a namespace's spend this month against its limit (SPEC §2.3).

``read cache → sum the ledger's lines (under the keeper's lock) → evaluate_budget (pure) →
write only the diff``, plus the budget's PrometheusRule. Budgets are reconciled after every
booking (the ledger keeper notifies) and when they change.

- ``currentSpendUSD`` is the sum of the scope namespace's ledger lines of the month over every
  CostProfile, idle share included; no UsageReport is involved. The month is the one of the
  time of the data (the ledger's last booking), so a budget restarts from 0 with the first
  booking of a new month, also when the month turned while the operator was down (the
  restored ledger splits the gap at midnight). The run rate sums the lines of that day and the
  7 days before it, across a month boundary (:func:`~infercost.engine.budget.run_rate_window`).
  Per-(day, namespace) sums are shared by all budgets: a closed day is summed once, the open
  days once per booking.
- Status writes: state, thresholds crossed and conditions at once; money, utilization and
  ``projectedExhaustion`` (appearing or going too) at most once per status interval.
- Events on every change of state (Warning for Warning, Critical and Exceeded; Normal for OK),
  on every threshold crossed (Warning for warning and critical thresholds, Normal for info), and
  when alerts go off or come back, or the scope namespace is found missing.
- The PrometheusRule ``infercost-budget-<name>`` is created, replaced or deleted only when its
  content differs from what the cluster holds: what was last written or read is remembered and
  re-read every :data:`RULE_RECHECK_SECONDS`, never written per reconcile. Without the
  PrometheusRule CRD the budget works as usual, ``Ready`` stays True and says alerts are off
  (one Warning Event); whether the CRD is served is asked of API discovery (no RBAC needed)
  at most every :data:`CRD_RECHECK_SECONDS`, so the rule appears by itself once the CRD is
  installed. A 404 from the resource itself (the CRD removed) is noticed at once.
- A scope namespace that does not exist has no lines, hence spend 0; while the spend is 0 the
  controller asks for the Namespace by name (at most every :data:`NAMESPACE_RECHECK_SECONDS`
  per namespace) so that ``Ready``'s message can say it does not exist. Without permission to
  get Namespaces the message says only that nothing was booked.

This module must not read the ledger outside the keeper's lock, nor write a PrometheusRule
it does not own (one of that name without InferCost's labels or owner reference is left alone,
and ``Ready``'s message says why alerts are off).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import structlog

from infercost.api import TOKENBUDGET, TokenBudget, ValidationError
from infercost.api.resources import parse_tokenbudget
from infercost.controllers.ledger import LedgerKeeper
from infercost.engine.budget import (
    BudgetFigures,
    BudgetState,
    evaluate_budget,
    month_period,
    run_rate_window,
)
from infercost.engine.ledger import Ledger
from infercost.engine.periods import day_label
from infercost.kube.clock import Clock
from infercost.kube.conditions import find_condition, format_time, set_condition
from infercost.kube.controller import (
    DONE,
    RETRY,
    Controller,
    RequeueAfter,
    Result,
    spec_or_metadata_changed,
)
from infercost.kube.events import NORMAL, WARNING, EventRecorder, ObjectRef
from infercost.kube.rest import (
    ApiError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    Resource,
    RestClient,
)
from infercost.kube.status import FieldClass, StatusRules, StatusWriter, WriteOutcome
from infercost.kube.transforms import parse_time
from infercost.outputs.budgetmetrics import BudgetCollector, BudgetSeries
from infercost.outputs.rules import (
    BUDGET_LABEL,
    GROUP,
    KIND,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PLURAL,
    VERSION,
    render_budget_rule,
    rule_name,
)

__all__ = [
    "BUDGET_RULES",
    "CRD_RECHECK_SECONDS",
    "NAMESPACE_RECHECK_SECONDS",
    "PROMETHEUSRULES",
    "RULE_RECHECK_SECONDS",
    "BudgetRules",
    "NamespaceCheck",
    "RuleOutcome",
    "SpendIndex",
    "SpendView",
    "TokenBudgetReconciler",
    "budget_events",
    "budget_status",
    "build_tokenbudget_controller",
    "read_spend",
]

log = structlog.get_logger("infercost.controllers.tokenbudget")

PROMETHEUSRULES = Resource(GROUP, VERSION, PLURAL, KIND, True)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False)

READY = "Ready"
BUDGET_EXCEEDED = "BudgetExceeded"

CRD_RECHECK_SECONDS = 120.0
"""While the PrometheusRule CRD is missing, API discovery is asked again after this long."""
RULE_RECHECK_SECONDS = 600.0
"""A rule known to be right is read again after this long (someone may have edited it)."""
NAMESPACE_RECHECK_SECONDS = 300.0
"""Whether a scope namespace exists is asked again after this long."""

BUDGET_RULES = StatusRules.default(
    fields={
        "currentSpendUSD": FieldClass.MONEY,
        "projectedSpendUSD": FieldClass.MONEY,
        "utilizationPercent": FieldClass.MONEY,
        "projectedExhaustion": FieldClass.CADENCE,
        "state": FieldClass.SIGNIFICANT,
    },
    list_keys={"thresholdsCrossed": ("percent",)},
)
"""State, the set of thresholds crossed, conditions and the rule reference are written at once;
amounts and the exhaustion time once per status interval."""

_WARNING_SEVERITIES = frozenset({"warning", "critical"})
_WARNING_STATES = frozenset({s.value for s in BudgetState if s is not BudgetState.OK})


# ---------------------------------------------------------------------------------------------
# spend from the ledger


class SpendIndex:
    """Cost per (UTC day, namespace) over every CostProfile, idle share included.

    Shared by all budgets and read under the keeper's lock. A closed day never changes, so it
    is summed once (again only if the ledger object is replaced, by a restore); the open days
    are summed again when the ledger has booked since.
    """

    def __init__(self) -> None:
        self._ledger: Ledger | None = None
        self._closed: dict[str, tuple[int, dict[str, float]]] = {}
        self._open: dict[str, dict[str, float]] = {}
        self._open_time: float | None = None
        self._open_valid = False

    def _follow(self, ledger: Ledger) -> None:
        if ledger is not self._ledger:
            self._ledger = ledger
            self._closed = {}
            self._open_valid = False
        if not self._open_valid or self._open_time != ledger.last_time:
            sums: dict[str, dict[str, float]] = {}
            for (_, day, _, namespace, _), line in ledger.lines.items():
                by_ns = sums.setdefault(day, {})
                by_ns[namespace] = by_ns.get(namespace, 0.0) + line.cost_usd
            self._open = sums
            self._open_time = ledger.last_time
            self._open_valid = True

    def _closed_day(self, ledger: Ledger, day: str) -> Mapping[str, float]:
        lines = ledger.closed.get(day)
        if not lines:
            return {}
        cached = self._closed.get(day)
        if cached is not None and cached[0] == len(lines):
            return cached[1]
        sums: dict[str, float] = {}
        for (_, _, _, namespace, _), line in lines.items():
            sums[namespace] = sums.get(namespace, 0.0) + line.cost_usd
        self._closed[day] = (len(lines), sums)
        return sums

    def spend_usd(self, ledger: Ledger, namespace: str, days: Iterable[str]) -> float:
        """The namespace's cost in the lines of ``days`` (labels ``YYYY-MM-DD``)."""
        self._follow(ledger)
        total = 0.0
        for day in days:
            total += self._closed_day(ledger, day).get(namespace, 0.0)
            total += self._open.get(day, {}).get(namespace, 0.0)
        return total


@attrs.frozen
class SpendView:
    """What one reconcile reads from the ledger."""

    last_updated: dt.datetime
    """The time of the data: the ledger's last booking (now, before the first one)."""
    booked: bool
    spend_usd: float
    window_spend_usd: float
    window_hours: float


def _from_epoch(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC)


def _day_labels(start: dt.datetime, last: dt.datetime) -> list[str]:
    """Day labels from ``start``'s day to ``last``'s day, both included."""
    labels = []
    day = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    while day <= last:
        labels.append(day_label(day))
        day += dt.timedelta(days=1)
    return labels


def read_spend(ledger: Ledger, index: SpendIndex, namespace: str, now: dt.datetime) -> SpendView:
    """Month-to-date and run-rate-window spend of ``namespace`` (call under the keeper's lock)."""
    last = _from_epoch(ledger.last_time)
    at = last or now
    month = month_period(at)
    window = run_rate_window(at, _from_epoch(ledger.first_sample))
    return SpendView(
        last_updated=at,
        booked=last is not None,
        spend_usd=index.spend_usd(ledger, namespace, _day_labels(month.start, at)),
        window_spend_usd=index.spend_usd(ledger, namespace, _day_labels(window.start, at)),
        window_hours=window.hours,
    )


# ---------------------------------------------------------------------------------------------
# status and events (pure)


ALERTS_OFF = "alerts are off: "
"""How every note about missing alerts begins (its going away is an Event too)."""


@attrs.frozen
class Note:
    """A remark appended to ``Ready``'s message, announced by a Warning Event ``reason``
    when it appears."""

    text: str
    reason: str


def budget_status(
    *,
    current: Mapping[str, Any],
    generation: int,
    figures: BudgetFigures,
    last_updated: dt.datetime,
    rule_ref: Mapping[str, str] | None,
    notes: Sequence[Note],
    now: dt.datetime,
) -> dict[str, Any]:
    """The desired status of one budget (pure)."""
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "periodStart": format_time(figures.period_start),
        "periodEnd": format_time(figures.period_end),
        "lastUpdated": format_time(last_updated),
        "currentSpendUSD": figures.current_spend_usd,
        "utilizationPercent": figures.utilization_percent,
        "projectedSpendUSD": figures.projected_spend_usd,
        "state": figures.state.value,
        "thresholdsCrossed": [
            {
                "percent": c.percent,
                "severity": c.severity,
                "crossedTime": format_time(c.crossed_time),
            }
            for c in figures.thresholds_crossed
        ],
    }
    if figures.projected_exhaustion is not None:
        status["projectedExhaustion"] = format_time(figures.projected_exhaustion)
    if rule_ref is not None:
        status["prometheusRuleRef"] = dict(rule_ref)
    ready_message = "; ".join([figures.ready.message, *(n.text for n in notes)])
    conditions = set_condition(
        current.get("conditions"),
        READY,
        status=figures.ready.status,
        reason=figures.ready.reason,
        message=ready_message,
        observed_generation=generation,
        now=now,
    )
    status["conditions"] = set_condition(
        conditions,
        BUDGET_EXCEEDED,
        status=figures.budget_exceeded.status,
        reason=figures.budget_exceeded.reason,
        message=figures.budget_exceeded.message,
        observed_generation=generation,
        now=now,
    )
    return status


def invalid_status(
    current: Mapping[str, Any],
    generation: int,
    message: str,
    last_updated: dt.datetime,
    now: dt.datetime,
) -> dict[str, Any]:
    """``Ready`` False/``InvalidSpec``; the figures, state and BudgetExceeded are dropped."""
    ready = set_condition(
        [c for c in current.get("conditions") or () if c.get("type") == READY],
        READY,
        status="False",
        reason="InvalidSpec",
        message=message,
        observed_generation=generation,
        now=now,
    )
    return {
        "observedGeneration": generation,
        "lastUpdated": format_time(last_updated),
        "conditions": ready,
    }


def _usd(amount: float) -> str:
    return f"{amount:,.2f} USD"


def budget_events(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    scope: str,
    limit_usd: float,
    notes: Sequence[Note] = (),
) -> list[tuple[str, str, str]]:
    """The Events (type, reason, message) a status change from ``old`` to ``new`` deserves."""
    events: list[tuple[str, str, str]] = []
    old_ready = find_condition(old.get("conditions"), READY) or {}
    new_ready = find_condition(new.get("conditions"), READY) or {}
    if new_ready.get("status") == "False":
        if (old_ready.get("status"), old_ready.get("reason"), old_ready.get("message")) != (
            new_ready.get("status"),
            new_ready.get("reason"),
            new_ready.get("message"),
        ):
            events.append((WARNING, str(new_ready["reason"]), str(new_ready.get("message", ""))))
        return events

    spend = new.get("currentSpendUSD", 0.0)
    month = str(new.get("periodStart", ""))[:7]
    amounts = f"{_usd(spend)} of {_usd(limit_usd)} in {month} (UTC)"
    old_state, new_state = old.get("state"), new.get("state")
    if new_state != old_state and not (old_state is None and new_state == BudgetState.OK.value):
        kind = WARNING if new_state in _WARNING_STATES else NORMAL
        was = f" (was {old_state})" if old_state else ""
        events.append(
            (
                kind,
                f"Budget{new_state}",
                f"state {new_state}{was}: namespace {scope} spent {amounts}",
            )
        )

    same_month = old.get("periodStart") == new.get("periodStart")
    before = {t.get("percent") for t in old.get("thresholdsCrossed") or ()} if same_month else set()
    for t in new.get("thresholdsCrossed") or ():
        if t["percent"] in before:
            continue
        kind = WARNING if t["severity"] in _WARNING_SEVERITIES else NORMAL
        events.append(
            (
                kind,
                "ThresholdCrossed",
                f"namespace {scope} reached {t['percent']}% of the monthly limit "
                f"({t['severity']} threshold): {amounts}",
            )
        )

    old_message = str(old_ready.get("message", ""))
    new_message = str(new_ready.get("message", ""))
    for note in notes:
        if note.text not in old_message:
            events.append((WARNING, note.reason, note.text))
    if ALERTS_OFF in old_message and ALERTS_OFF not in new_message and new.get("prometheusRuleRef"):
        rule = new["prometheusRuleRef"]
        events.append(
            (NORMAL, "AlertsEnabled", f"alerts are on: PrometheusRule {rule['name']} is in place")
        )
    return events


# ---------------------------------------------------------------------------------------------
# the PrometheusRule


@attrs.frozen
class RuleOutcome:
    """Where a budget's PrometheusRule stands after :meth:`BudgetRules.sync`."""

    ref: Mapping[str, str] | None = None
    """``prometheusRuleRef``: the rule exists with the budget's content."""
    note: Note | None = None
    """Why alerts are off, when they are."""
    retry_in: float | None = None
    """Look again after this many seconds (the CRD may appear; an error may pass)."""


def _content(obj: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """What InferCost decides in a rule object: labels, owner references, spec."""
    meta = obj.get("metadata") or {}
    return (meta.get("labels") or {}, meta.get("ownerReferences") or [], obj.get("spec") or {})


@attrs.define
class _Known:
    content: tuple[Any, Any, Any] | None
    """What the cluster held when last written or read (``None``: no rule)."""
    rendered: tuple[Any, Any, Any] | None
    """The rendering that content answers to."""
    at: float


class BudgetRules:
    """Keeps each budget's PrometheusRule equal to its rendering, writing only differences.

    Remembers, per rule, what the cluster held when it was last written or read, and the
    rendering that answered; a rule whose rendering has not changed is read again only every
    ``recheck_seconds``. Whether the CRD is served comes from API discovery, asked again every
    ``crd_recheck_seconds`` while it is not (and at once after a 404 from the resource).
    Thread-safe; one budget is never synced by two threads at once (the work queue).
    """

    def __init__(
        self,
        rest: RestClient,
        clock: Clock,
        *,
        recheck_seconds: float = RULE_RECHECK_SECONDS,
        crd_recheck_seconds: float = CRD_RECHECK_SECONDS,
    ) -> None:
        self.rest = rest
        self.clock = clock
        self.recheck_seconds = recheck_seconds
        self.crd_recheck_seconds = crd_recheck_seconds
        self._served: bool | None = None
        self._discovered_at: float | None = None
        self._known: dict[str, _Known] = {}
        self._last: dict[str, RuleOutcome] = {}
        self._lock = threading.Lock()

    # -- the CRD -----------------------------------------------------------------------------

    def served(self) -> bool | None:
        """Whether the PrometheusRule resource is served; ``None`` when discovery failed."""
        now = self.clock.monotonic()
        with self._lock:
            if self._served:
                return True
            if (
                self._discovered_at is not None
                and now - self._discovered_at < self.crd_recheck_seconds
            ):
                return False
        try:
            doc = self.rest.request("GET", f"/apis/{GROUP}/{VERSION}")
        except NotFoundError:
            served = False
        except ApiError as exc:
            log.warning("API discovery failed", group_version=f"{GROUP}/{VERSION}", error=str(exc))
            return None
        else:
            served = PLURAL in {str(r.get("name")) for r in doc.get("resources") or ()}
        with self._lock:
            if served != self._served:
                log.info("PrometheusRule CRD " + ("served" if served else "not installed"))
            self._served = served
            self._discovered_at = now
        return served

    def _not_served(self) -> None:
        with self._lock:
            self._served = False
            self._discovered_at = self.clock.monotonic()
            self._known.clear()

    def _crd_missing(self) -> RuleOutcome:
        with self._lock:
            since = self._discovered_at
        left = self.crd_recheck_seconds
        if since is not None:
            left = max(0.0, self.crd_recheck_seconds - (self.clock.monotonic() - since))
        return RuleOutcome(
            note=_alerts_note(
                f"the PrometheusRule CRD ({PLURAL}.{GROUP}) is not installed; the rule is "
                "created once it is",
                "AlertsDisabled",
            ),
            retry_in=left + 0.05,
        )

    # -- one rule ----------------------------------------------------------------------------

    def forget(self, namespace: str, budget: str) -> None:
        key = f"{namespace}/{rule_name(budget)}"
        with self._lock:
            self._known.pop(key, None)
            self._last.pop(key, None)

    def sync(self, budget: TokenBudget, desired: Mapping[str, Any] | None) -> RuleOutcome:
        """Bring the cluster's rule of ``budget`` to ``desired`` (``None``: no rule)."""
        namespace = str(budget.metadata.namespace)
        name = rule_name(budget.metadata.name)
        key = f"{namespace}/{name}"
        rendered = _content(desired) if desired is not None else None
        now = self.clock.monotonic()
        with self._lock:
            known = self._known.get(key)
        if (
            known is not None
            and known.rendered == rendered
            and now - known.at < self.recheck_seconds
        ):
            return self._done(key, namespace, name, known)
        served = self.served()
        if served is None:
            return self._transient(key)
        if not served:
            if desired is None:
                return self._remember(key, RuleOutcome())
            return self._remember(key, self._crd_missing())
        try:
            outcome = self._apply(budget, desired, rendered)
        except ConflictError:
            return self._transient(key, retry_in=0.5)
        except ApiError as exc:
            if exc.status in (0, 429) or exc.status >= 500:
                log.warning("PrometheusRule request failed", rule=key, error=str(exc))
                return self._transient(key)
            if desired is None:
                log.warning("cannot remove PrometheusRule", rule=key, error=str(exc))
                return self._remember(key, RuleOutcome(retry_in=self.recheck_seconds))
            return self._remember(
                key,
                RuleOutcome(
                    note=_alerts_note(
                        f"cannot write PrometheusRule {name}: {exc.message or exc.reason}",
                        "PrometheusRuleFailed",
                    ),
                    retry_in=self.recheck_seconds,
                ),
            )
        return self._remember(key, outcome)

    def _apply(
        self,
        budget: TokenBudget,
        desired: Mapping[str, Any] | None,
        rendered: tuple[Any, Any, Any] | None,
    ) -> RuleOutcome:
        namespace = str(budget.metadata.namespace)
        name = rule_name(budget.metadata.name)
        key = f"{namespace}/{name}"
        try:
            existing: dict[str, Any] | None = self.rest.get(PROMETHEUSRULES, name, namespace)
        except NotFoundError as exc:
            if not _object_not_found(exc):
                self._not_served()
                return self._crd_missing() if desired is not None else RuleOutcome()
            existing = None
        now = self.clock.monotonic()
        if existing is not None and not _owned(existing, budget):
            self._forget_known(key)
            if desired is None:
                return RuleOutcome()
            return RuleOutcome(
                note=_alerts_note(
                    f"PrometheusRule {name} exists and is not managed by InferCost (no "
                    f"{MANAGED_BY_LABEL}={MANAGED_BY} label nor owner reference to this "
                    "budget); rename or delete it",
                    "PrometheusRuleNotOwned",
                ),
                retry_in=self.recheck_seconds,
            )
        if desired is None:
            if existing is not None:
                try:
                    self.rest.delete(PROMETHEUSRULES, name, namespace)
                    log.info("PrometheusRule deleted: nothing to alert on", rule=key)
                except NotFoundError:
                    pass
            self._set_known(key, _Known(None, None, now))
            return RuleOutcome()
        assert rendered is not None
        if existing is None:
            try:
                written = self.rest.create(PROMETHEUSRULES, desired, namespace)
            except NotFoundError as exc:
                if _namespace_not_found(exc, namespace):
                    # the budget's namespace is being deleted: not a reason to turn every
                    # budget's alerts off
                    return RuleOutcome(retry_in=self.recheck_seconds)
                self._not_served()
                return self._crd_missing()
            log.info("PrometheusRule created", rule=key)
        else:
            with self._lock:
                known = self._known.get(key)
            current = _content(existing)
            # equal to the rendering, or to what the server made of this rendering last time
            if current == rendered or (
                known is not None and known.rendered == rendered and known.content == current
            ):
                self._set_known(key, _Known(current, rendered, now))
                return RuleOutcome(ref={"name": name, "namespace": namespace})
            body = dict(existing)
            meta = dict(existing.get("metadata") or {})
            meta["labels"] = dict(desired["metadata"]["labels"])
            meta["ownerReferences"] = list(desired["metadata"]["ownerReferences"])
            body["metadata"] = meta
            body["spec"] = desired["spec"]
            written = self.rest.replace(PROMETHEUSRULES, body, namespace)
            log.info("PrometheusRule updated", rule=key)
        self._set_known(key, _Known(_content(written), rendered, now))
        return RuleOutcome(ref={"name": name, "namespace": namespace})

    def _set_known(self, key: str, known: _Known) -> None:
        with self._lock:
            self._known[key] = known

    def _forget_known(self, key: str) -> None:
        with self._lock:
            self._known.pop(key, None)

    def _done(self, key: str, namespace: str, name: str, known: _Known) -> RuleOutcome:
        if known.content is None:
            return self._remember(key, RuleOutcome())
        return self._remember(key, RuleOutcome(ref={"name": name, "namespace": namespace}))

    def _remember(self, key: str, outcome: RuleOutcome) -> RuleOutcome:
        with self._lock:
            self._last[key] = outcome
        return outcome

    def _transient(self, key: str, retry_in: float = 5.0) -> RuleOutcome:
        """After an error that may pass: what was last known, and look again soon."""
        with self._lock:
            last = self._last.get(key, RuleOutcome())
        return attrs.evolve(last, retry_in=retry_in)


def _alerts_note(text: str, reason: str) -> Note:
    return Note(ALERTS_OFF + text, reason)


def _namespace_not_found(exc: NotFoundError, namespace: str) -> bool:
    """A 404 saying the namespace itself does not exist (``namespaces "x" not found``)."""
    details = exc.body.get("details")
    if isinstance(details, Mapping) and details.get("kind") == "namespaces":
        return True
    return f'namespaces "{namespace}" not found' in str(exc.message or "")


def _object_not_found(exc: NotFoundError) -> bool:
    """A 404 naming the object (as opposed to one for a resource that is not served)."""
    details = exc.body.get("details")
    return isinstance(details, Mapping) and bool(details.get("name"))


def _owned(rule: Mapping[str, Any], budget: TokenBudget) -> bool:
    """Whether a PrometheusRule is this budget's (a leftover of a budget deleted and created
    again under the same name counts: its owner reference is brought up to date)."""
    meta = rule.get("metadata") or {}
    labels = meta.get("labels") or {}
    if (
        labels.get(MANAGED_BY_LABEL) == MANAGED_BY
        and labels.get(BUDGET_LABEL) == budget.metadata.name
    ):
        return True
    return any(
        ref.get("kind") == TOKENBUDGET.kind and ref.get("uid") == budget.metadata.uid
        for ref in meta.get("ownerReferences") or ()
    )


# ---------------------------------------------------------------------------------------------
# the scope namespace


class NamespaceCheck:
    """Whether namespaces exist, by a ``get`` per name, remembered for ``recheck_seconds``.

    Without permission (403) or on an error the answer is "not known to be missing"."""

    def __init__(
        self, rest: RestClient, clock: Clock, *, recheck_seconds: float = NAMESPACE_RECHECK_SECONDS
    ) -> None:
        self.rest = rest
        self.clock = clock
        self.recheck_seconds = recheck_seconds
        self._answers: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()
        self._forbidden_logged = False

    def missing(self, name: str) -> bool:
        now = self.clock.monotonic()
        with self._lock:
            answer = self._answers.get(name)
        if answer is not None and now - answer[1] < self.recheck_seconds:
            return answer[0]
        try:
            self.rest.get(NAMESPACES, name)
            missing = False
        except NotFoundError:
            missing = True
        except ForbiddenError as exc:
            if not self._forbidden_logged:
                self._forbidden_logged = True
                log.info("cannot tell whether scope namespaces exist", error=str(exc))
            missing = False
        except ApiError as exc:
            log.warning("cannot read namespace", namespace=name, error=str(exc))
            return answer[0] if answer is not None else False
        with self._lock:
            self._answers[name] = (missing, now)
        return missing


# ---------------------------------------------------------------------------------------------
# the reconciler


def _crossings(status: Mapping[str, Any]) -> dict[int, dt.datetime]:
    out: dict[int, dt.datetime] = {}
    for entry in status.get("thresholdsCrossed") or ():
        when = parse_time(entry.get("crossedTime"))
        percent = entry.get("percent")
        if when is not None and isinstance(percent, int):
            out[percent] = dt.datetime.fromtimestamp(when, dt.UTC)
    return out


class TokenBudgetReconciler:
    def __init__(
        self,
        *,
        budgets: Any,
        keeper: LedgerKeeper,
        writer: StatusWriter,
        events: EventRecorder,
        collector: BudgetCollector,
        rules: BudgetRules,
        namespaces: NamespaceCheck,
        clock: Clock,
        rule_labels: Mapping[str, str],
        object_ref: Callable[[Any], ObjectRef],
    ) -> None:
        self.budgets = budgets
        self.keeper = keeper
        self.writer = writer
        self.events = events
        self.collector = collector
        self.rules = rules
        self.namespaces = namespaces
        self.clock = clock
        self.rule_labels = dict(rule_labels)
        self.object_ref = object_ref
        self.index = SpendIndex()

    def reconcile(self, key: str) -> Result:
        namespace, _, name = key.partition("/")
        obj = self.budgets.store.get(key)
        if obj is None:
            self.collector.remove(namespace, name)
            self.writer.forget(namespace, name)
            self.rules.forget(namespace, name)
            return DONE
        if not self.keeper.restored():
            return RequeueAfter(1.0)
        meta = obj.get("metadata") or {}
        generation = int(meta.get("generation") or 0)
        current: Mapping[str, Any] = obj.get("status") or {}
        now = self.clock.now()
        try:
            budget = parse_tokenbudget(obj, include_status=False)
            scope = budget.spec.scope.namespace
            view = self.keeper.read(lambda ledger: read_spend(ledger, self.index, scope, now))
            figures = evaluate_budget(
                budget.spec,
                spend_usd=view.spend_usd,
                window_spend_usd=view.window_spend_usd,
                window_hours=view.window_hours,
                last_updated=view.last_updated,
                previous_crossings=_crossings(current),
                previous_period_start=_from_epoch(parse_time(current.get("periodStart"))),
            )
        except (ValidationError, ValueError) as exc:
            self.collector.remove(namespace, name)
            last = self.keeper.read(lambda ledger: _from_epoch(ledger.last_time)) or now
            desired = invalid_status(current, generation, str(exc), last, now)
            return self._write(obj, current, desired, scope="", limit_usd=0.0, notes=())

        notes: list[Note] = []
        if figures.current_spend_usd == 0 and self.namespaces.missing(scope):
            notes.append(
                Note(
                    f"namespace {scope} does not exist, so nothing is spent against this budget",
                    "ScopeNamespaceNotFound",
                )
            )
        rule = self.rules.sync(budget, render_budget_rule(budget, self.rule_labels))
        if rule.note is not None:
            notes.append(rule.note)
        desired = budget_status(
            current=current,
            generation=generation,
            figures=figures,
            last_updated=view.last_updated,
            rule_ref=rule.ref,
            notes=notes,
            now=now,
        )
        self.collector.update(BudgetSeries.of(namespace, name, budget.spec, figures))
        if view.booked and self.writer.metrics is not None:
            self.writer.metrics.object_updated(
                TOKENBUDGET.kind, name, namespace, view.last_updated.timestamp()
            )
        result = self._write(
            obj,
            current,
            desired,
            scope=scope,
            limit_usd=float(budget.spec.monthly_limit_usd),
            notes=notes,
        )
        if rule.retry_in is not None and result is DONE:
            return RequeueAfter(rule.retry_in)
        if rule.retry_in is not None and isinstance(result, RequeueAfter):
            return RequeueAfter(min(result.seconds, rule.retry_in))
        return result

    def _write(
        self,
        obj: Any,
        current: Mapping[str, Any],
        desired: Mapping[str, Any],
        *,
        scope: str,
        limit_usd: float,
        notes: Sequence[Note],
    ) -> Result:
        result = self.writer.write(obj, desired)
        if result.outcome is WriteOutcome.CONFLICT:
            return RETRY
        if result.outcome is WriteOutcome.WRITTEN:
            ref = self.object_ref(obj)
            for kind, reason, message in budget_events(
                current, desired, scope=scope, limit_usd=limit_usd, notes=notes
            ):
                self.events.event(ref, kind, reason, message)
        if result.outcome is WriteOutcome.DEFERRED and result.due_in is not None:
            return RequeueAfter(result.due_in)
        return DONE


def build_tokenbudget_controller(context: Any, keeper: LedgerKeeper) -> Controller:
    """The TokenBudget controller, reconciling every budget after each booking."""
    budgets = context.custom_informer(TOKENBUDGET.kind)
    collector = BudgetCollector()
    context.register_collector(collector, leader_only=True)
    reconciler = TokenBudgetReconciler(
        budgets=budgets,
        keeper=keeper,
        writer=context.status_writer(TOKENBUDGET.kind, BUDGET_RULES),
        events=context.events,
        collector=collector,
        rules=BudgetRules(context.rest, context.clock),
        namespaces=NamespaceCheck(context.rest, context.clock),
        clock=context.clock,
        rule_labels=context.config.rule_labels,
        object_ref=lambda obj: context.object_ref(TOKENBUDGET.kind, obj),
    )
    controller: Controller = context.controller(
        "tokenbudget",
        reconciler.reconcile,
        primary=budgets,
        # every booking enqueues them all: the echo of our own status write is not news
        primary_updates=spec_or_metadata_changed,
    )
    keeper.subscribe(controller.enqueue_all)
    return controller

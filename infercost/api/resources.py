"""The three resources as whole objects: identity, printer columns, parsing.

``parse_resource`` is what every consumer of a CR dict calls (reconcilers, ``infercost
validate``, the emulator's admission check): it returns a typed, defaulted object or raises
:class:`~infercost.api.schema.ValidationError` carrying every problem with its field path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs

from infercost.api.costprofile import CostProfileSpec, CostProfileStatus
from infercost.api.meta import ObjectMeta
from infercost.api.schema import (
    INVALID,
    FieldError,
    Model,
    ValidationError,
    describe_value,
    parse_fields,
)
from infercost.api.tokenbudget import TokenBudgetSpec, TokenBudgetStatus
from infercost.api.usagereport import UsageReportSpec, UsageReportStatus

GROUP = "finops.infercost.ai"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORIES = ("infercost",)

S = TypeVar("S", bound=Model)
St = TypeVar("St", bound=Model)


@attrs.frozen
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0
    format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.format is not None:
            out["format"] = self.format
        if self.priority:
            out["priority"] = self.priority
        return out


@attrs.frozen
class ConditionReason:
    """One documented (status, reason) of a condition type and when it is set."""

    status: str
    reason: str
    when: str


@attrs.frozen
class ConditionDoc:
    """A condition type a kind's status carries, for the reference documentation."""

    type: str
    meaning: str
    reasons: tuple[ConditionReason, ...] = ()


_READY = PrinterColumn(
    "Ready",
    "string",
    '.status.conditions[?(@.type=="Ready")].status',
    "Status of the Ready condition.",
)
_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since creation.")


@attrs.frozen
class CostProfile:
    metadata: ObjectMeta
    spec: CostProfileSpec
    status: CostProfileStatus | None = None


@attrs.frozen
class UsageReport:
    metadata: ObjectMeta
    spec: UsageReportSpec
    status: UsageReportStatus | None = None


@attrs.frozen
class TokenBudget:
    metadata: ObjectMeta
    spec: TokenBudgetSpec
    status: TokenBudgetStatus | None = None


Resource = CostProfile | UsageReport | TokenBudget


@attrs.frozen
class ResourceType(Generic[S, St]):
    """Everything the CRD of one kind is generated from."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    description: str
    spec_cls: type[S]
    status_cls: type[St]
    resource_cls: type[Any]
    printer_columns: tuple[PrinterColumn, ...]
    conditions: tuple[ConditionDoc, ...] = ()
    # Rules on the whole object that no OpenAPI schema can express (the CRD schema does not
    # reach metadata); documented in docs/crds.md.
    semantic_errors: Callable[[Any], list[FieldError]] | None = None

    @property
    def api_version(self) -> str:
        return API_VERSION

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


# Label values are at most 63 characters (apimachinery validation).
MAX_LABEL_VALUE_LENGTH = 63


def _tokenbudget_semantic_errors(budget: TokenBudget) -> list[FieldError]:
    length = len(budget.metadata.name)
    if length > MAX_LABEL_VALUE_LENGTH:
        return [
            FieldError(
                "metadata.name",
                f"must be at most {MAX_LABEL_VALUE_LENGTH} characters for a TokenBudget (the "
                "name is the value of the infercost.ai/budget label on its PrometheusRule), "
                f"got {length} characters",
            )
        ]
    return []


COSTPROFILE: ResourceType[CostProfileSpec, CostProfileStatus] = ResourceType(
    kind="CostProfile",
    plural="costprofiles",
    singular="costprofile",
    short_names=("cprof",),
    description=(
        "CostProfile describes the hardware economics of a node or GPU pool: purchase price, "
        "amortization, electricity price and facility overhead."
    ),
    spec_cls=CostProfileSpec,
    status_cls=CostProfileStatus,
    resource_cls=CostProfile,
    printer_columns=(
        PrinterColumn("GPU Model", "string", ".spec.hardware.gpuModel", "GPU model."),
        PrinterColumn("GPUs", "integer", ".spec.hardware.gpuCount", "GPUs in the pool."),
        PrinterColumn("$/hr", "number", ".status.hourlyCostUSD", "Current cost in USD per hour."),
        PrinterColumn(
            "Power (W)", "number", ".status.currentPowerDrawWatts", "Current GPU power draw."
        ),
        PrinterColumn("Source", "string", ".status.powerSource", "Source of the power figure."),
        _READY,
        _AGE,
    ),
    conditions=(
        ConditionDoc(
            "Ready",
            "The profile's figures are current.",
            (
                ConditionReason(
                    "True",
                    "CostComputed",
                    "a sample of the profile's nodes completed in the last 3 scrape intervals",
                ),
                ConditionReason("False", "Stale", "no recent sample"),
                ConditionReason(
                    "False", "InvalidSpec", "the spec breaks a rule the schema cannot express"
                ),
                ConditionReason(
                    "False",
                    "Overlap",
                    "all its nodes belong to an older profile (the message names them)",
                ),
            ),
        ),
        ConditionDoc(
            "DCGMReachable",
            "How the power figure was obtained, from M GPUs of the matched nodes.",
            (
                ConditionReason("True", "DCGMHealthy", "all M GPUs have a DCGM reading"),
                ConditionReason(
                    "Unknown",
                    "DCGMPartial",
                    "some GPUs have readings; the message names each node without and why",
                ),
                ConditionReason("False", "DCGMScrapeFailed", "no readings and an exporter failed"),
                ConditionReason(
                    "False",
                    "DCGMNotFound",
                    "no readings and no exporter found for the matched nodes (or none matched)",
                ),
            ),
        ),
        ConditionDoc(
            "MetricsScraped",
            "The inference pods' metrics were read; when False the message says "
            "`k/n inference pods failing: <first error>`.",
        ),
    ),
)

USAGEREPORT: ResourceType[UsageReportSpec, UsageReportStatus] = ResourceType(
    kind="UsageReport",
    plural="usagereports",
    singular="usagereport",
    short_names=("ureport",),
    description=(
        "UsageReport reports the cost, tokens and cost per token of a CostProfile's pool over "
        "a calendar period, per model and per namespace, with a cloud price comparison."
    ),
    spec_cls=UsageReportSpec,
    status_cls=UsageReportStatus,
    resource_cls=UsageReport,
    printer_columns=(
        PrinterColumn("Period", "string", ".status.period", "Current period."),
        PrinterColumn("Cost ($)", "number", ".status.estimatedCostUSD", "Cost so far in USD."),
        PrinterColumn(
            "$/MTok", "number", ".status.costPerMillionTokens", "USD per million tokens."
        ),
        PrinterColumn("Input Tokens", "integer", ".status.inputTokens", "Input tokens."),
        PrinterColumn("Output Tokens", "integer", ".status.outputTokens", "Output tokens."),
        PrinterColumn(
            "Efficiency", "number", ".status.gpuEfficiencyRatio", "GPU efficiency ratio."
        ),
        _READY,
        _AGE,
        PrinterColumn(
            "Marginal $/MTok",
            "number",
            ".status.marginalCostPerMillionTokens",
            "Electricity of serving GPUs per million tokens, USD.",
            priority=1,
        ),
        PrinterColumn(
            "Idle ($)", "number", ".status.idleCostUSD", "Pool idle cost in USD.", priority=1
        ),
    ),
    conditions=(
        ConditionDoc(
            "Ready",
            "The report's figures are current.",
            (
                ConditionReason("True", "ReportComputed", "the figures are current"),
                ConditionReason(
                    "False", "CostProfileNotFound", "spec.costProfileRef names no CostProfile"
                ),
                ConditionReason("False", "Stale", "no recent sample of the profile's nodes"),
            ),
        ),
    ),
)

TOKENBUDGET: ResourceType[TokenBudgetSpec, TokenBudgetStatus] = ResourceType(
    kind="TokenBudget",
    plural="tokenbudgets",
    singular="tokenbudget",
    short_names=("tbudget",),
    description=(
        "TokenBudget sets a monthly spend limit for a namespace and alerts through "
        "Prometheus when thresholds are crossed or the month-end projection exceeds it."
    ),
    spec_cls=TokenBudgetSpec,
    status_cls=TokenBudgetStatus,
    resource_cls=TokenBudget,
    printer_columns=(
        PrinterColumn("Scope", "string", ".spec.scope.namespace", "Namespace of the budget."),
        PrinterColumn("Limit ($)", "number", ".spec.monthlyLimitUSD", "Monthly limit in USD."),
        PrinterColumn("Spend ($)", "number", ".status.currentSpendUSD", "Spend this month."),
        PrinterColumn("Used %", "number", ".status.utilizationPercent", "Spend / limit × 100."),
        PrinterColumn(
            "Projected ($)", "number", ".status.projectedSpendUSD", "Projected month-end spend."
        ),
        PrinterColumn("State", "string", ".status.state", "OK, Warning, Critical or Exceeded."),
        _AGE,
    ),
    conditions=(
        ConditionDoc(
            "Ready",
            "The budget's figures are current.",
            (ConditionReason("True", "BudgetComputed", "spend is counted from the cost ledger"),),
        ),
        ConditionDoc(
            "BudgetExceeded",
            "True exactly when state is Exceeded.",
            (
                ConditionReason("True", "LimitReached", "spend this month >= monthlyLimitUSD"),
                ConditionReason(
                    "False",
                    "WithinLimit",
                    "spend is below the limit (the message lists the thresholds crossed)",
                ),
            ),
        ),
    ),
    semantic_errors=_tokenbudget_semantic_errors,
)

RESOURCE_TYPES: tuple[ResourceType[Any, Any], ...] = (COSTPROFILE, USAGEREPORT, TOKENBUDGET)
KINDS: dict[str, ResourceType[Any, Any]] = {rt.kind: rt for rt in RESOURCE_TYPES}

_TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "status"}


def is_infercost_object(obj: object) -> bool:
    """Whether ``obj`` claims to be one of ours (our group in ``apiVersion``)."""
    if not isinstance(obj, Mapping):
        return False
    api_version = obj.get("apiVersion")
    return isinstance(api_version, str) and api_version.split("/")[0] == GROUP


def _parse(
    rtype: ResourceType[Any, Any], obj: object, include_status: bool, check_kind: bool
) -> Any:
    errors: list[FieldError] = []
    if not isinstance(obj, Mapping):
        raise ValidationError([FieldError("", f"must be an object, got {describe_value(obj)}")])
    if check_kind:
        if obj.get("apiVersion") != API_VERSION:
            errors.append(
                FieldError(
                    "apiVersion",
                    f"must be {API_VERSION!r}, got {describe_value(obj.get('apiVersion'))}",
                )
            )
        if obj.get("kind") != rtype.kind:
            errors.append(
                FieldError("kind", f"must be {rtype.kind!r}, got {describe_value(obj.get('kind'))}")
            )
    for key in obj:
        if key not in _TOP_LEVEL:
            errors.append(FieldError(str(key), "unknown field"))
    metadata = ObjectMeta.parse(obj.get("metadata"), "metadata", errors)
    raw_spec = obj.get("spec")
    if raw_spec is None:
        errors.append(FieldError("spec", "required field is missing"))
        spec = INVALID
    else:
        spec = parse_fields(rtype.spec_cls, raw_spec, "spec", errors)
    status = None
    raw_status = obj.get("status")
    if include_status and raw_status is not None:
        status = parse_fields(rtype.status_cls, raw_status, "status", errors)
    if errors:
        raise ValidationError(errors)
    resource = rtype.resource_cls(metadata=metadata, spec=spec, status=status)
    if rtype.semantic_errors is not None:
        errors.extend(rtype.semantic_errors(resource))
        if errors:
            raise ValidationError(errors)
    return resource


def parse_costprofile(obj: Mapping[str, Any], *, include_status: bool = True) -> CostProfile:
    result: CostProfile = _parse(COSTPROFILE, obj, include_status, check_kind=True)
    return result


def parse_usagereport(obj: Mapping[str, Any], *, include_status: bool = True) -> UsageReport:
    result: UsageReport = _parse(USAGEREPORT, obj, include_status, check_kind=True)
    return result


def parse_tokenbudget(obj: Mapping[str, Any], *, include_status: bool = True) -> TokenBudget:
    result: TokenBudget = _parse(TOKENBUDGET, obj, include_status, check_kind=True)
    return result


def parse_resource(obj: Mapping[str, Any], *, include_status: bool = True) -> Resource:
    """Parse a CostProfile, UsageReport or TokenBudget dict, dispatching on ``kind``.

    ``include_status=False`` ignores ``status`` (a reconciler reading a spec must not fail on a
    status written by another version). Raises :class:`ValidationError`.
    """
    if not isinstance(obj, Mapping):
        raise ValidationError([FieldError("", f"must be an object, got {describe_value(obj)}")])
    kind = obj.get("kind")
    rtype = KINDS.get(kind) if isinstance(kind, str) else None
    if rtype is None:
        raise ValidationError(
            [
                FieldError(
                    "kind",
                    f"must be one of {', '.join(repr(k) for k in KINDS)}, "
                    f"got {describe_value(kind)}",
                )
            ]
        )
    result: Resource = _parse(rtype, obj, include_status, check_kind=True)
    return result


def resource_type_of(resource: Resource) -> ResourceType[Any, Any]:
    return KINDS[type(resource).__name__]


def resource_to_dict(resource: Resource) -> dict[str, Any]:
    """The whole object as JSON (metadata limited to what :class:`ObjectMeta` keeps)."""
    rtype = resource_type_of(resource)
    out: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": rtype.kind,
        "metadata": resource.metadata.to_dict(),
        "spec": resource.spec.to_dict(),
    }
    if resource.status is not None:
        out["status"] = resource.status.to_dict()
    return out

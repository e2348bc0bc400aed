"""The three CRDs of ``finops.infercost.ai/v1alpha1`` as typed, validated models.

This package is the single source of truth for field names, defaults and validation; the CRD
manifests (``hack/gen-crds``) and ``docs/crds.md`` are generated from it. It imports nothing
else from InferCost and performs no I/O.

Entry points: :func:`parse_resource` (and the per-kind ``parse_*``) turn a CR dict into a
typed object or raise :class:`ValidationError`; every model has ``to_dict()`` for the camelCase
JSON the API server stores. Conditions are maintained on status dicts by
``infercost.kube.conditions``, where status is written.
"""

from infercost.api.costprofile import (
    CostProfileSpec,
    CostProfileStatus,
    Electricity,
    Hardware,
    PowerSource,
)
from infercost.api.meta import (
    Condition,
    ConditionStatus,
    ObjectMeta,
    find_condition,
)
from infercost.api.resources import (
    API_VERSION,
    CATEGORIES,
    COSTPROFILE,
    GROUP,
    KINDS,
    RESOURCE_TYPES,
    TOKENBUDGET,
    USAGEREPORT,
    VERSION,
    CostProfile,
    PrinterColumn,
    Resource,
    ResourceType,
    TokenBudget,
    UsageReport,
    is_infercost_object,
    parse_costprofile,
    parse_resource,
    parse_tokenbudget,
    parse_usagereport,
    resource_to_dict,
    resource_type_of,
)
from infercost.api.schema import (
    FieldError,
    FrozenMap,
    ValidationError,
    format_datetime,
    parse_datetime,
)
from infercost.api.tokenbudget import (
    AlertThreshold,
    BudgetScope,
    BudgetState,
    CrossedThreshold,
    ObjectReference,
    Severity,
    TokenBudgetSpec,
    TokenBudgetStatus,
)
from infercost.api.usagereport import (
    CloudComparison,
    HistoryEntry,
    ModelCost,
    NamespaceCost,
    Schedule,
    UsageReportSpec,
    UsageReportStatus,
)

__all__ = [
    "API_VERSION",
    "CATEGORIES",
    "COSTPROFILE",
    "GROUP",
    "KINDS",
    "RESOURCE_TYPES",
    "TOKENBUDGET",
    "USAGEREPORT",
    "VERSION",
    "AlertThreshold",
    "BudgetScope",
    "BudgetState",
    "CloudComparison",
    "Condition",
    "ConditionStatus",
    "CostProfile",
    "CostProfileSpec",
    "CostProfileStatus",
    "CrossedThreshold",
    "Electricity",
    "FieldError",
    "FrozenMap",
    "Hardware",
    "HistoryEntry",
    "ModelCost",
    "NamespaceCost",
    "ObjectMeta",
    "ObjectReference",
    "PowerSource",
    "PrinterColumn",
    "Resource",
    "ResourceType",
    "Schedule",
    "Severity",
    "TokenBudget",
    "TokenBudgetSpec",
    "TokenBudgetStatus",
    "UsageReport",
    "UsageReportSpec",
    "UsageReportStatus",
    "ValidationError",
    "find_condition",
    "format_datetime",
    "is_infercost_object",
    "parse_costprofile",
    "parse_datetime",
    "parse_resource",
    "parse_tokenbudget",
    "parse_usagereport",
    "resource_to_dict",
    "resource_type_of",
]

"""Object metadata and ``metav1.Condition``, as the three resources use them.

``ObjectMeta`` keeps only what the operator reads (identity, generation, creation time, labels);
every other metadata field is accepted and ignored, as it belongs to the API server.
Conditions follow apimachinery's ``metav1.Condition`` (typed here for reading a status back;
the writer side lives in ``infercost.kube.conditions``).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

import attrs

from infercost.api.names import (
    CONDITION_REASON,
    CONDITION_TYPE,
    DNS1123_LABEL,
    DNS1123_LABEL_HELP,
    DNS1123_SUBDOMAIN,
    DNS1123_SUBDOMAIN_HELP,
)
from infercost.api.schema import (
    INVALID,
    DateTime,
    Enum,
    FieldError,
    FrozenMap,
    Integer,
    List,
    Model,
    Object,
    String,
    crd,
    format_datetime,
)

NAMESPACE = String(
    min_length=1, max_length=63, pattern=DNS1123_LABEL, pattern_help=DNS1123_LABEL_HELP
)
_OBJECT_NAME = String(
    min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN, pattern_help=DNS1123_SUBDOMAIN_HELP
)


@attrs.frozen
class ObjectMeta:
    """The parts of ``metadata`` the operator reads."""

    name: str
    namespace: str | None = None
    generation: int | None = None
    uid: str | None = None
    creation_timestamp: dt.datetime | None = None
    resource_version: str | None = None
    labels: FrozenMap = attrs.field(factory=FrozenMap)

    @classmethod
    def parse(cls, raw: object, path: str, errors: list[FieldError]) -> Any:
        """Parse ``metadata``; unknown metadata fields are the API server's and pass."""
        if not isinstance(raw, Mapping):
            if raw is None:
                errors.append(FieldError(path, "required field is missing"))
            else:
                errors.append(FieldError(path, "must be an object"))
            return INVALID
        before = len(errors)
        name: Any = raw.get("name")
        if name is None:
            errors.append(FieldError(f"{path}.name", "required field is missing"))
        else:
            name = _OBJECT_NAME.parse(name, f"{path}.name", errors)
        namespace = raw.get("namespace")
        if namespace is not None:
            namespace = NAMESPACE.parse(namespace, f"{path}.namespace", errors)
        generation = raw.get("generation")
        if generation is not None:
            generation = Integer(minimum=0).parse(generation, f"{path}.generation", errors)
        uid = raw.get("uid")
        if uid is not None:
            uid = String().parse(uid, f"{path}.uid", errors)
        created = raw.get("creationTimestamp")
        if created is not None:
            created = DateTime().parse(created, f"{path}.creationTimestamp", errors)
        version = raw.get("resourceVersion")
        if version is not None:
            version = String().parse(version, f"{path}.resourceVersion", errors)
        labels_raw = raw.get("labels")
        labels: Any = FrozenMap()
        if labels_raw is not None:
            if isinstance(labels_raw, Mapping) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels_raw.items()
            ):
                labels = FrozenMap(labels_raw)
            else:
                errors.append(FieldError(f"{path}.labels", "must be a map of strings to strings"))
        if len(errors) > before:
            return INVALID
        return cls(
            name=name,
            namespace=namespace,
            generation=generation,
            uid=uid,
            creation_timestamp=created,
            resource_version=version,
            labels=labels,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.namespace is not None:
            out["namespace"] = self.namespace
        if self.generation is not None:
            out["generation"] = self.generation
        if self.uid is not None:
            out["uid"] = self.uid
        if self.creation_timestamp is not None:
            out["creationTimestamp"] = format_datetime(self.creation_timestamp)
        if self.resource_version is not None:
            out["resourceVersion"] = self.resource_version
        if self.labels:
            out["labels"] = dict(self.labels)
        return out


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


@attrs.frozen
class Condition(Model):
    """One aspect of an object's current state (``metav1.Condition``)."""

    type: str = attrs.field(
        **crd(
            "type",
            String(
                min_length=1,
                max_length=316,
                pattern=CONDITION_TYPE,
                pattern_help="a condition type in CamelCase, at most 316 characters",
            ),
            "Type of condition in CamelCase, e.g. Ready.",
        )
    )
    status: ConditionStatus = attrs.field(
        **crd("status", Enum(ConditionStatus), "Status of the condition: True, False or Unknown.")
    )
    reason: str = attrs.field(
        **crd(
            "reason",
            String(
                min_length=1,
                max_length=1024,
                pattern=CONDITION_REASON,
                pattern_help="a CamelCase reason of 1 to 1024 characters",
            ),
            "Programmatic identifier of the reason for the last transition, in CamelCase.",
        )
    )
    message: str = attrs.field(
        **crd(
            "message",
            String(max_length=32768),
            "Human-readable details of the last transition (may be empty).",
        )
    )
    last_transition_time: dt.datetime = attrs.field(
        **crd(
            "lastTransitionTime",
            DateTime(),
            "Last time the status changed (not when the reason or message changed).",
        )
    )
    observed_generation: int | None = attrs.field(
        default=None,
        **crd(
            "observedGeneration",
            Integer(minimum=0),
            "metadata.generation the condition was computed from.",
        ),
    )


def find_condition(conditions: tuple[Condition, ...], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


# Fields every status carries (SPEC §2), declared once for the three kinds.


def observed_generation_field() -> Any:
    return attrs.field(
        default=None,
        **crd(
            "observedGeneration",
            Integer(minimum=0),
            "metadata.generation this status was computed from.",
        ),
    )


def last_updated_field() -> Any:
    return attrs.field(
        default=None, **crd("lastUpdated", DateTime(), "Time of the data this status shows.")
    )


def conditions_field(types: str) -> Any:
    """The ``conditions`` list-map keyed by type; ``types`` names the kind's condition types."""
    return attrs.field(
        default=(),
        **crd("conditions", List(Object(Condition), list_type="map", map_keys=("type",)), types),
    )

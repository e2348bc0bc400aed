"""Server-side ``meta.k8s.io/v1`` Table rendering, the way the apiserver answers ``kubectl get``.

kubectl asks for tables with ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`` and
prints what it receives: column headers, cells, and (client-side) it hides columns with
``priority > 0`` unless ``-o wide``. All formatting of cells happens on the server, including
ages: a ``date`` printer column of a custom resource arrives as ``"5m"``, not as a timestamp
(apiextensions-apiserver ``tableconvertor.cellForJSONValue``). Built-in kinds get the columns of
the apiserver's printers (``pkg/printers/internalversion``); kinds without a printer get the
generic ``Name`` / ``Created At`` table (``rest.NewDefaultTableConvertor``).

This module is pure: it takes decoded objects and an injected ``now`` and returns the Table
as a dict ready to be JSON-encoded. Parsing the ``Accept`` header lives here too, since it is
what decides whether a table is wanted. No HTTP, no store access.

References: https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables
and https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#additional-printer-columns
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from infercost.testing.kubesim import jsonpath

__all__ = [
    "INCLUDE_OBJECT_VALUES",
    "NotAcceptableError",
    "PrinterColumn",
    "TableRenderError",
    "TableResource",
    "human_duration",
    "parse_accept",
    "render_table",
]

INCLUDE_OBJECT_VALUES = ("None", "Object", "PartialObjectMetadata")
_COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")

_NAME_DESCRIPTION = (
    "Name must be unique within a namespace; it identifies the object together with its"
    " namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DESCRIPTION = (
    "CreationTimestamp is the server time at which the object was created, in RFC3339 form (UTC)."
)


class TableRenderError(ValueError):
    """Bad input to the renderer: an unknown includeObject, a malformed printer column."""


class NotAcceptableError(ValueError):
    """No media type in the ``Accept`` header can be served (the server answers 406)."""


@attrs.frozen
class PrinterColumn:
    """One CRD ``additionalPrinterColumns`` entry, validated and with its JSONPath parsed."""

    name: str
    type: str
    json_path: str
    format: str = ""
    description: str = ""
    priority: int = 0
    path: jsonpath.JSONPath = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.name:
            raise TableRenderError("printer column: name must not be empty")
        if self.type not in _COLUMN_TYPES:
            raise TableRenderError(
                f"printer column {self.name!r}: type {self.type!r} is not one of"
                f" {', '.join(_COLUMN_TYPES)}"
            )
        if self.priority < 0:
            raise TableRenderError(f"printer column {self.name!r}: priority must be >= 0")
        if not self.json_path.startswith("."):
            # apiextensions validation of additionalPrinterColumns[].jsonPath.
            raise TableRenderError(
                f"printer column {self.name!r}: jsonPath {self.json_path!r} must be a simple"
                " json path starting with ."
            )
        try:
            parsed = jsonpath.parse(self.json_path)
        except jsonpath.JSONPathError as exc:
            raise TableRenderError(
                f"printer column {self.name!r}: unrecognized jsonPath {self.json_path!r}: {exc}"
            ) from exc
        object.__setattr__(self, "path", parsed)

    @classmethod
    def from_crd(cls, column: Mapping[str, Any]) -> PrinterColumn:
        """Build from one decoded ``additionalPrinterColumns`` item."""
        if not isinstance(column, Mapping):
            raise TableRenderError(f"printer column must be an object, got {column!r}")
        missing = [key for key in ("name", "type", "jsonPath") if not column.get(key)]
        if missing:
            raise TableRenderError(
                f"printer column {column.get('name', '?')!r}: missing {', '.join(missing)}"
            )
        return cls(
            name=str(column["name"]),
            type=str(column["type"]),
            json_path=str(column["jsonPath"]),
            format=str(column.get("format") or ""),
            description=str(column.get("description") or ""),
            priority=int(column.get("priority") or 0),
        )


_DEFAULT_CRD_COLUMNS = (
    PrinterColumn(
        name="Age",
        type="date",
        json_path=".metadata.creationTimestamp",
        description=_AGE_DESCRIPTION,
    ),
)


@attrs.frozen
class TableResource:
    """What the renderer needs to know about the resource being listed.

    ``printer_columns`` is None for built-in kinds (rendered by kind) and a tuple for custom
    resources (the served version's printer columns; an empty tuple means the CRD declares none,
    and the apiserver then shows ``Age``).
    """

    group: str
    version: str
    kind: str
    printer_columns: tuple[PrinterColumn, ...] | None = None

    @classmethod
    def for_crd(cls, crd: Mapping[str, Any], version: str) -> TableResource:
        """The table definition of one served version of a decoded CustomResourceDefinition."""
        spec = crd.get("spec") if isinstance(crd, Mapping) else None
        if not isinstance(spec, Mapping):
            raise TableRenderError("CustomResourceDefinition has no spec")
        names = spec.get("names") or {}
        kind = names.get("kind") if isinstance(names, Mapping) else None
        if not kind:
            raise TableRenderError("CustomResourceDefinition spec.names.kind is missing")
        for entry in spec.get("versions") or ():
            if isinstance(entry, Mapping) and entry.get("name") == version:
                columns = tuple(
                    PrinterColumn.from_crd(column)
                    for column in entry.get("additionalPrinterColumns") or ()
                )
                return cls(
                    group=str(spec.get("group", "")),
                    version=version,
                    kind=str(kind),
                    printer_columns=columns,
                )
        raise TableRenderError(f"CustomResourceDefinition {kind} does not define version {version}")


# ---------------------------------------------------------------------------------------------
# Accept header


def parse_accept(header: str | None) -> tuple[str, dict[str, str]]:
    """Decide the response representation from an ``Accept`` header.

    Returns ``("table", {"group": "meta.k8s.io", "version": "v1"|"v1beta1"})``,
    ``("partial", {...})`` for ``as=PartialObjectMetadata[List]``, or ``("json", {})``.
    Clauses are tried by descending ``q`` (ties keep header order); clauses this server cannot
    produce (protobuf, CBOR, unknown ``as=`` targets) are skipped. Raises
    :class:`NotAcceptableError` when none is servable. A missing or empty header means JSON.
    """
    if header is None or not header.strip():
        return "json", {}
    clauses: list[tuple[float, int, str, dict[str, str]]] = []
    for position, raw in enumerate(header.split(",")):
        parts = [part.strip() for part in raw.split(";")]
        media_type = parts[0].lower()
        if not media_type:
            continue
        params: dict[str, str] = {}
        for part in parts[1:]:
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep:
                continue
            params[key.strip().lower()] = value.strip().strip('"')
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        if quality <= 0:
            continue
        clauses.append((-quality, position, media_type, params))
    clauses.sort()
    for _, _, media_type, params in clauses:
        if media_type not in ("application/json", "application/*", "*/*"):
            continue
        target = params.get("as")
        if target is None:
            return "json", {}
        group, version = params.get("g", ""), params.get("v", "")
        if group != "meta.k8s.io" or version not in ("v1", "v1beta1"):
            continue
        if target == "Table":
            return "table", {"group": group, "version": version}
        if target in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            return "partial", {"group": group, "version": version, "as": target}
    raise NotAcceptableError(
        f"only the following media types are accepted: application/json,"
        f" application/json;as=Table;v=v1;g=meta.k8s.io (got {header!r})"
    )


# ---------------------------------------------------------------------------------------------
# Rendering


def render_table(
    resource: TableResource,
    objects: Sequence[Mapping[str, Any]],
    *,
    now: dt.datetime,
    include_object: str | None = "PartialObjectMetadata",
    list_metadata: Mapping[str, Any] | None = None,
    table_version: str = "v1",
    no_headers: bool = False,
) -> dict[str, Any]:
    """Render ``objects`` as a ``meta.k8s.io`` Table.

    ``list_metadata`` is the ``metadata`` of the list being converted (``resourceVersion``,
    ``continue``, ``remainingItemCount``); pass None when converting a single object from a GET,
    whose own resourceVersion then becomes the table's. ``include_object`` is the request's
    ``includeObject`` query parameter (None or "" means the default, PartialObjectMetadata).
    ``now`` must be timezone-aware; ages are computed against it.
    """
    if include_object in (None, ""):
        include_object = "PartialObjectMetadata"
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise TableRenderError(
            f"includeObject: Unsupported value: {include_object!r}: supported values:"
            f" {', '.join(repr(v) for v in INCLUDE_OBJECT_VALUES)}"
        )
    if table_version not in ("v1", "v1beta1"):
        raise TableRenderError(f"Table version must be v1 or v1beta1, not {table_version!r}")
    if now.tzinfo is None:
        raise TableRenderError("now must be timezone-aware")
    if list_metadata is None and len(objects) != 1:
        raise TableRenderError("a single-object table needs exactly one object")

    if resource.printer_columns is not None:
        columns = _crd_column_definitions(resource.printer_columns or _DEFAULT_CRD_COLUMNS)
        printer_columns = resource.printer_columns or _DEFAULT_CRD_COLUMNS

        def cells_for(obj: Mapping[str, Any]) -> tuple[list[Any], list[dict[str, Any]] | None]:
            return _crd_cells(printer_columns, obj, now), None

    else:
        printer = _PRINTERS.get((resource.group, resource.kind), _DEFAULT_PRINTER)
        columns = [dict(column) for column in printer.columns]

        def cells_for(obj: Mapping[str, Any]) -> tuple[list[Any], list[dict[str, Any]] | None]:
            return printer.cells(obj, now)

    metadata: dict[str, Any] = {}
    if list_metadata is not None:
        if list_metadata.get("resourceVersion"):
            metadata["resourceVersion"] = str(list_metadata["resourceVersion"])
        if list_metadata.get("continue"):
            metadata["continue"] = str(list_metadata["continue"])
        if list_metadata.get("remainingItemCount") is not None:
            metadata["remainingItemCount"] = int(list_metadata["remainingItemCount"])
    else:
        single_rv = _meta(objects[0]).get("resourceVersion")
        if single_rv:
            metadata["resourceVersion"] = str(single_rv)

    rows: list[dict[str, Any]] = []
    for obj in objects:
        cells, conditions = cells_for(obj)
        row: dict[str, Any] = {"cells": cells}
        if conditions:
            row["conditions"] = conditions
        row["object"] = _row_object(obj, include_object, table_version)
        rows.append(row)

    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{table_version}",
        "metadata": metadata,
        "columnDefinitions": None if no_headers else columns,
        "rows": rows,
    }


def _row_object(obj: Mapping[str, Any], include_object: str, table_version: str) -> Any:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{table_version}",
        "metadata": dict(_meta(obj)),
    }


def _column(
    name: str,
    type_: str = "string",
    description: str = "",
    *,
    format_: str = "",
    priority: int = 0,
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "format": format_,
        "description": description,
        "priority": priority,
    }


_NAME_COLUMN = _column("Name", "string", _NAME_DESCRIPTION, format_="name")
_AGE_COLUMN = _column("Age", "string", _AGE_DESCRIPTION)


def _crd_column_definitions(columns: Sequence[PrinterColumn]) -> list[dict[str, Any]]:
    out = [dict(_NAME_COLUMN)]
    for column in columns:
        out.append(
            _column(
                column.name,
                column.type,
                column.description
                or f"Custom resource definition column (in JSONPath format): {column.json_path}",
                format_=column.format,
                priority=column.priority,
            )
        )
    return out


def _crd_cells(
    columns: Sequence[PrinterColumn], obj: Mapping[str, Any], now: dt.datetime
) -> list[Any]:
    cells: list[Any] = [_meta(obj).get("name", "")]
    for column in columns:
        try:
            results = column.path.find(obj, allow_missing_keys=True)
        except jsonpath.JSONPathError:
            results = []
        if not results:
            cells.append(None)
            continue
        # Like the apiserver, only the first match is shown.
        value = results[0]
        if column.type == "string":
            cells.append(jsonpath.format_text(value))
        else:
            cells.append(_typed_cell(column.type, value, now))
    return cells


def _typed_cell(column_type: str, value: Any, now: dt.datetime) -> Any:
    """apiextensions ``cellForJSONValue``: a value of the wrong JSON type becomes null."""
    if value is None:
        return None
    if column_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value)  # Go's int64(float64) truncates toward zero
        return None
    if column_type == "number":
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return float(value)
        return None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        if not isinstance(value, str):
            return None
        timestamp = _parse_time(value)
        if timestamp is None:
            return "<invalid>"
        return human_duration(now - timestamp)
    return None


# ---------------------------------------------------------------------------------------------
# Time


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed


def human_duration(delta: dt.timedelta) -> str:
    """apimachinery ``duration.HumanDuration``: the age strings kubectl shows (``5m10s``)."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def _age(timestamp: Any, now: dt.datetime) -> str:
    """printers ``translateTimestampSince``: ``<unknown>`` for a missing time."""
    parsed = _parse_time(timestamp)
    if parsed is None:
        return "<unknown>"
    return human_duration(now - parsed)


# ---------------------------------------------------------------------------------------------
# Built-in printers


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    return metadata if isinstance(metadata, Mapping) else {}


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


CellsFn = Callable[[Mapping[str, Any], dt.datetime], tuple[list[Any], list[dict[str, Any]] | None]]


@attrs.frozen
class _Printer:
    columns: tuple[dict[str, Any], ...]
    cells: CellsFn


def _plain(fn: Callable[[Mapping[str, Any], dt.datetime], list[Any]]) -> CellsFn:
    def cells(obj: Mapping[str, Any], now: dt.datetime) -> tuple[list[Any], None]:
        return fn(obj, now), None

    return cells


def _name_age(obj: Mapping[str, Any], now: dt.datetime) -> tuple[str, str]:
    metadata = _meta(obj)
    return str(metadata.get("name", "")), _age(metadata.get("creationTimestamp"), now)


# Pods --------------------------------------------------------------------------------------

_POD_SUCCESS_CONDITIONS = [
    {
        "type": "Completed",
        "status": "True",
        "reason": "Succeeded",
        "message": "The pod has completed successfully.",
    }
]
_POD_FAILED_CONDITIONS = [
    {"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}
]


def _terminated_reason(prefix: str, terminated: Mapping[str, Any]) -> str:
    if terminated.get("reason"):
        return f"{prefix}{terminated['reason']}"
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


def _pod_cells(
    pod: Mapping[str, Any], now: dt.datetime
) -> tuple[list[Any], list[dict[str, Any]] | None]:
    """printers ``printPod``: readiness, the aggregate status reason and restarts."""
    spec, status, metadata = _dict(pod.get("spec")), _dict(pod.get("status")), _meta(pod)
    containers = _list(spec.get("containers"))
    init_specs = _list(spec.get("initContainers"))
    restarts = 0
    ready_containers = 0
    last_restart: dt.datetime | None = None
    reason = str(status.get("reason") or status.get("phase") or "")

    for raw_condition in _list(status.get("conditions")):
        condition = _dict(raw_condition)
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "SchedulingGated"
        ):
            reason = "SchedulingGated"

    def note_restart(container_status: Mapping[str, Any]) -> None:
        nonlocal last_restart
        finished = _parse_time(_get(container_status, "lastState", "terminated", "finishedAt"))
        if finished is not None and (last_restart is None or finished > last_restart):
            last_restart = finished

    sidecars = {
        _dict(c).get("name") for c in init_specs if _dict(c).get("restartPolicy") == "Always"
    }
    initializing = False
    sidecar_restarts = 0
    for index, raw_init in enumerate(_list(status.get("initContainerStatuses"))):
        init_status = _dict(raw_init)
        restarts += int(init_status.get("restartCount") or 0)
        note_restart(init_status)
        is_sidecar = init_status.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += int(init_status.get("restartCount") or 0)
            if init_status.get("started"):
                if init_status.get("ready"):
                    ready_containers += 1
                continue
        terminated = _dict(_get(init_status, "state", "terminated"))
        waiting = _dict(_get(init_status, "state", "waiting"))
        if terminated and terminated.get("exitCode", 0) == 0:
            continue
        if terminated:
            reason = _terminated_reason("Init:", terminated)
        elif waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    pod_initialized = any(
        _dict(c).get("type") == "Initialized" and _dict(c).get("status") == "True"
        for c in _list(status.get("conditions"))
    )
    if not initializing or pod_initialized:
        restarts = sidecar_restarts
        has_running = False
        for raw_status in reversed(_list(status.get("containerStatuses"))):
            container_status = _dict(raw_status)
            restarts += int(container_status.get("restartCount") or 0)
            note_restart(container_status)
            waiting = _dict(_get(container_status, "state", "waiting"))
            terminated = _dict(_get(container_status, "state", "terminated"))
            running = _get(container_status, "state", "running")
            if waiting.get("reason"):
                reason = str(waiting["reason"])
            elif terminated:
                reason = _terminated_reason("", terminated)
            elif running is not None and container_status.get("ready"):
                has_running = True
                ready_containers += 1
        if reason == "Completed" and has_running:
            pod_ready = any(
                _dict(c).get("type") == "Ready" and _dict(c).get("status") == "True"
                for c in _list(status.get("conditions"))
            )
            reason = "Running" if pod_ready else "NotReady"

    if metadata.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif metadata.get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"

    ips = [_dict(entry).get("ip") for entry in _list(status.get("podIPs"))]
    pod_ip = next((ip for ip in ips if ip), None) or status.get("podIP") or "<none>"
    gates = _list(spec.get("readinessGates"))
    if gates:
        gate_types = {_dict(g).get("conditionType") for g in gates}
        true_gates = sum(
            1
            for c in _list(status.get("conditions"))
            if _dict(c).get("type") in gate_types and _dict(c).get("status") == "True"
        )
        gates_text = f"{true_gates}/{len(gates)}"
    else:
        gates_text = "<none>"

    total = len(containers) + len(sidecars)
    name, age = _name_age(pod, now)
    cells = [
        name,
        f"{ready_containers}/{total}",
        reason,
        restarts_text,
        age,
        pod_ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_text,
    ]
    conditions = None
    if status.get("phase") == "Succeeded":
        conditions = [dict(c) for c in _POD_SUCCESS_CONDITIONS]
    elif status.get("phase") == "Failed":
        conditions = [dict(c) for c in _POD_FAILED_CONDITIONS]
    return cells, conditions


# Nodes -------------------------------------------------------------------------------------


def _node_cells(node: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    spec, status = _dict(node.get("spec")), _dict(node.get("status"))
    states: list[str] = []
    for raw_condition in _list(status.get("conditions")):
        condition = _dict(raw_condition)
        if condition.get("type") == "Ready":
            states = ["Ready" if condition.get("status") == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    for key, value in _dict(_meta(node).get("labels")).items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/") :]:
            roles.add(key[len("node-role.kubernetes.io/") :])
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    info = _dict(status.get("nodeInfo"))
    addresses = [_dict(a) for a in _list(status.get("addresses"))]

    def address(kind: str) -> str:
        return next((str(a["address"]) for a in addresses if a.get("type") == kind), "<none>")

    name, age = _name_age(node, now)
    return [
        name,
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        age,
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


# Services and Endpoints --------------------------------------------------------------------


def _service_ports(ports: list[Any]) -> str:
    pieces = []
    for raw_port in ports:
        port = _dict(raw_port)
        protocol = port.get("protocol") or "TCP"
        if port.get("nodePort"):
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            pieces.append(f"{port.get('port')}/{protocol}")
    return ",".join(pieces) or "<none>"


def _service_external_ip(service: Mapping[str, Any]) -> str:
    spec = _dict(service.get("spec"))
    service_type = spec.get("type") or "ClusterIP"
    external = [str(ip) for ip in _list(spec.get("externalIPs"))]
    if service_type in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if service_type == "LoadBalancer":
        ingress = _list(_get(service, "status", "loadBalancer", "ingress"))
        lb = [str(_dict(i).get("ip") or _dict(i).get("hostname") or "") for i in ingress]
        lb = [entry for entry in lb if entry]
        combined = lb + external
        return ",".join(combined) if combined else "<pending>"
    if service_type == "ExternalName":
        return str(spec.get("externalName") or "")
    return "<unknown>"


def _service_cells(service: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    spec = _dict(service.get("spec"))
    selector = _dict(spec.get("selector"))
    name, age = _name_age(service, now)
    return [
        name,
        spec.get("type") or "ClusterIP",
        spec.get("clusterIP") or "<none>",
        _service_external_ip(service),
        _service_ports(_list(spec.get("ports"))),
        age,
        ",".join(f"{k}={selector[k]}" for k in sorted(selector)) or "<none>",
    ]


def _endpoints_cells(endpoints: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    pairs: list[str] = []
    for raw_subset in _list(endpoints.get("subsets")):
        subset = _dict(raw_subset)
        ports = [_dict(p).get("port") for p in _list(subset.get("ports"))] or [None]
        for address in _list(subset.get("addresses")):
            ip = _dict(address).get("ip")
            for port in ports:
                pairs.append(f"{ip}:{port}" if port is not None else str(ip))
    shown = ",".join(pairs[:3])
    if len(pairs) > 3:
        shown += f" + {len(pairs) - 3} more..."
    name, age = _name_age(endpoints, now)
    return [name, shown or "<none>", age]


# Events ------------------------------------------------------------------------------------


def _event_cells(event: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    """core/v1 and events.k8s.io/v1 Events print alike (the latter's fields are renamed)."""
    is_events_api = str(event.get("apiVersion", "")).startswith("events.k8s.io/")
    regarding = _dict(event.get("regarding") if is_events_api else event.get("involvedObject"))
    first = event.get("deprecatedFirstTimestamp" if is_events_api else "firstTimestamp")
    last = event.get("deprecatedLastTimestamp" if is_events_api else "lastTimestamp")
    first_seen = _age(first, now) if first else _age(event.get("eventTime"), now)
    last_seen = _age(last, now) if last else first_seen
    count = event.get("deprecatedCount" if is_events_api else "count") or 0
    series = _dict(event.get("series"))
    if series:
        last_seen = _age(series.get("lastObservedTime"), now)
        count = series.get("count") or 0
    elif not count:
        count = 1
    kind = str(regarding.get("kind", "")).lower()
    target = f"{kind}/{regarding['name']}" if regarding.get("name") else kind
    if is_events_api:
        source_component = str(_get(event, "deprecatedSource", "component") or "")
        source_host = str(_get(event, "deprecatedSource", "host") or "")
        message = str(event.get("note") or "")
        controller = str(event.get("reportingController") or "")
        instance = str(event.get("reportingInstance") or "")
    else:
        source_component = str(_get(event, "source", "component") or "")
        source_host = str(_get(event, "source", "host") or "")
        message = str(event.get("message") or "")
        controller = str(event.get("reportingComponent") or "")
        instance = str(event.get("reportingInstance") or "")
    # printers formatEventSource: the legacy source wins field by field over reporting*.
    component = source_component or controller
    host = source_host or instance
    source = f"{component}, {host}" if host else component
    return [
        last_seen,
        event.get("type", ""),
        event.get("reason", ""),
        target,
        regarding.get("fieldPath", ""),
        source,
        message.strip(),
        first_seen,
        int(count),
        _meta(event).get("name", ""),
    ]


# Simple kinds -------------------------------------------------------------------------------


def _namespace_cells(namespace: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    name, age = _name_age(namespace, now)
    return [name, _get(namespace, "status", "phase") or "", age]


def _configmap_cells(configmap: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    name, age = _name_age(configmap, now)
    count = len(_dict(configmap.get("data"))) + len(_dict(configmap.get("binaryData")))
    return [name, count, age]


def _secret_cells(secret: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    name, age = _name_age(secret, now)
    count = len(_dict(secret.get("data")))
    return [name, secret.get("type") or "Opaque", count, age]


def _serviceaccount_cells(account: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    name, age = _name_age(account, now)
    return [name, len(_list(account.get("secrets"))), age]


def _lease_cells(lease: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    name, age = _name_age(lease, now)
    return [name, _get(lease, "spec", "holderIdentity") or "", age]


def _default_cells(obj: Mapping[str, Any], now: dt.datetime) -> list[Any]:
    metadata = _meta(obj)
    created = _parse_time(metadata.get("creationTimestamp"))
    created_text = (
        created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if created
        else "0001-01-01T00:00:00Z"
    )
    return [metadata.get("name", ""), created_text]


_POD_COLUMNS = (
    _NAME_COLUMN,
    _column(
        "Ready", description="The aggregate readiness state of this pod for accepting traffic."
    ),
    _column("Status", description="The aggregate status of the containers in this pod."),
    _column(
        "Restarts",
        description="The number of times the containers in this pod have been restarted and"
        " when the last container in this pod has restarted.",
    ),
    _AGE_COLUMN,
    _column("IP", description="IP address allocated to the pod.", priority=1),
    _column("Node", description="The node the pod is scheduled onto.", priority=1),
    _column("Nominated Node", description="The node the scheduler nominated.", priority=1),
    _column("Readiness Gates", description="Pod readiness gates that are True.", priority=1),
)

_NODE_COLUMNS = (
    _NAME_COLUMN,
    _column("Status", description="The status of the node"),
    _column("Roles", description="The roles of the node"),
    _AGE_COLUMN,
    _column("Version", description="Kubelet version reported by the node."),
    _column("Internal-IP", description="The node's InternalIP address.", priority=1),
    _column("External-IP", description="The node's ExternalIP address.", priority=1),
    _column("OS-Image", description="OS image reported by the node.", priority=1),
    _column("Kernel-Version", description="Kernel version reported by the node.", priority=1),
    _column("Container-Runtime", description="Container runtime version.", priority=1),
)

_SERVICE_COLUMNS = (
    _NAME_COLUMN,
    _column("Type", description="How the Service is exposed."),
    _column("Cluster-IP", description="The IP address of the service inside the cluster."),
    _column("External-IP", description="Addresses the service is reachable at from outside."),
    _column("Port(s)", description="The ports exposed by this service."),
    _AGE_COLUMN,
    _column("Selector", description="Labels of the pods traffic is routed to.", priority=1),
)

_EVENT_COLUMNS = (
    _column("Last Seen", description="The time at which the most recent occurrence was recorded."),
    _column("Type", description="Type of this event (Normal, Warning)."),
    _column("Reason", description="Why the action was taken, in CamelCase."),
    _column("Object", description="The object this event is about."),
    _column("Subobject", description="Field path within the object.", priority=1),
    _column("Source", description="The component reporting this event.", priority=1),
    _column("Message", description="A human-readable description of the event."),
    _column(
        "First Seen", description="The time at which the event was first recorded.", priority=1
    ),
    _column("Count", description="The number of times this event has occurred.", priority=1),
    _column("Name", "string", _NAME_DESCRIPTION, format_="name", priority=1),
)

_DEFAULT_PRINTER = _Printer(
    columns=(
        _NAME_COLUMN,
        _column("Created At", "date", _AGE_DESCRIPTION),
    ),
    cells=_plain(_default_cells),
)

_PRINTERS: dict[tuple[str, str], _Printer] = {
    ("", "Pod"): _Printer(_POD_COLUMNS, _pod_cells),
    ("", "Node"): _Printer(_NODE_COLUMNS, _plain(_node_cells)),
    ("", "Namespace"): _Printer(
        (_NAME_COLUMN, _column("Status", description="The status of the namespace"), _AGE_COLUMN),
        _plain(_namespace_cells),
    ),
    ("", "ConfigMap"): _Printer(
        (_NAME_COLUMN, _column("Data", "integer", "Number of data entries."), _AGE_COLUMN),
        _plain(_configmap_cells),
    ),
    ("", "Secret"): _Printer(
        (
            _NAME_COLUMN,
            _column("Type", description="The type of the secret"),
            _column("Data", "integer", "Number of data entries."),
            _AGE_COLUMN,
        ),
        _plain(_secret_cells),
    ),
    ("", "ServiceAccount"): _Printer(
        (_NAME_COLUMN, _column("Secrets", "integer", "Number of linked secrets."), _AGE_COLUMN),
        _plain(_serviceaccount_cells),
    ),
    ("", "Service"): _Printer(_SERVICE_COLUMNS, _plain(_service_cells)),
    ("", "Endpoints"): _Printer(
        (_NAME_COLUMN, _column("Endpoints", description="Ready addresses and ports."), _AGE_COLUMN),
        _plain(_endpoints_cells),
    ),
    ("", "Event"): _Printer(_EVENT_COLUMNS, _plain(_event_cells)),
    ("events.k8s.io", "Event"): _Printer(_EVENT_COLUMNS, _plain(_event_cells)),
    ("coordination.k8s.io", "Lease"): _Printer(
        (_NAME_COLUMN, _column("Holder", description="The holder of the lease."), _AGE_COLUMN),
        _plain(_lease_cells),
    ),
}

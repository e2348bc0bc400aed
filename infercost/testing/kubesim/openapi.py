"""The OpenAPI documents kubectl reads: ``/openapi/v3`` (index and per group-version) and
``/openapi/v2``, built from the served resources and the installed CRDs' schemas.

What kubectl (1.27 and later, checked against 1.37) does with them:

* ``kubectl apply/create/replace`` with the default ``--validate=strict`` asks whether the
  server supports the ``fieldValidation`` query parameter for the object's kind by looking, in
  the ``/openapi/v3`` document of its group-version, for a PATCH operation tagged with
  ``x-kubernetes-group-version-kind`` whose parameters include ``fieldValidation`` (cli-runtime
  ``QueryParamVerifierV3``). If found, validation is left to the server (``fieldValidation=
  Strict``); otherwise kubectl falls back to client-side validation with ``/openapi/v2``.
* ``kubectl apply`` builds a strategic merge patch from the v3 schema only when the PATCH
  operation accepts ``application/strategic-merge-patch+json``; else it tries ``/openapi/v2``
  (protobuf only) and finally the types compiled into kubectl (built-in kinds) or a JSON merge
  patch (custom resources). The documents built here do not advertise strategic merge patch:
  their built-in schemas are too small to drive kubectl's patch computation, and kubectl's
  compiled-in metadata is exact for the built-in kinds anyway. The server still accepts
  strategic merge patches (see :mod:`.strategic`).
* ``kubectl explain`` reads ``/openapi/v3/apis/<group>/<version>`` and finds the schema whose
  ``x-kubernetes-group-version-kind`` names the kind, following ``$ref``/``allOf``.

kubectl requests ``/openapi/v2`` as protobuf (``application/com.github.proto-openapi.spec.v2
@v1.0+protobuf``) when a kind is missing from the v3 index. Such a request gets
:func:`v2_protobuf_document`: a valid but empty v2 document, so kubectl finds no schema there
and goes on to its REST mapping, which names a kind whose CRD is not installed ("no matches for
kind ... ensure CRDs are installed first") exactly as against a real apiserver. Validation of
known kinds happens on the server (``fieldValidation=Strict``) and explain uses v3, so the
empty v2 document loses nothing. JSON requests get the full v2 document.

The documents mirror the apiserver's layout: definition names reverse the group
(``ai.infercost.finops.v1alpha1.CostProfile``), meta types live under
``io.k8s.apimachinery.pkg.apis.meta.v1``, and the index maps ``apis/<group>/<version>`` (``api/v1``
for the core group) to a ``serverRelativeURL`` carrying a content hash. Pure: no I/O.
References: https://kubernetes.io/docs/concepts/overview/kubernetes-api/#openapi-interface-definition
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "META",
    "OpenAPICatalog",
    "OpenAPIError",
    "OpenAPIResource",
    "build_v2",
    "build_v3_document",
    "build_v3_index",
    "definition_name",
    "group_version_path",
    "resource_from_definition",
    "resources_from_crd",
    "v2_acceptable",
    "v2_protobuf_document",
    "v3_documents",
]

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers"
    " should convert recognized schemas to the latest internal value, and may reject"
    " unrecognized values."
)
_KIND_DESCRIPTION = (
    "Kind is a string value representing the REST resource this object represents. Servers may"
    " infer this from the endpoint the client submits requests to. In CamelCase."
)
_METADATA_DESCRIPTION = "Standard object's metadata."
_LIST_METADATA_DESCRIPTION = "Standard list metadata."

PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


DEFAULT_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


class OpenAPIError(ValueError):
    """A CRD whose schema or names cannot be published."""


@attrs.frozen
class OpenAPIResource:
    """One served resource, as the OpenAPI builder needs to see it.

    ``schema`` is the CRD version's ``openAPIV3Schema`` for custom resources, or None for a
    built-in kind (published with a permissive object schema). ``strategic_merge`` says whether
    the PATCH operation advertises strategic merge patch (see the module docstring).
    """

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    schema: Mapping[str, Any] | None = None
    list_kind: str = ""
    status_subresource: bool = False
    verbs: tuple[str, ...] = DEFAULT_VERBS
    strategic_merge: bool = False
    description: str = ""

    @property
    def effective_list_kind(self) -> str:
        return self.list_kind or f"{self.kind}List"

    @property
    def group_version(self) -> tuple[str, str]:
        return self.group, self.version


def resource_from_definition(definition: Any) -> OpenAPIResource:
    """An :class:`OpenAPIResource` from a server-side resource definition, read by attribute.

    Reads ``group``, ``version``, ``kind``, ``plural``, ``namespaced``, ``verbs``,
    ``status_subresource``, ``is_crd_resource`` and, for custom resources, ``schema`` (the
    version's ``openAPIV3Schema``); optional ``list_kind``. Built-in kinds get the permissive
    schema.
    """
    try:
        is_crd = bool(getattr(definition, "is_crd_resource", False))
        schema = getattr(definition, "schema", None) if is_crd else None
        return OpenAPIResource(
            group=str(definition.group),
            version=str(definition.version),
            kind=str(definition.kind),
            plural=str(definition.plural),
            namespaced=bool(definition.namespaced),
            schema=schema if schema is not None or not is_crd else {"type": "object"},
            list_kind=str(getattr(definition, "list_kind", "") or ""),
            status_subresource=bool(getattr(definition, "status_subresource", False)),
            verbs=tuple(getattr(definition, "verbs", DEFAULT_VERBS)),
        )
    except AttributeError as exc:
        raise OpenAPIError(f"resource definition {definition!r} lacks {exc.name}") from None


@attrs.frozen
class OpenAPICatalog:
    """All OpenAPI documents of one set of served resources, built once.

    Rebuild it whenever the set changes (a CRD is created, updated or deleted); the content
    hashes in the v3 index then change, so kubectl's disk cache fetches the new documents.
    """

    documents: Mapping[str, Mapping[str, Any]]
    index: Mapping[str, Any]
    v2: Mapping[str, Any]

    @classmethod
    def build(
        cls, resources: Iterable[OpenAPIResource], *, server_version: str = ""
    ) -> OpenAPICatalog:
        resources = list(resources)
        documents = v3_documents(resources)
        return cls(
            documents=documents,
            index=build_v3_index(documents),
            v2=build_v2(resources, server_version=server_version),
        )

    def v3(self, path: str) -> Mapping[str, Any] | None:
        """The document for a request path such as ``/openapi/v3/apis/g/v`` or ``api/v1``;
        None when no such group-version is served (answer 404)."""
        key = path.split("?", 1)[0].removeprefix("/openapi/v3").strip("/")
        return self.documents.get(key)


def definition_name(group: str, version: str, kind: str) -> str:
    """The apiserver's definition key: the group reversed, then version and kind.

    ``finops.infercost.ai`` / ``v1alpha1`` / ``CostProfile`` ->
    ``ai.infercost.finops.v1alpha1.CostProfile``; core kinds are ``io.k8s.api.core.v1.Pod``.
    """
    if not group:
        return f"io.k8s.api.core.{version}.{kind}"
    if group == "apiextensions.k8s.io":
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind}"
    if group.endswith(".k8s.io") or "." not in group:
        # Built-in API groups live under io.k8s.api.<first label> (apps, coordination, ...).
        return f"io.k8s.api.{group.split('.', maxsplit=1)[0]}.{version}.{kind}"
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def group_version_path(group: str, version: str) -> str:
    """The index key of a group-version: ``api/v1`` or ``apis/<group>/<version>``."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def resources_from_crd(crd: Mapping[str, Any]) -> list[OpenAPIResource]:
    """The served versions of a decoded CustomResourceDefinition."""
    spec = crd.get("spec") if isinstance(crd, Mapping) else None
    if not isinstance(spec, Mapping):
        raise OpenAPIError("CustomResourceDefinition has no spec")
    names = spec.get("names")
    if not isinstance(names, Mapping) or not names.get("kind") or not names.get("plural"):
        raise OpenAPIError("CustomResourceDefinition spec.names needs kind and plural")
    group = spec.get("group")
    if not isinstance(group, str) or not group:
        raise OpenAPIError("CustomResourceDefinition spec.group is missing")
    out = []
    for version in spec.get("versions") or ():
        if not isinstance(version, Mapping) or not version.get("served", True):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is not None and not isinstance(schema, Mapping):
            raise OpenAPIError(
                f"{names['plural']}.{group} {version.get('name')}: openAPIV3Schema must be an"
                " object"
            )
        out.append(
            OpenAPIResource(
                group=group,
                version=str(version["name"]),
                kind=str(names["kind"]),
                plural=str(names["plural"]),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                schema=schema if schema is not None else {"type": "object"},
                list_kind=str(names.get("listKind") or ""),
                status_subresource="status" in (version.get("subresources") or {}),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Meta types shared by every document


def _ref3(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _meta_schemas() -> dict[str, dict[str, Any]]:
    """apimachinery meta/v1 types, in the v3 form (refs to #/components/schemas)."""
    string = {"type": "string"}
    time = _ref3(f"{META}.Time")
    string_map = {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
    return {
        f"{META}.Time": {
            "type": "string",
            "format": "date-time",
            "description": "A timestamp in RFC3339 form, UTC, second precision.",
        },
        f"{META}.MicroTime": {
            "type": "string",
            "format": "date-time",
            "description": "A timestamp in RFC3339 form with microseconds.",
        },
        f"{META}.FieldsV1": {
            "type": "object",
            "description": "The set of fields a manager owns, in the FieldsV1 trie format.",
        },
        f"{META}.ManagedFieldsEntry": {
            "type": "object",
            "description": "The fields a workflow (manager) owns in an object.",
            "properties": {
                "apiVersion": {**string, "description": "Version of the fields set."},
                "fieldsType": {**string, "description": "Format of fieldsV1: FieldsV1."},
                "fieldsV1": {"allOf": [_ref3(f"{META}.FieldsV1")], "description": "The fields."},
                "manager": {**string, "description": "Identifier of the workflow."},
                "operation": {**string, "description": "Apply or Update."},
                "subresource": {**string, "description": "Subresource the entry is for."},
                "time": {"allOf": [time], "description": "When the entry last changed."},
            },
        },
        f"{META}.OwnerReference": {
            "type": "object",
            "description": "Identifies an owning object; dependents are garbage-collected.",
            "required": ["apiVersion", "kind", "name", "uid"],
            "properties": {
                "apiVersion": {**string, "default": "", "description": "API version of the owner."},
                "blockOwnerDeletion": {
                    "type": "boolean",
                    "description": "Foreground deletion of the owner waits for this object.",
                },
                "controller": {
                    "type": "boolean",
                    "description": "The owner is the managing controller.",
                },
                "kind": {**string, "default": "", "description": "Kind of the owner."},
                "name": {**string, "default": "", "description": "Name of the owner."},
                "uid": {**string, "default": "", "description": "UID of the owner."},
            },
            "x-kubernetes-map-type": "atomic",
        },
        f"{META}.ObjectMeta": {
            "type": "object",
            "description": "Metadata every persisted resource has.",
            "properties": {
                "annotations": {**string_map, "description": "Unstructured key/value data."},
                "creationTimestamp": {
                    "allOf": [time],
                    "description": "When the object was created; set by the server.",
                },
                "deletionGracePeriodSeconds": {
                    "type": "integer",
                    "format": "int64",
                    "description": "Seconds allowed for graceful termination.",
                },
                "deletionTimestamp": {
                    "allOf": [time],
                    "description": "When deletion was requested; set by the server.",
                },
                "finalizers": {
                    "type": "array",
                    "items": {**string, "default": ""},
                    "description": "Conditions that must be cleared before deletion.",
                    "x-kubernetes-list-type": "set",
                    "x-kubernetes-patch-strategy": "merge",
                },
                "generateName": {
                    **string,
                    "description": "Prefix for a server-generated name.",
                },
                "generation": {
                    "type": "integer",
                    "format": "int64",
                    "description": "Sequence number of the desired state.",
                },
                "labels": {**string_map, "description": "Key/value labels for selection."},
                "managedFields": {
                    "type": "array",
                    "items": {"allOf": [_ref3(f"{META}.ManagedFieldsEntry")], "default": {}},
                    "description": "Field ownership, maintained by the server.",
                    "x-kubernetes-list-type": "atomic",
                },
                "name": {**string, "description": "Name, unique within a namespace."},
                "namespace": {**string, "description": "Namespace of the object."},
                "ownerReferences": {
                    "type": "array",
                    "items": {"allOf": [_ref3(f"{META}.OwnerReference")], "default": {}},
                    "description": "Objects this object depends on.",
                    "x-kubernetes-list-map-keys": ["uid"],
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "uid",
                    "x-kubernetes-patch-strategy": "merge",
                },
                "resourceVersion": {
                    **string,
                    "description": "Opaque version for optimistic concurrency and watches.",
                },
                "selfLink": {**string, "description": "Deprecated; not set."},
                "uid": {**string, "description": "Unique identifier; set by the server."},
            },
        },
        f"{META}.ListMeta": {
            "type": "object",
            "description": "Metadata of a list.",
            "properties": {
                "continue": {**string, "description": "Token for the next page."},
                "remainingItemCount": {
                    "type": "integer",
                    "format": "int64",
                    "description": "Items left after this page (approximate).",
                },
                "resourceVersion": {**string, "description": "Version the list was read at."},
                "selfLink": {**string, "description": "Deprecated; not set."},
            },
        },
        f"{META}.StatusCause": {
            "type": "object",
            "description": "One cause of an error.",
            "properties": {
                "field": {**string, "description": "The field that caused the error."},
                "message": {**string, "description": "Human-readable description."},
                "reason": {**string, "description": "Machine-readable cause."},
            },
        },
        f"{META}.StatusDetails": {
            "type": "object",
            "description": "Details of an error.",
            "properties": {
                "causes": {
                    "type": "array",
                    "items": {"allOf": [_ref3(f"{META}.StatusCause")], "default": {}},
                    "x-kubernetes-list-type": "atomic",
                },
                "group": string,
                "kind": string,
                "name": string,
                "retryAfterSeconds": {"type": "integer", "format": "int32"},
                "uid": string,
            },
        },
        f"{META}.Status": {
            "type": "object",
            "description": "The result of an operation that does not return an object.",
            "properties": {
                "apiVersion": {**string, "description": _API_VERSION_DESCRIPTION},
                "code": {"type": "integer", "format": "int32", "description": "HTTP code."},
                "details": {"allOf": [_ref3(f"{META}.StatusDetails")]},
                "kind": {**string, "description": _KIND_DESCRIPTION},
                "message": {**string, "description": "Human-readable description."},
                "metadata": {"allOf": [_ref3(f"{META}.ListMeta")], "default": {}},
                "reason": {**string, "description": "Machine-readable reason."},
                "status": {**string, "description": "Success or Failure."},
            },
            "x-kubernetes-group-version-kind": [{"group": "", "kind": "Status", "version": "v1"}],
        },
        f"{META}.Preconditions": {
            "type": "object",
            "description": "Must be fulfilled before an operation is carried out.",
            "properties": {"resourceVersion": string, "uid": string},
        },
        f"{META}.DeleteOptions": {
            "type": "object",
            "description": "Options of a delete request.",
            "properties": {
                "apiVersion": {**string, "description": _API_VERSION_DESCRIPTION},
                "dryRun": {"type": "array", "items": {**string, "default": ""}},
                "gracePeriodSeconds": {"type": "integer", "format": "int64"},
                "kind": {**string, "description": _KIND_DESCRIPTION},
                "preconditions": {"allOf": [_ref3(f"{META}.Preconditions")]},
                "propagationPolicy": {
                    **string,
                    "description": "Orphan, Background or Foreground.",
                },
            },
        },
        f"{META}.Patch": {
            "type": "object",
            "description": "A patch body; its format is given by the Content-Type.",
        },
    }


# ---------------------------------------------------------------------------------------------
# Resource schemas


def _resource_schema(resource: OpenAPIResource) -> dict[str, Any]:
    gvk = [{"group": resource.group, "kind": resource.kind, "version": resource.version}]
    if resource.schema is None:
        schema: dict[str, Any] = {
            "type": "object",
            "description": resource.description or f"{resource.kind} ({_gv(resource)}).",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
            "x-kubernetes-preserve-unknown-fields": True,
        }
    else:
        schema = copy.deepcopy(dict(resource.schema))
        schema.setdefault("type", "object")
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {
        **properties.get("apiVersion", {}),
        "type": "string",
        "description": _API_VERSION_DESCRIPTION,
    }
    properties["kind"] = {
        **properties.get("kind", {}),
        "type": "string",
        "description": _KIND_DESCRIPTION,
    }
    properties["metadata"] = {
        "allOf": [_ref3(f"{META}.ObjectMeta")],
        "default": {},
        "description": _METADATA_DESCRIPTION,
    }
    schema["x-kubernetes-group-version-kind"] = gvk
    return schema


def _list_schema(resource: OpenAPIResource) -> dict[str, Any]:
    item = definition_name(resource.group, resource.version, resource.kind)
    return {
        "type": "object",
        "description": f"A list of {resource.kind}.",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": _API_VERSION_DESCRIPTION},
            "items": {
                "type": "array",
                "description": f"List of {resource.plural}.",
                "items": _ref3(item),
            },
            "kind": {"type": "string", "description": _KIND_DESCRIPTION},
            "metadata": {
                "allOf": [_ref3(f"{META}.ListMeta")],
                "default": {},
                "description": _LIST_METADATA_DESCRIPTION,
            },
        },
        "x-kubernetes-group-version-kind": [
            {
                "group": resource.group,
                "kind": resource.effective_list_kind,
                "version": resource.version,
            }
        ],
    }


def _gv(resource: OpenAPIResource) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else resource.version


# ---------------------------------------------------------------------------------------------
# Paths (shared between v2 and v3; rendered per format)


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "type": kind}


_DRY_RUN = _query("dryRun", "When present, modifications are not persisted (All).")
_FIELD_MANAGER = _query("fieldManager", "Name of the actor making the change.")
_FIELD_VALIDATION = _query(
    "fieldValidation",
    "How to handle unknown or duplicate fields: Ignore, Warn or Strict (the default of kubectl).",
)
_FORCE = _query("force", "Force an apply (server-side apply only).", "boolean")
_PRETTY = _query("pretty", "Pretty-print the output.")
_LIST_PARAMS = [
    _query("allowWatchBookmarks", "Ask for BOOKMARK watch events.", "boolean"),
    _query("continue", "Continue token of the previous page."),
    _query("fieldSelector", "Restrict the list by fields."),
    _query("labelSelector", "Restrict the list by labels."),
    _query("limit", "Maximum number of items to return.", "integer"),
    _query("resourceVersion", "Resource version the list or watch starts at."),
    _query("resourceVersionMatch", "How resourceVersion applies to a list."),
    _query("sendInitialEvents", "Start a watch with the current state.", "boolean"),
    _query("timeoutSeconds", "Timeout of a list or watch.", "integer"),
    _query("watch", "Watch for changes instead of listing.", "boolean"),
]


@attrs.frozen
class _Operation:
    method: str
    action: str
    operation_id: str
    description: str
    parameters: tuple[dict[str, Any], ...]
    body: str | None  # definition name of the request body, or "patch"/"delete"
    response: str  # definition name of the 200 response
    kind: str
    consumes: tuple[str, ...] = ("*/*",)


def _operations(resource: OpenAPIResource) -> dict[str, list[_Operation]]:
    """Path template -> operations, like the apiserver's route table for one resource."""
    gv = _gv(resource)
    prefix = f"/api/{resource.version}" if not resource.group else f"/apis/{gv}"
    ns = "/namespaces/{namespace}" if resource.namespaced else ""
    collection = f"{prefix}{ns}/{resource.plural}"
    item = f"{collection}/{{name}}"
    obj = definition_name(resource.group, resource.version, resource.kind)
    lst = definition_name(resource.group, resource.version, resource.effective_list_kind)
    camel = resource.kind
    scope = "Namespaced" if resource.namespaced else ""
    suffix = "".join(part.capitalize() for part in (resource.group or "core").split("."))
    version = resource.version.capitalize()
    verbs = set(resource.verbs)
    write_params = (_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION)
    patch_types = PATCH_TYPES[:2] + ((STRATEGIC_MERGE_PATCH,) if resource.strategic_merge else ())
    patch_types += PATCH_TYPES[2:]

    def op_id(verb: str, what: str = "") -> str:
        return f"{verb}{suffix}{version}{scope}{camel}{what}"

    paths: dict[str, list[_Operation]] = {collection: [], item: []}
    if "list" in verbs:
        paths[collection].append(
            _Operation("get", "list", op_id("list"), f"list or watch {resource.plural}",
                       tuple(_LIST_PARAMS), None, lst, camel)
        )  # fmt: skip
    if "create" in verbs:
        paths[collection].append(
            _Operation("post", "post", op_id("create"), f"create a {camel}",
                       write_params, obj, obj, camel)
        )  # fmt: skip
    if "deletecollection" in verbs:
        paths[collection].append(
            _Operation("delete", "deletecollection", op_id("deleteCollection"),
                       f"delete a collection of {resource.plural}",
                       (_DRY_RUN, *_LIST_PARAMS), f"{META}.DeleteOptions", f"{META}.Status", camel)
        )  # fmt: skip
    if "get" in verbs:
        paths[item].append(
            _Operation("get", "get", op_id("read"), f"read the specified {camel}",
                       (_query("resourceVersion", "Resource version to read at."),), None, obj,
                       camel)
        )  # fmt: skip
    if "update" in verbs:
        paths[item].append(
            _Operation("put", "put", op_id("replace"), f"replace the specified {camel}",
                       write_params, obj, obj, camel)
        )  # fmt: skip
    if "patch" in verbs:
        paths[item].append(
            _Operation("patch", "patch", op_id("patch"), f"partially update the specified {camel}",
                       (*write_params, _FORCE), "patch", obj, camel, patch_types)
        )  # fmt: skip
    if "delete" in verbs:
        paths[item].append(
            _Operation("delete", "delete", op_id("delete"), f"delete a {camel}",
                       (_DRY_RUN, _query("gracePeriodSeconds", "Grace period.", "integer"),
                        _query("propagationPolicy", "Orphan, Background or Foreground.")),
                       f"{META}.DeleteOptions", f"{META}.Status", camel)
        )  # fmt: skip
    if resource.namespaced and "list" in verbs:
        paths[f"{prefix}/{resource.plural}"] = [
            _Operation("get", "list", op_id("list", "ForAllNamespaces").replace(scope, "", 1),
                       f"list or watch {resource.plural} in all namespaces", tuple(_LIST_PARAMS),
                       None, lst, camel)
        ]  # fmt: skip
    if resource.status_subresource:
        status = f"{item}/status"
        paths[status] = [
            _Operation("get", "get", op_id("read", "Status"), f"read status of the {camel}",
                       (), None, obj, camel),
            _Operation("put", "put", op_id("replace", "Status"), f"replace status of the {camel}",
                       write_params, obj, obj, camel),
            _Operation("patch", "patch", op_id("patch", "Status"),
                       f"partially update status of the {camel}", (*write_params, _FORCE),
                       "patch", obj, camel, patch_types),
        ]  # fmt: skip
    return {path: ops for path, ops in paths.items() if ops}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    params = []
    if "{name}" in path:
        params.append({"name": "name", "in": "path", "required": True,
                       "description": "name of the object", "type": "string"})  # fmt: skip
    if "{namespace}" in path:
        params.append({"name": "namespace", "in": "path", "required": True,
                       "description": "object name and auth scope", "type": "string"})  # fmt: skip
    params.append(_PRETTY)
    return params


def _v3_parameter(param: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in param.items() if k != "type"}
    out["schema"] = {"type": param["type"], "uniqueItems": True}
    return out


def _gvk_extension(resource: OpenAPIResource, kind: str) -> dict[str, str]:
    return {"group": resource.group, "kind": kind, "version": resource.version}


def _v3_paths(resources: Sequence[OpenAPIResource]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for resource in resources:
        for path, operations in _operations(resource).items():
            entry: dict[str, Any] = {
                "parameters": [_v3_parameter(p) for p in _path_parameters(path)]
            }
            for op in operations:
                body: dict[str, Any] = {
                    "tags": [_gv(resource).replace("/", "_")],
                    "description": op.description,
                    "operationId": op.operation_id,
                    "parameters": [_v3_parameter(p) for p in op.parameters],
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {
                                "application/json": {"schema": _ref3(op.response)},
                                "application/yaml": {"schema": _ref3(op.response)},
                            },
                        },
                        "401": {"description": "Unauthorized"},
                    },
                    "x-kubernetes-action": op.action,
                    "x-kubernetes-group-version-kind": _gvk_extension(resource, op.kind),
                }
                if op.body == "patch":
                    body["requestBody"] = {
                        "content": {t: {"schema": _ref3(f"{META}.Patch")} for t in op.consumes},
                        "required": True,
                    }
                elif op.body is not None:
                    body["requestBody"] = {
                        "content": {"*/*": {"schema": _ref3(op.body)}},
                        "required": op.method != "delete",
                    }
                if op.method == "post":
                    body["responses"]["201"] = body["responses"]["200"] | {"description": "Created"}
                entry[op.method] = body
            paths[path] = entry
    return paths


# ---------------------------------------------------------------------------------------------
# v3


def build_v3_document(
    resources: Iterable[OpenAPIResource], group: str, version: str
) -> dict[str, Any]:
    """The ``/openapi/v3/<api|apis/group>/<version>`` document of one group-version."""
    selected = sorted(
        (r for r in resources if r.group == group and r.version == version),
        key=lambda r: r.plural,
    )
    if not selected:
        raise OpenAPIError(f"no served resource in {group_version_path(group, version)}")
    schemas = _meta_schemas()
    for resource in selected:
        schemas[definition_name(group, version, resource.kind)] = _resource_schema(resource)
        schemas[definition_name(group, version, resource.effective_list_kind)] = _list_schema(
            resource
        )
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": _v3_paths(selected),
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def v3_documents(resources: Iterable[OpenAPIResource]) -> dict[str, dict[str, Any]]:
    """Every group-version document, keyed by its index path (``apis/<group>/<version>``)."""
    resources = list(resources)
    group_versions = sorted({r.group_version for r in resources})
    return {
        group_version_path(group, version): build_v3_document(resources, group, version)
        for group, version in group_versions
    }


def document_hash(document: Mapping[str, Any]) -> str:
    """The content hash in ``serverRelativeURL`` (SHA-512, upper-case hex, like the apiserver)."""
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha512(encoded).hexdigest().upper()


def build_v3_index(
    documents: Mapping[str, Mapping[str, Any]], *, prefix: str = "/openapi/v3"
) -> dict[str, Any]:
    """The ``/openapi/v3`` discovery document for the given group-version documents."""
    return {
        "paths": {
            path: {"serverRelativeURL": f"{prefix}/{path}?hash={document_hash(doc)}"}
            for path, doc in sorted(documents.items())
        }
    }


# ---------------------------------------------------------------------------------------------
# v2

_V2_DROPPED = frozenset({"nullable", "anyOf", "oneOf", "not", "x-kubernetes-validations"})


def _to_v2(value: Any) -> Any:
    """A v3 schema fragment in Swagger 2.0 form, as the apiserver publishes CRDs in v2.

    Refs move to ``#/definitions``; ``nullable`` and the combinators v2 cannot express are
    dropped; int-or-string fields lose their type (v2 cannot say "integer or string").
    """
    if isinstance(value, list):
        return [_to_v2(item) for item in value]
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in _V2_DROPPED:
            continue
        if key == "$ref" and isinstance(item, str):
            out[key] = item.replace("#/components/schemas/", "#/definitions/")
        elif key in ("properties", "patternProperties", "definitions") and isinstance(
            item, Mapping
        ):
            out[key] = {name: _to_v2(sub) for name, sub in item.items()}
        else:
            out[key] = _to_v2(item)
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if "allOf" in out and len(out["allOf"]) == 1 and "$ref" in out["allOf"][0]:
        # Swagger 2.0 ignores siblings of $ref; the apiserver publishes a bare $ref.
        out = {"$ref": out["allOf"][0]["$ref"], **{k: v for k, v in out.items() if k in (
            "description",)}}  # fmt: skip
    return out


def build_v2(resources: Iterable[OpenAPIResource], *, server_version: str = "") -> dict[str, Any]:
    """The ``/openapi/v2`` Swagger 2.0 document (JSON form) for all resources."""
    resources = sorted(resources, key=lambda r: (r.group, r.version, r.plural))
    definitions: dict[str, Any] = {name: _to_v2(s) for name, s in _meta_schemas().items()}
    paths: dict[str, Any] = {}
    for resource in resources:
        obj = definition_name(resource.group, resource.version, resource.kind)
        lst = definition_name(resource.group, resource.version, resource.effective_list_kind)
        definitions[obj] = _to_v2(_resource_schema(resource))
        definitions[lst] = _to_v2(_list_schema(resource))
        for path, operations in _operations(resource).items():
            entry: dict[str, Any] = {"parameters": _path_parameters(path)}
            for op in operations:
                params = [dict(p) for p in op.parameters]
                if op.body is not None:
                    body_ref = f"{META}.Patch" if op.body == "patch" else op.body
                    params.insert(
                        0,
                        {"name": "body", "in": "body", "required": op.method != "delete",
                         "schema": {"$ref": f"#/definitions/{body_ref}"}},
                    )  # fmt: skip
                entry[op.method] = {
                    "description": op.description,
                    "consumes": list(op.consumes),
                    "produces": ["application/json", "application/yaml"],
                    "schemes": ["https"],
                    "tags": [_gv(resource).replace("/", "_")],
                    "operationId": op.operation_id,
                    "parameters": params,
                    "responses": {
                        "200": {
                            "description": "OK",
                            "schema": {"$ref": f"#/definitions/{op.response}"},
                        },
                        "401": {"description": "Unauthorized"},
                    },
                    "x-kubernetes-action": op.action,
                    "x-kubernetes-group-version-kind": _gvk_extension(resource, op.kind),
                }
            paths[path] = entry
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": server_version or "unversioned"},
        "paths": dict(sorted(paths.items())),
        "definitions": dict(sorted(definitions.items())),
    }


V2_PROTOBUF_MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def v2_protobuf_document(server_version: str) -> bytes:
    """An empty OpenAPI v2 document in the protobuf form kubectl asks for.

    The message is gnostic's ``openapi.v2.Document`` with only ``swagger`` (field 1) and
    ``info`` (field 2: ``title`` 1, ``version`` 2) set; strings are length-delimited fields.
    """

    def field(number: int, data: bytes) -> bytes:
        return _varint((number << 3) | 2) + _varint(len(data)) + data

    info = field(1, b"Kubernetes") + field(2, server_version.encode())
    return field(1, b"2.0") + field(2, info)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def v2_acceptable(accept: str | None) -> bool:
    """Whether an ``/openapi/v2`` request's ``Accept`` header admits the JSON document.

    kubectl asks only for the protobuf form, which gets :func:`v2_protobuf_document` instead.
    """
    if accept is None or not accept.strip():
        return True
    for clause in accept.split(","):
        media_type, _, params = clause.strip().partition(";")
        media_type = media_type.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 1.0
        if quality > 0 and media_type in ("application/json", "application/*", "*/*"):
            return True
    return False

"""The emulated apiserver's semantics, independent of HTTP.

:class:`ApiServer` implements get, list, watch, create, update, patch, delete and
deletecollection over the :class:`~.store.Store` for a resolved :class:`Target`: server-populated
metadata, optimistic concurrency, the status subresource split, generation, admission of custom
resources against their structural schema, finalizers, ownerReference garbage collection and
CRD registration. Behaviour follows kubernetes.io/docs/reference/using-api/api-concepts/ and the
pages named in docs/kubesim.md. Errors are raised as :class:`~.status.ApiError`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import structlog

from infercost.api.names import (
    DNS1123_LABEL,
    DNS1123_LABEL_FMT,
    DNS1123_LABEL_MAX_LENGTH,
    DNS1123_SUBDOMAIN,
    DNS1123_SUBDOMAIN_FMT,
    DNS1123_SUBDOMAIN_MAX_LENGTH,
    LABEL_VALUE_FMT,
    is_label_key,
    is_label_value,
)

from . import schema as schemas
from . import tables
from .faults import Faults
from .patching import patch_function
from .payloads import payload_errors
from .rendering import negotiate, watch_renderer
from .resources import CrdError, Registry, ResourceDef, crd_resources
from .selection import SelectorError, field_matcher, parse_field_selector, parse_label_selector
from .status import (
    ApiError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    expired,
    invalid,
    namespace_not_found,
    not_found,
    unsupported_media_type,
)
from .store import ObjKey, Store, Stored, TooOldError, encode
from .watching import Watcher, error_line

log = structlog.get_logger("infercost.testing.kubesim")

_DNS1123_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN)
_DNS1123_LABEL = re.compile(DNS1123_LABEL)
# The apiserver's wording, which quotes the unanchored pattern.
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    f"for validation is '{DNS1123_SUBDOMAIN_FMT}')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    f"used for validation is '{DNS1123_LABEL_FMT}')"
)
# Kinds whose names must be DNS-1123 labels rather than subdomains.
_LABEL_NAMED = frozenset({"namespaces", "services"})
_EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this response "
    "to retrieve the remainder of the results. Continuing with the provided token results in an "
    "inconsistent list - objects that were created, modified, or deleted between the time the "
    "first chunk was returned and now may show up in the list."
)
_CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"
_NS_KEY = "namespaces"


@attrs.frozen
class Target:
    resource: ResourceDef
    namespace: str | None
    name: str | None
    subresource: str | None


@attrs.define
class Result:
    """A finished response: code, JSON (or negotiated) body, extra headers."""

    code: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = attrs.Factory(list)


def warning_header(text: str) -> str:
    """A ``Warning: 299 - "text"`` value (RFC 7234 quoted-string escaping)."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{quoted}"'


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def decode_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None


def _flag(query: dict[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("true", "1")


def _int_param(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f'invalid value for {name}: "{raw}" is not an integer') from None
    if value < 0:
        raise bad_request(f"invalid value for {name}: {value} must not be negative")
    return value


def _parse_rv(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f'invalid resource version: "{raw}"') from None
    if value < 0:
        raise bad_request(f'invalid resource version: "{raw}"')
    return value


def _without(obj: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def _meta_for_compare(meta: dict[str, Any]) -> dict[str, Any]:
    return _without(meta, "resourceVersion", "managedFields")


class ApiServer:
    def __init__(
        self,
        registry: Registry,
        store: Store,
        faults: Faults | None = None,
        bookmark_interval: float = 5.0,
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.registry = registry
        self.store = store
        self.faults = faults
        self.bookmark_interval = bookmark_interval
        self.now = now
        self._ip_lock = threading.Lock()
        self._next_ip = 1

    def timestamp(self) -> str:
        """The current time as the apiserver writes it (RFC 3339, seconds, ``Z``)."""
        return self.now().astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # Rendering ----------------------------------------------------------------------------

    def render(self, r: ResourceDef, stored: Stored) -> bytes:
        obj = stored.obj
        if not r.converts and obj.get("apiVersion") == r.group_version:
            return stored.raw()
        return encode(self.view(r, obj))

    def view(self, r: ResourceDef, obj: dict[str, Any]) -> dict[str, Any]:
        """The stored object as ``r``'s version presents it."""
        if r.converts:
            return r.from_storage(obj)
        if obj.get("apiVersion") != r.group_version:
            return dict(obj, apiVersion=r.group_version)
        return obj

    def _result(
        self, code: int, r: ResourceDef, stored: Stored, warnings: list[str] | None = None
    ) -> Result:
        headers = [("Warning", warning_header(w)) for w in warnings or ()]
        return Result(code, self.render(r, stored), headers=headers)

    # Reads ----------------------------------------------------------------------------------

    def get(self, t: Target, accept: str | None, query: dict[str, str] | None = None) -> Result:
        r = t.resource
        assert t.name is not None
        stored = self.store.get(r.storage_key, (t.namespace or "", t.name))
        if stored is None:
            raise not_found(r.plural, r.group, t.name)
        content_type, body = negotiate(
            accept, query or {}, r, lambda: self.render(r, stored), is_list=False, now=self.now
        )
        return Result(200, body, content_type)

    def _matcher(self, t: Target, query: dict[str, str]) -> Callable[[dict[str, Any]], bool]:
        r = t.resource
        try:
            label_match = parse_label_selector(query.get("labelSelector", ""))
            field_reqs = parse_field_selector(query.get("fieldSelector", ""))
        except SelectorError as exc:
            raise bad_request(str(exc)) from None
        for field, _, _ in field_reqs:
            if not r.supported_field(field):
                if r.is_crd_resource:
                    allowed = ['"metadata.name"'] + (
                        ['"metadata.namespace"'] if r.namespaced else []
                    )
                    allowed += [f'"{f}"' for f in r.selectable_fields]
                    raise bad_request(
                        f'"{field}" is not a known field selector: only {", ".join(allowed)}'
                    )
                raise bad_request(f"field label not supported: {field}")
        if t.name is not None:
            field_reqs.append(("metadata.name", "=", t.name))
        fields = field_matcher(field_reqs)
        converts = r.converts

        def match(obj: dict[str, Any]) -> bool:
            view = r.from_storage(obj) if converts else obj
            return label_match(obj["metadata"].get("labels") or {}) and fields(view)

        return match

    def list_objects(self, t: Target, query: dict[str, str], accept: str | None) -> Result:
        r = t.resource
        match = self._matcher(t, query)
        limit = _int_param(query, "limit")
        token = query.get("continue", "")
        rv_raw = query.get("resourceVersion", "")
        rv_match = query.get("resourceVersionMatch", "")
        if rv_match and rv_match not in ("NotOlderThan", "Exact"):
            raise bad_request(
                f'resourceVersionMatch: Unsupported value: "{rv_match}": supported values: '
                '"Exact", "NotOlderThan"'
            )
        if rv_match and not rv_raw:
            raise bad_request(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
                "resourceVersion is provided"
            )
        if token and rv_raw:
            raise bad_request("specifying resource version is not allowed when using continue")
        if rv_match == "Exact" and rv_raw == "0":
            raise bad_request(
                'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for '
                'resourceVersion "0"'
            )
        start = ""
        key = r.storage_key
        with self.store.lock:
            current = self.store.rv
            if token:
                list_rv, start = self._decode_continue(token)
                try:
                    state = self.store.snapshot(key, list_rv)
                except TooOldError:
                    raise expired(_EXPIRED_CONTINUE) from None
            elif rv_match == "Exact":
                list_rv = _parse_rv(rv_raw)
                if list_rv > current:
                    raise _too_large(list_rv, current)
                try:
                    state = self.store.snapshot(key, list_rv)
                except TooOldError:
                    raise expired("The resourceVersion for the provided list is too old.") from None
            else:
                if rv_raw and rv_raw != "0":
                    requested = _parse_rv(rv_raw)
                    if requested > current:
                        raise _too_large(requested, current)
                list_rv = current
                state = dict(self.store.objects(key))
        ns = t.namespace
        keys = sorted(
            (k for k in state if (ns is None or k[0] == ns) and _after(k, start)), key=_sort_key
        )
        items = [state[k] for k in keys if match(state[k].obj)]
        next_token = ""
        remaining: int | None = None
        if limit and len(items) > limit:
            last = items[limit - 1].obj["metadata"]
            remaining = len(items) - limit
            items = items[:limit]
            next_token = self._encode_continue(
                list_rv, f"{last.get('namespace') or ''}/{last['name']}"
            )
        meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if next_token:
            meta["continue"] = next_token
            if not query.get("labelSelector") and not query.get("fieldSelector"):
                meta["remainingItemCount"] = remaining

        def json_body() -> bytes:
            head = {"kind": f"{r.kind}List", "apiVersion": r.group_version, "metadata": meta}
            prefix = encode(head)[:-1] + b',"items":['
            return prefix + b",".join(self.render(r, s) for s in items) + b"]}"

        content_type, body = negotiate(accept, query, r, json_body, is_list=True, now=self.now)
        return Result(200, body, content_type)

    @staticmethod
    def _encode_continue(rv: int, start: str) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start + "\x00"})
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, str]:
        try:
            doc = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
            rv = int(doc["rv"])
            start = str(doc["start"]).rstrip("\x00")
            if doc.get("v") != "meta.k8s.io/v1" or rv < 0:
                raise ValueError(doc)
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise bad_request(
                "continue key is not valid: incorrect encoded start resourceVersion "
                "(version meta.k8s.io/v1)"
            ) from None
        return rv, start

    # Watch ----------------------------------------------------------------------------------

    def watch(self, t: Target, query: dict[str, str], accept: str | None = None) -> WatchStream:
        r = t.resource
        match = self._matcher(t, query)
        timeout = _int_param(query, "timeoutSeconds")
        bookmarks = _flag(query, "allowWatchBookmarks")
        initial = query.get("sendInitialEvents", "").lower() == "true"
        rv_raw = query.get("resourceVersion", "")
        if initial and query.get("resourceVersionMatch") != "NotOlderThan":
            raise bad_request(
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
                "resourceVersionMatch to NotOlderThan"
            )
        if initial and not bookmarks:
            raise bad_request(
                "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting "
                "allowWatchBookmarks to true"
            )
        as_table = watch_renderer(accept, query, r, now=self.now)

        def render(stored: Stored) -> bytes:
            raw = self.render(r, stored)
            return raw if as_table is None else encode(as_table(json.loads(raw)))

        watcher = Watcher(t.namespace, match, render, r.kind, r.group_version)
        lines: list[bytes] = []
        key = r.storage_key
        with self.store.lock:
            if initial or rv_raw in ("", "0"):
                state = self.store.objects(key)
                for okey in sorted(state, key=_sort_key):
                    stored = state[okey]
                    if watcher.passes(stored):
                        lines.append(watcher.line("ADDED", stored))
                if initial and bookmarks:
                    lines.append(watcher.bookmark(self.store.rv, initial_events_end=True))
            else:
                since = _parse_rv(rv_raw)
                try:
                    events = self.store.events_since(key, since)
                except TooOldError as exc:
                    status = expired(str(exc)).status()
                    return WatchStream(self, watcher, key, [error_line(status)], closed=True)
                for event in events:
                    item = watcher.translate(event)
                    if item is not None:
                        lines.append(watcher.line(*item))
            self.store.add_watcher(key, watcher)
        return WatchStream(self, watcher, key, lines, timeout_seconds=timeout, bookmarks=bookmarks)

    # Writes ---------------------------------------------------------------------------------

    def _decode_object(self, r: ResourceDef, body: bytes) -> dict[str, Any]:
        obj = decode_json(body)
        if not isinstance(obj, dict):
            raise bad_request(
                "couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{type(obj).__name__} into Go value of type struct"
            )
        api_version = obj.get("apiVersion")
        if api_version not in (None, "") and api_version != r.group_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({r.group_version})"
            )
        kind = obj.get("kind")
        if kind not in (None, "") and kind != r.kind:
            raise bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({r.kind})"
            )
        obj["apiVersion"] = r.group_version
        obj["kind"] = r.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata: must be an object")
        return obj

    def _namespace_for(self, t: Target, obj: dict[str, Any]) -> None:
        r = t.resource
        meta = obj["metadata"]
        if r.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and t.namespace and body_ns != t.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = t.namespace or body_ns
        else:
            meta.pop("namespace", None)

    def _admit(
        self, r: ResourceDef, obj: dict[str, Any], query: dict[str, str], name: str
    ) -> list[str]:
        """Prune, default and validate a custom resource; returns warnings."""
        mode = query.get("fieldValidation", "") or "Ignore"
        if mode not in ("Strict", "Warn", "Ignore"):
            raise bad_request(
                f"fieldValidation: Unsupported value: {json.dumps(mode)}: supported values: "
                '"Ignore", "Strict", "Warn"'
            )
        warnings: list[str] = []
        if r.is_crd_resource:
            unknown = schemas.prune(obj, r.schema)
            if unknown and mode == "Strict":
                fields = ", ".join(f'unknown field "{u}"' for u in unknown)
                raise bad_request(
                    f'{r.kind} in version "{r.version}" cannot be handled as a {r.kind}: strict '
                    f"decoding error: {fields}"
                )
            if unknown and mode == "Warn":
                warnings = [f'unknown field "{u}"' for u in unknown]
            schemas.prune_nulls(obj, r.schema)
            schemas.apply_defaults(obj, r.schema)
        errors = self._validate_meta(r, obj["metadata"])
        if r.is_crd_resource:
            errors += schemas.validate(obj, r.schema)
        elif not r.group:
            errors += payload_errors(r.kind, obj)
        if r.storage_key == _CRD_KEY:
            try:
                crd_resources(obj)
            except CrdError as exc:
                errors += [FieldError(reason, field, msg) for reason, field, msg in exc.errors]
            else:
                errors += _crd_version_errors(obj)
        if errors:
            raise invalid(r.kind, r.group, name, errors)
        return warnings

    def _validate_meta(self, r: ResourceDef, meta: dict[str, Any]) -> list[FieldError]:
        errors: list[FieldError] = []
        name = meta.get("name") or ""
        rx, msg = (
            (_DNS1123_LABEL, _LABEL_MSG)
            if r.plural in _LABEL_NAMED and not r.group
            else (
                _DNS1123_SUBDOMAIN,
                _SUBDOMAIN_MSG,
            )
        )
        limit = DNS1123_LABEL_MAX_LENGTH if rx is _DNS1123_LABEL else DNS1123_SUBDOMAIN_MAX_LENGTH
        if name and (not rx.match(name)):
            errors.append(
                FieldError(
                    "FieldValueInvalid",
                    "metadata.name",
                    f"Invalid value: {json.dumps(name)}: {msg}",
                )
            )
        elif len(name) > limit:
            errors.append(
                FieldError(
                    "FieldValueInvalid",
                    "metadata.name",
                    f"Invalid value: {json.dumps(name)}: must be no more than {limit} characters",
                )
            )
        for field in ("labels", "annotations"):
            value = meta.get(field)
            if value is None:
                continue
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                errors.append(
                    FieldError(
                        "FieldValueTypeInvalid",
                        f"metadata.{field}",
                        f"Invalid value: {schemas.go_repr(value)}: must be a map of strings",
                    )
                )
                continue
            for k, v in value.items():
                if not is_label_key(k):
                    errors.append(
                        FieldError(
                            "FieldValueInvalid",
                            f"metadata.{field}",
                            f"Invalid value: {json.dumps(k)}: name part must consist of "
                            "alphanumeric characters, '-', '_' or '.', and must start and end "
                            "with an alphanumeric character",
                        )
                    )
                if field == "labels" and not is_label_value(v):
                    errors.append(
                        FieldError(
                            "FieldValueInvalid",
                            "metadata.labels",
                            f"Invalid value: {json.dumps(v)}: a valid label must be an empty "
                            "string or consist of alphanumeric characters, '-', '_' or '.', and "
                            "must start and end with an alphanumeric character (e.g. 'MyValue',  "
                            f"or 'my_value',  or '12345', regex used for validation is "
                            f"'{LABEL_VALUE_FMT}')",
                        )
                    )
        finalizers = meta.get("finalizers")
        if finalizers is not None and not (
            isinstance(finalizers, list) and all(isinstance(f, str) for f in finalizers)
        ):
            errors.append(
                FieldError(
                    "FieldValueTypeInvalid",
                    "metadata.finalizers",
                    f"Invalid value: {schemas.go_repr(finalizers)}: must be a list of strings",
                )
            )
        refs = meta.get("ownerReferences")
        if refs is not None:
            if not isinstance(refs, list):
                errors.append(
                    FieldError(
                        "FieldValueTypeInvalid",
                        "metadata.ownerReferences",
                        "Invalid value: must be a list",
                    )
                )
            else:
                for i, ref in enumerate(refs):
                    for field in ("apiVersion", "kind", "name", "uid"):
                        if not isinstance(ref, dict) or not ref.get(field):
                            errors.append(
                                FieldError(
                                    "FieldValueRequired" if field != "uid" else "FieldValueInvalid",
                                    f"metadata.ownerReferences[{i}].{field}",
                                    "Required value"
                                    if field != "uid"
                                    else 'Invalid value: "": uid must not be empty',
                                )
                            )
        return errors

    def _check_namespace(self, r: ResourceDef, namespace: str | None) -> None:
        if not r.namespaced:
            return
        if not namespace:
            raise bad_request(
                "the server could not find the requested resource: namespace required"
            )
        if self.store.get(_NS_KEY, ("", namespace)) is None:
            raise namespace_not_found(namespace)

    def _generate_name(self, r: ResourceDef, meta: dict[str, Any]) -> None:
        if meta.get("name"):
            return
        prefix = meta.get("generateName")
        if not prefix:
            raise invalid(
                r.kind,
                r.group,
                "",
                [
                    FieldError(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )
                ],
            )
        alphabet = "bcdfghjklmnpqrstvwxz2456789"
        for _ in range(16):
            name = prefix[:58] + "".join(secrets.choice(alphabet) for _ in range(5))
            if self.store.get(r.storage_key, (meta.get("namespace") or "", name)) is None:
                meta["name"] = name
                return
        raise ApiError(500, f"unable to generate a unique name from generateName {prefix!r}")

    def create(self, t: Target, body: bytes, query: dict[str, str]) -> Result:
        r = t.resource
        if t.subresource:
            raise ApiError(405, f"create is not supported on {r.plural}/{t.subresource}")
        obj = self._decode_object(r, body)
        self._namespace_for(t, obj)
        if r.status_subresource and r.is_crd_resource:
            # Status is not part of a create; it is dropped before validation.
            obj.pop("status", None)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise ApiError(
                500,
                "Internal error occurred: resourceVersion should not be set on objects to be "
                "created",
                "InternalError",
            )
        dry_run = "dryRun" in query
        with self.store.lock:
            self._check_namespace(r, meta.get("namespace"))
            self._generate_name(r, meta)
            name = meta["name"]
            warnings = self._admit(r, obj, query, name)
            okey = (meta.get("namespace") or "", name)
            if self.store.get(r.storage_key, okey) is not None:
                raise already_exists(r.plural, r.group, name)
            obj = self._prepare_create(r, obj)
            if dry_run:
                return self._result(
                    201,
                    r,
                    Stored(dict(obj, metadata=dict(obj["metadata"], resourceVersion=""))),
                    warnings,
                )
            stored = self.store.put(r.storage_key, self._to_storage(r, obj), "ADDED")
            self._after_write(r, stored)
            stored = self.store.get(r.storage_key, okey) or stored
        return self._result(201, r, stored, warnings)

    def _to_storage(self, r: ResourceDef, obj: dict[str, Any]) -> dict[str, Any]:
        if r.converts:
            return r.to_storage(obj)
        if r.storage_version and r.storage_version != r.version:
            return dict(obj, apiVersion=f"{r.group}/{r.storage_version}")
        return obj

    def _prepare_create(self, r: ResourceDef, obj: dict[str, Any]) -> dict[str, Any]:
        meta = dict(obj["metadata"])
        for field in (
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.timestamp()
        if r.generation != "none":
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        obj = dict(obj, metadata=meta)
        if r.status_subresource and r.is_crd_resource:
            obj.pop("status", None)
        if r.storage_key == "pods":
            obj["status"] = {"phase": "Pending"}
        elif r.storage_key == _NS_KEY:
            obj["status"] = {"phase": "Active"}
            labels = dict(meta.get("labels") or {})
            labels["kubernetes.io/metadata.name"] = meta["name"]
            meta["labels"] = labels
        elif r.storage_key == "services":
            spec = dict(obj.get("spec") or {})
            spec.setdefault("type", "ClusterIP")
            if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
                spec["clusterIP"] = self._allocate_ip()
                spec["clusterIPs"] = [spec["clusterIP"]]
            obj["spec"] = spec
        elif r.storage_key == "secrets" and not obj.get("type"):
            obj["type"] = "Opaque"
        elif r.storage_key == _CRD_KEY:
            obj["status"] = self._crd_status(obj)
        return obj

    def _allocate_ip(self) -> str:
        with self._ip_lock:
            n = self._next_ip
            self._next_ip += 1
        return f"10.96.{(n >> 8) & 255}.{n & 255}"

    def _crd_status(self, crd: dict[str, Any]) -> dict[str, Any]:
        now = self.timestamp()
        spec = crd.get("spec") or {}
        storage = [v.get("name") for v in spec.get("versions") or () if v.get("storage")]
        return {
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "lastTransitionTime": now,
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                },
                {
                    "type": "Established",
                    "status": "True",
                    "lastTransitionTime": now,
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                },
            ],
            "acceptedNames": copy.deepcopy(spec.get("names") or {}),
            "storedVersions": storage,
        }

    def _after_write(self, r: ResourceDef, stored: Stored) -> None:
        if r.storage_key == _CRD_KEY:
            defs = crd_resources(stored.obj)
            self.registry.set_crd(stored.obj["metadata"]["name"], defs)
        elif r.storage_key == _NS_KEY:
            self._ensure_default_service_account(stored.obj["metadata"]["name"])

    def _ensure_default_service_account(self, namespace: str) -> None:
        """What the serviceaccount controller does: every namespace gets a ``default`` account
        (cluster tooling waits for it before it calls a cluster ready)."""
        sa = self.registry.lookup("", "v1", "serviceaccounts")
        if sa is None or self.store.get(sa.storage_key, (namespace, "default")) is not None:
            return
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
        self.create(Target(sa, namespace, None, None), json.dumps(body).encode(), {})

    def update(self, t: Target, body: bytes, query: dict[str, str]) -> Result:
        r = t.resource
        assert t.name is not None
        obj = self._decode_object(r, body)
        self._namespace_for(t, obj)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != t.name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({t.name})"
            )
        meta["name"] = t.name
        okey = (t.namespace or "", t.name)
        with self.store.lock:
            old = self.store.get(r.storage_key, okey)
            if old is None:
                raise not_found(r.plural, r.group, t.name)
            rv = meta.get("resourceVersion")
            if rv:
                if str(rv) != old.obj["metadata"]["resourceVersion"]:
                    raise conflict(r.plural, r.group, t.name)
            elif not r.unconditional_update:
                raise invalid(
                    r.kind,
                    r.group,
                    t.name,
                    [
                        FieldError(
                            "FieldValueInvalid",
                            "metadata.resourceVersion",
                            "Invalid value: 0x0: must be specified for an update",
                        )
                    ],
                )
            return self._write(t, old, obj, query)

    def patch(self, t: Target, body: bytes, content_type: str, query: dict[str, str]) -> Result:
        r = t.resource
        assert t.name is not None
        fn = patch_function(content_type)
        if fn is None:
            raise unsupported_media_type(content_type)
        okey = (t.namespace or "", t.name)
        with self.store.lock:
            old = self.store.get(r.storage_key, okey)
            if old is None:
                raise not_found(r.plural, r.group, t.name)
            current = copy.deepcopy(self.view(r, old.obj))
            patched = fn(current, body, r)
            meta = patched.get("metadata")
            if not isinstance(meta, dict):
                raise bad_request("metadata: the patched object has no metadata")
            rv = meta.get("resourceVersion")
            if rv and str(rv) != old.obj["metadata"]["resourceVersion"]:
                raise conflict(r.plural, r.group, t.name)
            if meta.get("name") != t.name:
                raise bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the "
                    f"URL ({t.name})"
                )
            if r.namespaced and meta.get("namespace") != t.namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            patched["apiVersion"] = r.group_version
            patched["kind"] = r.kind
            return self._write(t, old, patched, query)

    def _write(self, t: Target, old: Stored, obj: dict[str, Any], query: dict[str, str]) -> Result:
        """Finish an update or patch of ``old`` to ``obj`` (caller holds the lock)."""
        r = t.resource
        assert t.name is not None
        if self.faults is not None:
            fault = self.faults.take_conflict(r.plural, r.group, t.namespace, t.name)
            if fault is not None:
                raise fault
        old_view = self.view(r, old.obj)
        if t.subresource == "status":
            new = copy.deepcopy(old_view)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            new["metadata"]["resourceVersion"] = old.obj["metadata"]["resourceVersion"]
        else:
            new = obj
            if r.status_subresource:
                if "status" in old_view:
                    new["status"] = copy.deepcopy(old_view["status"])
                else:
                    new.pop("status", None)
        warnings = self._admit(r, new, query, t.name)
        meta = new["metadata"]
        old_meta = old.obj["metadata"]
        for field in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta.pop("managedFields", None)
        meta["name"] = t.name
        if r.namespaced:
            meta["namespace"] = t.namespace
        deleting = "deletionTimestamp" in old_meta
        if deleting:
            added = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
            if added:
                raise invalid(
                    r.kind,
                    r.group,
                    t.name,
                    [
                        FieldError(
                            "FieldValueForbidden",
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if the object is being "
                            "deleted, found new finalizers " + json.dumps(sorted(added)),
                        )
                    ],
                )
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        self._set_generation(r, old_view, new)
        if r.storage_key == _CRD_KEY and t.subresource != "status":
            new["status"] = dict(old_view.get("status") or {})
            new["status"].update(self._crd_status(new))
        if self._same(old_view, new):
            return self._result(200, r, old, warnings)
        if "dryRun" in query:
            return self._result(200, r, Stored(new), warnings)
        if deleting and not meta.get("finalizers"):
            # The apiserver deletes instead of storing the update: one DELETED event carrying
            # the last stored state.
            final = self._remove(r, (t.namespace or "", t.name))
            return self._result(200, r, final, warnings)
        stored = self.store.put(r.storage_key, self._to_storage(r, new), "MODIFIED")
        self._after_write(r, stored)
        if deleting:
            self._progress_deletion(r.storage_key, (t.namespace or "", t.name))
            stored = self.store.get(r.storage_key, (t.namespace or "", t.name)) or stored
        return self._result(200, r, stored, warnings)

    @staticmethod
    def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
        if _without(old, "metadata") != _without(new, "metadata"):
            return False
        return _meta_for_compare(old["metadata"]) == _meta_for_compare(new["metadata"])

    @staticmethod
    def _set_generation(r: ResourceDef, old: dict[str, Any], new: dict[str, Any]) -> None:
        meta = new["metadata"]
        generation = old["metadata"].get("generation")
        if r.generation == "none" or generation is None:
            meta.pop("generation", None)
            return
        if r.generation == "spec":
            changed = old.get("spec") != new.get("spec")
        else:
            skip = ("metadata", "status") if r.status_subresource else ("metadata",)
            changed = _without(old, *skip) != _without(new, *skip)
        meta["generation"] = generation + 1 if changed else generation

    # Deletion and garbage collection --------------------------------------------------------

    def _delete_options(self, body: bytes, query: dict[str, str]) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if body.strip():
            doc = decode_json(body)
            if not isinstance(doc, dict):
                raise bad_request("DeleteOptions must be a JSON object")
            opts.update(doc)
        if "propagationPolicy" in query:
            opts["propagationPolicy"] = query["propagationPolicy"]
        if "gracePeriodSeconds" in query:
            opts["gracePeriodSeconds"] = _int_param(query, "gracePeriodSeconds")
        if "orphanDependents" in query:
            opts["orphanDependents"] = _flag(query, "orphanDependents")
        if "dryRun" in query:
            opts["dryRun"] = ["All"]
        policy = opts.get("propagationPolicy")
        if policy is None and opts.get("orphanDependents") is not None:
            policy = "Orphan" if opts["orphanDependents"] else "Background"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise bad_request(
                f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                '"Background", "Foreground", "Orphan"'
            )
        opts["propagationPolicy"] = policy or "Background"
        return opts

    def delete(self, t: Target, body: bytes, query: dict[str, str]) -> Result:
        r = t.resource
        assert t.name is not None
        opts = self._delete_options(body, query)
        okey = (t.namespace or "", t.name)
        with self.store.lock:
            old = self.store.get(r.storage_key, okey)
            if old is None:
                raise not_found(r.plural, r.group, t.name)
            if self.faults is not None:
                fault = self.faults.take_conflict(r.plural, r.group, t.namespace, t.name)
                if fault is not None:
                    raise fault
            self._check_preconditions(r, old, opts.get("preconditions"))
            if opts.get("dryRun"):
                return self._result(200, r, old)
            result = self._delete(
                r.storage_key, okey, opts["propagationPolicy"], opts.get("gracePeriodSeconds")
            )
        return self._result(200, r, result)

    def _check_preconditions(self, r: ResourceDef, old: Stored, pre: Any) -> None:
        if not isinstance(pre, dict):
            return
        meta = old.obj["metadata"]
        name = meta["name"]
        uid = pre.get("uid")
        if uid and uid != meta.get("uid"):
            raise conflict(
                r.plural,
                r.group,
                name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{meta.get('uid')}",
            )
        rv = pre.get("resourceVersion")
        if rv and str(rv) != meta.get("resourceVersion"):
            raise conflict(
                r.plural,
                r.group,
                name,
                "Precondition failed: ResourceVersion in precondition: "
                f"{rv}, ResourceVersion in object meta: {meta.get('resourceVersion')}",
            )

    def _delete(self, key: str, okey: ObjKey, policy: str, grace: int | None = None) -> Stored:
        """Delete one object (caller holds the lock); returns its last state."""
        stored = self.store.get(key, okey)
        assert stored is not None
        meta = stored.obj["metadata"]
        uid = meta.get("uid", "")
        finalizers = list(meta.get("finalizers") or ())
        has_dependents = bool(uid and self._live_dependents(key, okey, uid))
        if policy == "Foreground" and has_dependents and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and has_dependents and "orphan" not in finalizers:
            finalizers.append("orphan")
        if not finalizers:
            return self._remove_storage(key, okey)
        if "deletionTimestamp" in meta and finalizers == list(meta.get("finalizers") or ()):
            return stored
        new_meta = dict(meta, finalizers=finalizers)
        if "deletionTimestamp" not in meta:
            new_meta["deletionTimestamp"] = self.timestamp()
            new_meta["deletionGracePeriodSeconds"] = grace or 0
            if isinstance(meta.get("generation"), int) and meta["generation"] > 0:
                new_meta["generation"] = meta["generation"] + 1
        self.store.put(key, dict(stored.obj, metadata=new_meta), "MODIFIED")
        self._progress_deletion(key, okey)
        return self.store.get(key, okey) or stored

    def _remove(self, r: ResourceDef, okey: ObjKey) -> Stored:
        return self._remove_storage(r.storage_key, okey)

    def _remove_storage(self, key: str, okey: ObjKey) -> Stored:
        final = self.store.remove(key, okey)
        if key == _CRD_KEY:
            self._drop_crd(final.obj)
        uid = final.uid
        if uid:
            self._collect_dependents(key, okey, uid)
        self._check_owners_of(final.obj)
        return final

    def _live_dependents(self, key: str, okey: ObjKey, uid: str) -> list[tuple[str, ObjKey]]:
        owner_ns = okey[0]
        return [(k, o) for k, o in self.store.dependents(uid) if not owner_ns or o[0] == owner_ns]

    def _collect_dependents(self, key: str, okey: ObjKey, uid: str) -> None:
        """Background cascade: delete dependents whose owners are all gone."""
        for dkey, dokey in self._live_dependents(key, okey, uid):
            dependent = self.store.get(dkey, dokey)
            if dependent is None:
                continue
            refs = dependent.obj["metadata"].get("ownerReferences") or []
            remaining = [
                ref
                for ref in refs
                if ref.get("uid") != uid and self.store.by_uid(ref.get("uid", "")) is not None
            ]
            if remaining:
                meta = dict(dependent.obj["metadata"], ownerReferences=remaining)
                self.store.put(dkey, dict(dependent.obj, metadata=meta), "MODIFIED")
            elif "deletionTimestamp" not in dependent.obj["metadata"]:
                self._delete(dkey, dokey, "Background")

    def _progress_deletion(self, key: str, okey: ObjKey) -> None:
        """Advance a deleting object's GC finalizers (foregroundDeletion, orphan)."""
        stored = self.store.get(key, okey)
        if stored is None or "deletionTimestamp" not in stored.obj["metadata"]:
            return
        meta = stored.obj["metadata"]
        uid = meta.get("uid", "")
        finalizers = list(meta.get("finalizers") or ())
        if "orphan" in finalizers:
            for dkey, dokey in self._live_dependents(key, okey, uid):
                dependent = self.store.get(dkey, dokey)
                if dependent is None:
                    continue
                refs = [
                    ref
                    for ref in dependent.obj["metadata"].get("ownerReferences") or ()
                    if ref.get("uid") != uid
                ]
                dmeta = dict(dependent.obj["metadata"])
                if refs:
                    dmeta["ownerReferences"] = refs
                else:
                    dmeta.pop("ownerReferences", None)
                self.store.put(dkey, dict(dependent.obj, metadata=dmeta), "MODIFIED")
            finalizers.remove("orphan")
        if "foregroundDeletion" in finalizers:
            for dkey, dokey in self._live_dependents(key, okey, uid):
                dependent = self.store.get(dkey, dokey)
                if dependent is not None and "deletionTimestamp" not in dependent.obj["metadata"]:
                    self._delete(dkey, dokey, "Foreground")
            blocking = [
                d
                for d in self._live_dependents(key, okey, uid)
                if self._blocks(self.store.get(*d), uid)
            ]
            if not blocking:
                finalizers.remove("foregroundDeletion")
        stored = self.store.get(key, okey)
        if stored is None:
            return
        if finalizers != list(stored.obj["metadata"].get("finalizers") or ()):
            if finalizers:
                new_meta = dict(stored.obj["metadata"], finalizers=finalizers)
                self.store.put(key, dict(stored.obj, metadata=new_meta), "MODIFIED")
            else:
                self._remove_storage(key, okey)

    @staticmethod
    def _blocks(dependent: Stored | None, owner_uid: str) -> bool:
        if dependent is None:
            return False
        for ref in dependent.obj["metadata"].get("ownerReferences") or ():
            if ref.get("uid") == owner_uid and ref.get("blockOwnerDeletion"):
                return True
        return False

    def _check_owners_of(self, obj: dict[str, Any]) -> None:
        """A removed dependent may unblock an owner waiting in foreground deletion."""
        for ref in obj["metadata"].get("ownerReferences") or ():
            where = self.store.by_uid(ref.get("uid", ""))
            if where is not None:
                self._progress_deletion(*where)

    def delete_collection(self, t: Target, body: bytes, query: dict[str, str]) -> Result:
        r = t.resource
        opts = self._delete_options(body, query)
        match = self._matcher(t, query)
        deleted: list[Stored] = []
        with self.store.lock:
            state = self.store.objects(r.storage_key)
            keys = sorted(
                (k for k in state if t.namespace is None or k[0] == t.namespace), key=_sort_key
            )
            for okey in keys:
                stored = self.store.get(r.storage_key, okey)
                if stored is None or not match(stored.obj):
                    continue
                if opts.get("dryRun"):
                    deleted.append(stored)
                else:
                    deleted.append(self._delete(r.storage_key, okey, opts["propagationPolicy"]))
            rv = self.store.rv
        head = {
            "kind": f"{r.kind}List",
            "apiVersion": r.group_version,
            "metadata": {"resourceVersion": str(rv)},
        }
        body_bytes = (
            encode(head)[:-1]
            + b',"items":['
            + b",".join(self.render(r, s) for s in deleted)
            + b"]}"
        )
        return Result(200, body_bytes)

    # CRDs -------------------------------------------------------------------------------------

    def _drop_crd(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        defs = self.registry.crd_defs(name)
        self.registry.remove_crd(name)
        keys = {d.storage_key for d in defs}
        for key in keys:
            for watcher in self.store.watchers_of(key):
                watcher.close()
                self.store.remove_watcher(key, watcher)
            for okey in sorted(self.store.objects(key)):
                self.store.remove(key, okey)

    def install(self, resource: ResourceDef, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object in-process (CRDs at start-up, fixture namespaces)."""
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise ValueError(f"{resource.kind} without metadata.name cannot be installed")
        namespace = meta.get("namespace") if resource.namespaced else None
        target = Target(resource, namespace, None, None)
        body = json.dumps(obj).encode()
        with self.store.lock:
            existing = self.store.get(resource.storage_key, (namespace or "", name))
            if existing is None:
                result = self.create(target, body, {})
            else:
                replacement = copy.deepcopy(obj)
                replacement.setdefault("metadata", {})["resourceVersion"] = existing.obj[
                    "metadata"
                ]["resourceVersion"]
                result = self.update(
                    Target(resource, namespace, name, None), json.dumps(replacement).encode(), {}
                )
        doc = json.loads(result.body)
        assert isinstance(doc, dict)
        return doc


def _crd_version_errors(crd: dict[str, Any]) -> list[FieldError]:
    """Printer columns that do not parse and schema patterns that do not compile."""
    errors: list[FieldError] = []
    for i, version in enumerate((crd.get("spec") or {}).get("versions") or ()):
        if not isinstance(version, dict):
            continue
        for j, column in enumerate(version.get("additionalPrinterColumns") or ()):
            try:
                tables.PrinterColumn.from_crd(column)
            except tables.TableRenderError as exc:
                errors.append(
                    FieldError(
                        "FieldValueInvalid",
                        f"spec.versions[{i}].additionalPrinterColumns[{j}]",
                        f"Invalid value: {schemas.go_repr(column)}: {exc}",
                    )
                )
        root = ((version.get("schema") or {}).get("openAPIV3Schema")) or {}
        base = f"spec.versions[{i}].schema.openAPIV3Schema"
        errors += schemas.structural_errors(root, base)
        for path, pattern in _schema_patterns(root, base):
            if schemas.compile_pattern(pattern) is None:
                errors.append(
                    FieldError(
                        "FieldValueInvalid",
                        f"{path}.pattern",
                        f"Invalid value: {json.dumps(pattern)}: must be a valid regular "
                        "expression, but isn't",
                    )
                )
    return errors


def _schema_patterns(schema: Any, path: str) -> Iterator[tuple[str, str]]:
    if not isinstance(schema, dict):
        return
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        yield path, pattern
    for name, sub in (schema.get("properties") or {}).items():
        yield from _schema_patterns(sub, f"{path}.properties[{name}]")
    for key in ("items", "additionalProperties", "not"):
        yield from _schema_patterns(schema.get(key), f"{path}.{key}")
    for key in ("allOf", "anyOf", "oneOf"):
        for k, sub in enumerate(schema.get(key) or ()):
            yield from _schema_patterns(sub, f"{path}.{key}[{k}]")


def _sort_key(key: ObjKey) -> str:
    """The apiserver lists in storage-key order: ``namespace/name``."""
    return f"{key[0]}/{key[1]}"


def _after(key: ObjKey, start: str) -> bool:
    if not start:
        return True
    return f"{key[0]}/{key[1]}" > start


def _too_large(requested: int, current: int) -> ApiError:
    return ApiError(
        504,
        f"Timeout: Too large resource version: {requested}, current: {current}",
        "Timeout",
        {
            "causes": [
                {
                    "reason": "ResourceVersionTooLarge",
                    "message": f"Too large resource version: {requested}, current: {current}",
                }
            ],
            "retryAfterSeconds": 1,
        },
    )


class WatchStream:
    """Drives one watch response: initial lines, live events, bookmarks, timeout, close."""

    def __init__(
        self,
        api: ApiServer,
        watcher: Watcher,
        key: str,
        initial: list[bytes],
        *,
        timeout_seconds: int | None = None,
        bookmarks: bool = False,
        closed: bool = False,
    ) -> None:
        self.api = api
        self.watcher = watcher
        self.key = key
        self.initial = initial
        self.timeout_seconds = timeout_seconds
        self.bookmarks = bookmarks
        self.closed = closed
        self.aborted = False

    def lines(
        self, clock: Callable[[], float], client_gone: Callable[[], bool] = lambda: False
    ) -> Iterator[bytes]:
        """Yield response lines until the stream ends (sets ``aborted`` on a cut).

        ``client_gone`` is polled about once a second while idle so that a watch whose client
        hung up is unregistered without waiting for the next event.
        """
        try:
            yield from self.initial
            if self.closed:
                return
            start = clock()
            deadline = start + self.timeout_seconds if self.timeout_seconds else None
            interval = self.api.bookmark_interval
            next_bookmark = start + interval if self.bookmarks else None
            while True:
                now = clock()
                waits = [1.0]
                if deadline is not None:
                    waits.append(deadline - now)
                if next_bookmark is not None:
                    waits.append(next_bookmark - now)
                wait = min(waits)
                item = self.watcher.next_item(wait) if wait > 0 else None
                if item == "close":
                    return
                if item == "abort":
                    self.aborted = True
                    return
                if item is not None:
                    yield self.watcher.line(*item)
                    continue
                if client_gone():
                    return
                now = clock()
                if deadline is not None and now >= deadline:
                    return
                if next_bookmark is not None and now >= next_bookmark:
                    with self.api.store.lock:
                        idle = self.watcher.idle()
                        rv = self.api.store.rv
                    if idle:
                        yield self.watcher.bookmark(rv)
                    next_bookmark = now + interval
        finally:
            with self.api.store.lock:
                self.api.store.remove_watcher(self.key, self.watcher)

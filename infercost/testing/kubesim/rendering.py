"""Content negotiation for get, list and watch: the one place a representation is chosen.

:func:`negotiate` takes the request's ``Accept`` header and query, the resource definition and
the JSON document (object or list), and returns the response content type and body. The media
type decision is :func:`tables.parse_accept`; each representation it can name maps to one
renderer in ``RENDERERS`` (plain JSON, ``meta.k8s.io`` Table for kubectl, and
PartialObjectMetadata), so another representation plugs in as one entry. Semantics:
kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables and
#alternate-representations-of-resources.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import attrs

from . import tables
from .resources import ResourceDef
from .status import ApiError

JsonBody = Callable[[], bytes]


@attrs.frozen
class RenderContext:
    """What a renderer may look at besides the document: Accept parameters, query, time."""

    params: dict[str, str]
    query: dict[str, str]
    now: dt.datetime
    is_list: bool


# (resource, document (object or list), context) -> response document
Renderer = Callable[[ResourceDef, dict[str, Any], RenderContext], Any]


@lru_cache(maxsize=512)
def table_resource(resource: ResourceDef) -> tables.TableResource:
    """The Table definition of a resource (printer columns of a CRD version, or by kind)."""
    if not resource.is_crd_resource:
        return tables.TableResource(
            group=resource.group, version=resource.version, kind=resource.kind
        )
    columns = tuple(tables.PrinterColumn.from_crd(c) for c in resource.printer_columns)
    return tables.TableResource(
        group=resource.group,
        version=resource.version,
        kind=resource.kind,
        printer_columns=columns,
    )


def render_table(
    resource: ResourceDef, document: dict[str, Any], ctx: RenderContext
) -> dict[str, Any]:
    objects = document.get("items") or [] if ctx.is_list else [document]
    return tables.render_table(
        table_resource(resource),
        objects,
        now=ctx.now,
        include_object=ctx.query.get("includeObject") or None,
        list_metadata=document.get("metadata") if ctx.is_list else None,
        table_version=ctx.params.get("version", "v1"),
        no_headers=ctx.query.get("noHeaders") == "true",
    )


def render_partial(
    resource: ResourceDef, document: dict[str, Any], ctx: RenderContext
) -> dict[str, Any]:
    api_version = f"meta.k8s.io/{ctx.params.get('version', 'v1')}"

    def partial(obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "PartialObjectMetadata",
            "apiVersion": api_version,
            "metadata": obj.get("metadata") or {},
        }

    if not ctx.is_list:
        return partial(document)
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": api_version,
        "metadata": document.get("metadata") or {},
        "items": [partial(o) for o in document.get("items") or ()],
    }


RENDERERS: dict[str, Renderer] = {
    "table": render_table,
    "partial": render_partial,
}


def representation(accept: str | None) -> tuple[str, dict[str, str]]:
    """``("json", {})``, ``("table", params)``, ``("partial", params)``; 406 when none fits."""
    try:
        return tables.parse_accept(accept)
    except tables.NotAcceptableError as exc:
        raise ApiError(406, str(exc), "NotAcceptable") from None


def negotiate(
    accept: str | None,
    query: dict[str, str],
    resource: ResourceDef,
    json_body: JsonBody,
    *,
    is_list: bool,
    now: Callable[[], dt.datetime],
) -> tuple[str, bytes]:
    """Pick and render the representation of a GET or list; returns (content type, body)."""
    kind, params = representation(accept)
    if kind == "json":
        return "application/json", json_body()
    renderer = RENDERERS.get(kind)
    if renderer is None:
        raise ApiError(406, f"the {kind} representation is not supported", "NotAcceptable")
    document = json.loads(json_body())
    try:
        ctx = RenderContext(params=params, query=query, now=now(), is_list=is_list)
        rendered = renderer(resource, document, ctx)
    except tables.TableRenderError as exc:
        raise ApiError(400, str(exc), "BadRequest") from None
    return "application/json", json.dumps(rendered, separators=(",", ":")).encode()


def watch_renderer(
    accept: str | None,
    query: dict[str, str],
    resource: ResourceDef,
    now: Callable[[], dt.datetime],
) -> Callable[[dict[str, Any]], Any] | None:
    """For a watch asking for Tables: a function turning each event's object into a Table.

    Returns None for plain JSON watches. The first event carries the column definitions;
    later ones omit them, as the apiserver does.
    """
    kind, params = representation(accept)
    if kind == "json":
        return None
    renderer = RENDERERS.get(kind)
    if renderer is None:
        raise ApiError(406, f"the {kind} representation is not supported", "NotAcceptable")
    first = [True]

    def render(obj: dict[str, Any]) -> Any:
        q = dict(query)
        if not first[0]:
            q["noHeaders"] = "true"
        first[0] = False
        try:
            ctx = RenderContext(params=params, query=q, now=now(), is_list=False)
            return renderer(resource, obj, ctx)
        except tables.TableRenderError as exc:
            raise ApiError(400, str(exc), "BadRequest") from None

    return render

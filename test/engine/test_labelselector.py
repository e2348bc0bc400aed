"""Label selectors as ``kubectl -l`` writes them: equality, set-based, existence."""

from __future__ import annotations

import pytest

from infercost.engine.labelselector import (
    LabelSelector,
    SelectorError,
    label_key_problem,
    label_value_problem,
)

EXPORTER = {"app": "nvidia-dcgm-exporter", "tier": "gpu"}
OTHER = {"app": "dcgm-exporter", "tier": "gpu"}
BARE = {"tier": "gpu"}


@pytest.mark.parametrize(
    ("text", "exporter", "other", "bare"),
    [
        ("app=nvidia-dcgm-exporter", True, False, False),
        ("app==nvidia-dcgm-exporter", True, False, False),
        ("app != nvidia-dcgm-exporter", False, True, True),  # != holds when the label is absent
        ("app in (nvidia-dcgm-exporter,dcgm-exporter)", True, True, False),
        ("app in ( nvidia-dcgm-exporter , dcgm-exporter )", True, True, False),
        ("app notin (nvidia-dcgm-exporter)", False, True, True),  # notin holds when absent
        ("app", True, True, False),
        ("!app", False, False, True),
        ("tier=gpu,app in (dcgm-exporter)", False, True, False),
        ("tier=gpu, !app", False, False, True),
        ("app in (nvidia-dcgm-exporter,dcgm-exporter),tier notin (cpu)", True, True, False),
    ],
)
def test_every_operator_selects_like_kubectl(
    text: str, exporter: bool, other: bool, bare: bool
) -> None:
    selector = LabelSelector.parse(text)
    assert [selector.matches(EXPORTER), selector.matches(OTHER), selector.matches(BARE)] == [
        exporter,
        other,
        bare,
    ]
    assert str(selector) == text


def test_prefixed_keys_and_empty_values() -> None:
    selector = LabelSelector.parse("app.kubernetes.io/name=dcgm-exporter")
    assert selector.matches({"app.kubernetes.io/name": "dcgm-exporter"})
    empty = LabelSelector.parse("role=")  # selects role="" (apimachinery accepts it)
    assert empty.matches({"role": ""}) and not empty.matches({"role": "x"})
    assert not empty.matches({})
    assert LabelSelector.parse("role in ()").matches({"role": ""})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ("  ", "is empty"),
        ("a=b,", "expected a label key, found the end"),
        ("bad key=x", "expected an operator (=, ==, !=, in, notin) or ','"),
        ("a=b c", "found 'c'"),
        ("app in (x", "expected ',' or ')' in the values of app in, found the end"),
        ("app in x", "expected '(' after app in, found 'x'"),
        ("app in (x y)", "expected ',' or ')' in the values of app in, found 'y'"),
        ("gpus > 1", "the operator '>' (on 'gpus') is not supported"),
        ("!app=x", "expected ',' or the end after the term on 'app', found '='"),
        ("=x", "expected a label key, found '='"),
        ("Example.com/app=x", "the prefix must be a DNS subdomain"),
        ("/app=x", "the prefix before '/' is empty"),
        ("-app=x", "the name must be 1 to 63"),
        ("app=-x", "label value '-x'"),
        ("app in (ok,bad!)", "found '!'"),
        ("a" * 64 + "=x", "the name must be 1 to 63"),
        ("app=" + "v" * 64, "at most 63"),
    ],
)
def test_invalid_selectors_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(SelectorError) as info:
        LabelSelector.parse(text)
    message = str(info.value)
    assert message.startswith(f"label selector {text!r}")
    assert problem in message, message


def test_key_and_value_rules() -> None:
    assert label_key_problem("infercost.ai/budget") is None
    assert label_key_problem("a" * 63) is None
    assert label_key_problem(("p" * 63 + ".") * 4 + "p/x") is not None  # prefix over 253
    assert label_value_problem("") is None
    assert label_value_problem("kube-prometheus-stack") is None
    assert label_value_problem("a b") is not None

"""Kubernetes name and label grammar, as apimachinery's validation defines it."""

from __future__ import annotations

import re

import pytest

from infercost.api.names import (
    CONDITION_TYPE,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_key,
    is_label_value,
    label_key_problem,
)


@pytest.mark.parametrize("name", ["a", "my-name", "123-abc", "a" * 63])
def test_dns1123_labels(name: str) -> None:
    assert is_dns1123_label(name) and is_dns1123_subdomain(name)


@pytest.mark.parametrize("name", ["", "-a", "a-", "A", "a.b", "a_b", "a" * 64])
def test_not_dns1123_labels(name: str) -> None:
    assert not is_dns1123_label(name)


def test_subdomains_join_labels_with_dots_up_to_253_characters() -> None:
    assert is_dns1123_subdomain("example.com")
    assert is_dns1123_subdomain(".".join(["a" * 63] * 3) + "." + "a" * 61)  # 253
    assert not is_dns1123_subdomain(".".join(["a" * 63] * 3) + "." + "a" * 62)  # 254
    assert not is_dns1123_subdomain("a..b")
    assert not is_dns1123_subdomain("Example.com")


@pytest.mark.parametrize("value", ["", "MyValue", "my_value", "12345", "a.b-c_d", "x" * 63])
def test_label_values(value: str) -> None:
    assert is_label_value(value)


@pytest.mark.parametrize("value", ["-a", "a-", "_a", "a b", "a/b", "x" * 64])
def test_not_label_values(value: str) -> None:
    assert not is_label_value(value)


def test_label_keys_and_why_not() -> None:
    assert is_label_key("app")
    assert is_label_key("app.kubernetes.io/name")
    assert is_label_key("nvidia.com/gpu.product")
    assert label_key_problem("/name") == "the prefix before '/' must not be empty"
    assert "prefix 'Bad.io'" in (label_key_problem("Bad.io/name") or "")
    assert "name part" in (label_key_problem("example.com/") or "")
    assert "name part" in (label_key_problem("a" * 64) or "")
    assert not is_label_key("")


def test_condition_types_are_qualified_names_with_an_optional_prefix() -> None:
    pattern = re.compile(CONDITION_TYPE)
    assert pattern.match("Ready")
    assert pattern.match("finops.infercost.ai/DCGMReachable")
    assert not pattern.match("Not Ready")
    assert not pattern.match("/Ready")

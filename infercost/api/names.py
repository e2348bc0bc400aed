"""The grammar of Kubernetes names, label keys and label values: defined here and nowhere else.

CRD schemas, flag parsing, label selectors, condition writers and the API emulator all check
the same strings the API server checks, so they share these definitions. The ``*_FMT`` building
blocks are apimachinery's (k8s.io/apimachinery/pkg/util/validation: ``dns1123LabelFmt``,
``dns1123SubdomainFmt``, ``qualifiedNameFmt``, ``labelValueFmt``); the anchored forms are the
``pattern`` strings of OpenAPI schemas and go straight into ``re``. Lengths are checked apart
from the patterns, as apimachinery does. Pure: no I/O, no imports from the rest of InferCost.
"""

from __future__ import annotations

import re

__all__ = [
    "CONDITION_REASON",
    "CONDITION_TYPE",
    "DNS1123_LABEL",
    "DNS1123_LABEL_FMT",
    "DNS1123_LABEL_HELP",
    "DNS1123_LABEL_MAX_LENGTH",
    "DNS1123_SUBDOMAIN",
    "DNS1123_SUBDOMAIN_FMT",
    "DNS1123_SUBDOMAIN_HELP",
    "DNS1123_SUBDOMAIN_MAX_LENGTH",
    "LABEL_VALUE",
    "LABEL_VALUE_FMT",
    "LABEL_VALUE_HELP",
    "LABEL_VALUE_MAX_LENGTH",
    "QUALIFIED_NAME_FMT",
    "QUALIFIED_NAME_MAX_LENGTH",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_label_key",
    "is_label_value",
    "label_key_problem",
]

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
# The name part of a label key or annotation key, and of a condition type.
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_MAX_LENGTH = 63
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
LABEL_VALUE_MAX_LENGTH = 63

DNS1123_LABEL = f"^{DNS1123_LABEL_FMT}$"
DNS1123_LABEL_HELP = "a DNS-1123 label (lowercase letters, digits and '-', 1 to 63 characters)"
DNS1123_SUBDOMAIN = f"^{DNS1123_SUBDOMAIN_FMT}$"
DNS1123_SUBDOMAIN_HELP = (
    "a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', 1 to 253 characters)"
)
LABEL_VALUE = f"^{LABEL_VALUE_FMT}$"
LABEL_VALUE_HELP = (
    "a label value (at most 63 letters, digits, '-', '_' or '.', beginning and ending with a "
    "letter or digit)"
)

# metav1.Condition's OpenAPI patterns: a type is a qualified name with an optional DNS
# subdomain prefix (at most 316 characters); a reason is a CamelCase identifier.
CONDITION_TYPE = f"^({DNS1123_SUBDOMAIN_FMT}/)?({QUALIFIED_NAME_FMT})$"
CONDITION_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

_DNS1123_LABEL_RE = re.compile(DNS1123_LABEL)
_DNS1123_SUBDOMAIN_RE = re.compile(DNS1123_SUBDOMAIN)
_QUALIFIED_NAME_RE = re.compile(f"^{QUALIFIED_NAME_FMT}$")
_LABEL_VALUE_RE = re.compile(LABEL_VALUE)


def is_dns1123_label(text: str) -> bool:
    """A namespace name (or a Service's): lowercase alphanumerics and '-', 1 to 63."""
    return len(text) <= DNS1123_LABEL_MAX_LENGTH and _DNS1123_LABEL_RE.match(text) is not None


def is_dns1123_subdomain(text: str) -> bool:
    """Most object names: DNS-1123 labels joined by '.', 1 to 253 characters."""
    return (
        len(text) <= DNS1123_SUBDOMAIN_MAX_LENGTH and _DNS1123_SUBDOMAIN_RE.match(text) is not None
    )


def is_label_value(text: str) -> bool:
    """Empty, or up to 63 alphanumerics, '-', '_' and '.', starting and ending alphanumeric."""
    return len(text) <= LABEL_VALUE_MAX_LENGTH and _LABEL_VALUE_RE.match(text) is not None


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key (``[prefix/]name``), or ``None``."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "the prefix before '/' must not be empty"
    if slash and not is_dns1123_subdomain(prefix):
        return f"the prefix {prefix!r} must be {DNS1123_SUBDOMAIN_HELP}"
    if not name or len(name) > QUALIFIED_NAME_MAX_LENGTH or not _QUALIFIED_NAME_RE.match(name):
        return (
            "the name part must be 1 to 63 letters, digits, '-', '_' or '.', beginning and "
            "ending with a letter or digit"
        )
    return None


def is_label_key(key: str) -> bool:
    """A label (or annotation) key: ``[DNS-1123 subdomain/]qualified name``."""
    return label_key_problem(key) is None

"""The operator's configuration (SPEC §7 flags) as one frozen value, and its parsers.

Every flag can also come from ``INFERCOST_<NAME>`` (``--scrape-interval`` →
``INFERCOST_SCRAPE_INTERVAL``); a flag on the command line wins over the environment, the
environment over the default. Values are parsed and checked here, and every error names its
source (the flag or the variable) and what was expected, so ``infercost run`` can print it as
one line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

# Only light imports at module level: ``infercost validate`` builds the same argument parser.
from infercost.collect import DEFAULT_DCGM_NAMESPACES, DEFAULT_DCGM_SELECTORS
from infercost.outputs.rules import parse_rule_labels

__all__ = [
    "DEFAULT_DCGM_NAMESPACES",
    "DEFAULT_DCGM_SELECTORS",
    "FLAGS",
    "ConfigError",
    "Flag",
    "OperatorConfig",
    "build_config",
    "parse_bind",
    "parse_bool",
    "parse_duration",
]


class ConfigError(ValueError):
    """A flag or environment value is invalid; the message names which and why."""

    def __str__(self) -> str:
        return " ".join(super().__str__().split())


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go-style duration (``30s``, ``5m``, ``1h30m``, ``500ms``, ``-2m``, ``0``) in seconds."""
    value = text.strip()
    sign = 1.0
    if value[:1] in "+-" and value:
        sign = -1.0 if value[0] == "-" else 1.0
        value = value[1:]
    if value == "0":
        return 0.0
    if not value:
        raise ValueError(f"{text!r} is not a duration (use e.g. 30s, 5m, 1h, 500ms)")
    pos = 0
    total = 0.0
    while pos < len(value):
        match = _DURATION_PART.match(value, pos)
        if match is None:
            raise ValueError(f"{text!r} is not a duration (use e.g. 30s, 5m, 1h, 500ms)")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return sign * total


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


def parse_bind(text: str) -> tuple[str, int]:
    """``:8080``, ``0.0.0.0:8080``, ``127.0.0.1:0`` or ``[::1]:8080`` → (host, port)."""
    value = text.strip()
    host, sep, port_text = value.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r} is not an address (use host:port or :port)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is out of range 0-65535")
    return host, port


def _split_list(text: str, sep: str = ",") -> list[str]:
    return [part.strip() for part in text.split(sep) if part.strip()]


def _log_format(text: str) -> str:
    if text not in ("json", "console"):
        raise ValueError(f"{text!r} is not a log format (json or console)")
    return text


def _log_level(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("debug", "info", "warning", "error"):
        raise ValueError(f"{text!r} is not a log level (debug, info, warning, error)")
    return lowered


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{port} is out of range 1-65535")
    return port


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{value} must be at least 1")
    return value


def _dcgm_url(text: str) -> str:
    from infercost.collect.discovery import parse_dcgm_url

    parse_dcgm_url(text)  # the sampler's own parser: what passes here, it can scrape
    return text


def _label_selector(text: str) -> str:
    from infercost.engine.labelselector import LabelSelector

    LabelSelector.parse(text)
    return text


_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _dns_name(text: str) -> str:
    if not text or len(text) > 253 or not _NAME.match(text):
        raise ValueError(f"{text!r} is not a valid Kubernetes name")
    return text


def _dns_label(text: str) -> str:
    if not text or len(text) > 63 or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", text):
        raise ValueError(f"{text!r} is not a valid namespace name")
    return text


def _namespaces(text: str) -> tuple[str, ...]:
    return tuple(_dns_label(ns) for ns in _split_list(text))


def _some_namespaces(text: str) -> tuple[str, ...]:
    namespaces = _namespaces(text)
    if not namespaces:
        raise ValueError("at least one namespace is needed")
    return namespaces


@attrs.frozen
class Flag:
    """One ``infercost run`` flag: its name, help line, parser and default."""

    name: str  # without the leading dashes
    help: str
    default: str | None
    parse: Callable[[str], Any] | None = None
    repeatable: bool = False
    # How repeated values are written in one environment variable.
    env_separator: str = ","
    metavar: str | None = None
    # What --help shows as the default, when not the raw default string.
    default_help: str | None = None

    @property
    def env(self) -> str:
        return "INFERCOST_" + self.name.upper().replace("-", "_")

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


FLAGS: tuple[Flag, ...] = (
    Flag(
        "kubeconfig",
        "kubeconfig file (default: in-cluster, else $KUBECONFIG, else ~/.kube/config)",
        None,
        metavar="PATH",
    ),
    Flag(
        "namespace",
        "the operator's namespace (Lease, ledger, pricing ConfigMap)",
        "infercost-system",
        _dns_label,
        metavar="NS",
        default_help="the pod's own namespace in a cluster, else infercost-system",
    ),
    Flag(
        "scrape-interval",
        "how often inference pods and DCGM exporters are sampled",
        "30s",
        parse_duration,
        metavar="DURATION",
    ),
    Flag("scrape-timeout", "timeout of one scrape", "5s", parse_duration, metavar="DURATION"),
    Flag("scrape-concurrency", "scrapes in flight at once", "32", _positive_int, metavar="N"),
    Flag(
        "status-interval",
        "most frequent write of a status whose only changes are amounts",
        "60s",
        parse_duration,
        metavar="DURATION",
    ),
    Flag("metrics-bind", "address serving /metrics", ":8080", parse_bind, metavar="ADDR"),
    Flag(
        "health-bind", "address serving /healthz and /readyz", ":8081", parse_bind, metavar="ADDR"
    ),
    Flag(
        "leader-elect",
        "elect a leader through a Lease (disable with --no-leader-elect)",
        "true",
        parse_bool,
    ),
    Flag(
        "lease-name",
        "name of the leader-election Lease",
        "infercost-leader",
        _dns_name,
        metavar="NAME",
    ),
    Flag(
        "dcgm-selector",
        "label selector of DCGM exporter pods, set-based included (repeatable; any matches)",
        ";".join(DEFAULT_DCGM_SELECTORS),
        _label_selector,
        repeatable=True,
        env_separator=";",
        metavar="SELECTOR",
        default_help=" or ".join(DEFAULT_DCGM_SELECTORS),
    ),
    Flag(
        "dcgm-port",
        "DCGM exporter port when no container port is named metrics",
        "9400",
        _port,
        metavar="PORT",
    ),
    Flag(
        "dcgm-url",
        "extra DCGM exporter URL to scrape, http only (repeatable)",
        None,
        _dcgm_url,
        repeatable=True,
        metavar="URL",
    ),
    Flag(
        "dcgm-namespaces",
        "comma-separated namespaces whose DCGM exporter pods are trusted",
        ",".join(DEFAULT_DCGM_NAMESPACES),
        _some_namespaces,
        metavar="NS,...",
    ),
    Flag(
        "profile-namespaces",
        "comma-separated namespaces whose CostProfiles are honoured",
        "",
        _namespaces,
        metavar="NS,...",
        default_help="all",
    ),
    Flag(
        "pricing-configmap",
        "ConfigMap overriding the cloud price catalog",
        "infercost-pricing",
        _dns_name,
        metavar="NAME",
    ),
    Flag(
        "rule-labels",
        "labels added to generated PrometheusRules",
        "",
        parse_rule_labels,
        metavar="K=V,...",
    ),
    Flag("log-format", "log format: json or console", "json", _log_format, metavar="FORMAT"),
    Flag(
        "log-level", "log level: debug, info, warning or error", "info", _log_level, metavar="LEVEL"
    ),
    Flag(
        "clock-offset",
        "shift the operator's notion of now (e.g. -2m, 3h)",
        "0s",
        parse_duration,
        metavar="DURATION",
    ),
)
FLAGS_BY_DEST = {f.dest: f for f in FLAGS}


def _from_source(flag: Flag, raw: Any, source: str) -> Any:
    try:
        if flag.repeatable:
            if isinstance(raw, list):
                values = raw
            else:
                values = _split_list(str(raw), flag.env_separator)
            return tuple(flag.parse(v) if flag.parse else v for v in values)
        return flag.parse(raw) if flag.parse else raw
    except ValueError as exc:
        message = str(exc)
        if message.startswith(source + " "):  # the parser already named the flag
            raise ConfigError(message) from None
        raise ConfigError(f"{source}: {message}") from None


def _default(dest: str) -> Any:
    """The parsed default of the flag ``dest``: the table above is the only place a default
    is written."""
    flag = FLAGS_BY_DEST[dest]
    if flag.default is None:
        return () if flag.repeatable else None
    return _from_source(flag, flag.default, f"default of --{flag.name}")


def _flag_default(dest: str) -> Any:
    """A field whose default is the flag's, parsed when a config is made (not at import)."""
    return attrs.field(factory=functools.partial(_default, dest))


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


@attrs.frozen
class OperatorConfig:
    """Everything ``infercost run`` was told, parsed and checked. Durations in seconds.

    Defaults of the fields that are flags come from :data:`FLAGS`."""

    kubeconfig: str | None = _flag_default("kubeconfig")
    namespace: str = _flag_default("namespace")
    scrape_interval: float = _flag_default("scrape_interval")
    scrape_timeout: float = _flag_default("scrape_timeout")
    scrape_concurrency: int = _flag_default("scrape_concurrency")
    status_interval: float = _flag_default("status_interval")
    metrics_bind: tuple[str, int] = _flag_default("metrics_bind")
    health_bind: tuple[str, int] = _flag_default("health_bind")
    leader_elect: bool = _flag_default("leader_elect")
    lease_name: str = _flag_default("lease_name")
    dcgm_selectors: tuple[str, ...] = _flag_default("dcgm_selector")
    dcgm_port: int = _flag_default("dcgm_port")
    dcgm_urls: tuple[str, ...] = _flag_default("dcgm_url")
    dcgm_namespaces: tuple[str, ...] = _flag_default("dcgm_namespaces")
    profile_namespaces: tuple[str, ...] = _flag_default("profile_namespaces")  # empty: all
    pricing_configmap: str = _flag_default("pricing_configmap")
    rule_labels: Mapping[str, str] = attrs.field(
        factory=lambda: _default("rule_labels"), converter=_frozen_map
    )
    log_format: str = _flag_default("log_format")
    log_level: str = _flag_default("log_level")
    clock_offset: float = _flag_default("clock_offset")
    # Leader election timings (client-go component defaults; not flags).
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    # How long SIGTERM may take in total.
    shutdown_timeout: float = 10.0

    def __attrs_post_init__(self) -> None:
        if self.scrape_interval <= 0:
            raise ConfigError("--scrape-interval must be positive")
        if not 0 < self.scrape_timeout < self.scrape_interval:
            raise ConfigError(
                f"--scrape-timeout ({self.scrape_timeout:g}s) must be positive and shorter than "
                f"--scrape-interval ({self.scrape_interval:g}s)"
            )
        if self.status_interval <= 0:
            raise ConfigError("--status-interval must be positive")


def build_config(
    values: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    namespace_file: Path | None = None,
) -> OperatorConfig:
    """Merge command-line ``values`` (None = not given) over ``INFERCOST_*`` over defaults.

    In a pod, the default ``--namespace`` is the pod's own, read from the service account's
    ``namespace_file`` (default: where Kubernetes mounts it)."""
    from infercost.kube.client import SERVICE_ACCOUNT_NAMESPACE_FILE, pod_namespace

    namespace_file = namespace_file or SERVICE_ACCOUNT_NAMESPACE_FILE
    parsed: dict[str, Any] = {}
    for flag in FLAGS:
        given = values.get(flag.dest)
        if given is not None and given != []:
            source = "--" + (flag.name if given is not False else "no-" + flag.name)
            if isinstance(given, bool):
                parsed[flag.dest] = given
                continue
            parsed[flag.dest] = _from_source(flag, given, source)
        elif flag.env in environ and environ[flag.env].strip() != "":
            parsed[flag.dest] = _from_source(flag, environ[flag.env], flag.env)
        elif flag.dest == "namespace" and (own := pod_namespace(namespace_file)) is not None:
            parsed[flag.dest] = _from_source(flag, own, f"the service account's {namespace_file}")
        elif flag.default is not None:
            parsed[flag.dest] = _from_source(flag, flag.default, f"default of --{flag.name}")
    renamed = {
        "dcgm_selector": "dcgm_selectors",
        "dcgm_url": "dcgm_urls",
    }
    kwargs = {renamed.get(k, k): v for k, v in parsed.items()}
    try:
        return OperatorConfig(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def describe(config: OperatorConfig) -> dict[str, Any]:
    """The configuration as loggable key/values."""
    out: dict[str, Any] = {}
    for key, value in attrs.asdict(config, recurse=False).items():
        if isinstance(value, tuple):
            out[key] = list(value)
        elif isinstance(value, Mapping):
            out[key] = dict(value)
        else:
            out[key] = value
    return out


def flag_names() -> Sequence[str]:
    return [f.name for f in FLAGS]

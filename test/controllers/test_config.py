"""Flag and INFERCOST_* parsing into OperatorConfig, with errors naming their source."""

from __future__ import annotations

import pytest

from infercost.controllers.config import (
    DEFAULT_DCGM_SELECTORS,
    FLAGS,
    ConfigError,
    OperatorConfig,
    build_config,
    parse_bind,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("500ms", 0.5),
        ("1h30m", 5400),
        ("0", 0),
        ("0s", 0),
        ("-2m", -120),
        ("1.5s", 1.5),
        ("250us", 0.00025),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30", "30x", "", "m", "5 m", "1h-2m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_binds_and_labels() -> None:
    assert parse_bind(":8080") == ("", 8080)
    assert parse_bind("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    for bad, msg in (("8080", "host:port"), (":http", "not a number"), (":70000", "range")):
        with pytest.raises(ValueError, match=msg):
            parse_bind(bad)
    # --rule-labels values are parsed by infercost.outputs.rules (test/outputs/test_rules.py).
    cfg = build_config({"rule_labels": "release=kube-prometheus-stack, team=ml"}, {})
    assert dict(cfg.rule_labels) == {"release": "kube-prometheus-stack", "team": "ml"}


def test_defaults_match_the_spec() -> None:
    cfg = build_config({}, {})
    assert cfg == OperatorConfig()
    assert cfg.namespace == "infercost-system"
    assert (cfg.scrape_interval, cfg.scrape_timeout, cfg.scrape_concurrency) == (30, 5, 32)
    assert cfg.status_interval == 60
    assert cfg.metrics_bind == ("", 8080) and cfg.health_bind == ("", 8081)
    assert cfg.leader_elect is True and cfg.lease_name == "infercost-leader"
    assert cfg.dcgm_selectors == DEFAULT_DCGM_SELECTORS and cfg.dcgm_port == 9400
    assert cfg.dcgm_urls == () and cfg.profile_namespaces == ()
    assert cfg.pricing_configmap == "infercost-pricing" and dict(cfg.rule_labels) == {}
    assert (cfg.log_format, cfg.log_level, cfg.clock_offset) == ("json", "info", 0)
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period) == (15, 10, 2)


def test_every_flag_has_an_env_var_and_help() -> None:
    names = {f.name for f in FLAGS}
    assert names == {
        "kubeconfig",
        "namespace",
        "scrape-interval",
        "scrape-timeout",
        "scrape-concurrency",
        "status-interval",
        "metrics-bind",
        "health-bind",
        "leader-elect",
        "lease-name",
        "dcgm-selector",
        "dcgm-port",
        "dcgm-url",
        "dcgm-namespaces",
        "profile-namespaces",
        "pricing-configmap",
        "rule-labels",
        "log-format",
        "log-level",
        "clock-offset",
    }
    for flag in FLAGS:
        assert flag.env == "INFERCOST_" + flag.name.upper().replace("-", "_")
        assert flag.help and "\n" not in flag.help


def test_environment_then_flags_win() -> None:
    env = {
        "INFERCOST_SCRAPE_INTERVAL": "10s",
        "INFERCOST_LEADER_ELECT": "false",
        "INFERCOST_DCGM_URL": "http://10.0.0.1:9400/metrics,http://10.0.0.2:9400/metrics",
        "INFERCOST_DCGM_SELECTOR": "app=dcgm,tier=gpu;k8s-app=dcgm",
        "INFERCOST_RULE_LABELS": "release=prom",
        "INFERCOST_PROFILE_NAMESPACES": "team-a, team-b",
        "INFERCOST_CLOCK_OFFSET": "-2m",
    }
    cfg = build_config({}, env)
    assert cfg.scrape_interval == 10 and cfg.leader_elect is False
    assert cfg.dcgm_urls == ("http://10.0.0.1:9400/metrics", "http://10.0.0.2:9400/metrics")
    assert cfg.dcgm_selectors == ("app=dcgm,tier=gpu", "k8s-app=dcgm")
    assert dict(cfg.rule_labels) == {"release": "prom"}
    assert cfg.profile_namespaces == ("team-a", "team-b")
    assert cfg.clock_offset == -120
    flags = {"scrape_interval": "20s", "leader_elect": True, "dcgm_url": ["http://x:1/m"]}
    cfg = build_config(flags, env)
    assert cfg.scrape_interval == 20 and cfg.leader_elect is True
    assert cfg.dcgm_urls == ("http://x:1/m",)


@pytest.mark.parametrize(
    ("values", "env", "message"),
    [
        ({"scrape_interval": "30x"}, {}, "--scrape-interval: '30x' is not a duration"),
        ({}, {"INFERCOST_SCRAPE_INTERVAL": "soon"}, "INFERCOST_SCRAPE_INTERVAL: 'soon'"),
        ({}, {"INFERCOST_LEADER_ELECT": "maybe"}, "INFERCOST_LEADER_ELECT: 'maybe' is not a"),
        ({"scrape_timeout": "40s"}, {}, "--scrape-timeout (40s) must be positive and shorter"),
        ({"metrics_bind": "8080"}, {}, "--metrics-bind: '8080' is not an address"),
        ({"rule_labels": "release"}, {}, "--rule-labels: 'release' is not key=value"),
        ({"log_format": "xml"}, {}, "--log-format: 'xml' is not a log format"),
        ({"dcgm_url": ["ftp://x"]}, {}, "--dcgm-url 'ftp://x': only http:// URLs are supported"),
        ({"namespace": "Bad_NS"}, {}, "--namespace: 'Bad_NS' is not a valid namespace"),
        ({"scrape_concurrency": "0"}, {}, "--scrape-concurrency: 0 must be at least 1"),
    ],
)
def test_errors_name_the_source(values: dict, env: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(values, env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_set_based_dcgm_selectors_are_accepted_and_reach_the_sampler() -> None:
    from infercost.controllers.sampling import SamplerSettings

    cfg = build_config(
        {"dcgm_selector": ["app in (nvidia-dcgm-exporter, dcgm-exporter)", "!legacy,tier"]}, {}
    )
    assert cfg.dcgm_selectors == ("app in (nvidia-dcgm-exporter, dcgm-exporter)", "!legacy,tier")
    settings = SamplerSettings.from_config(cfg)
    first, second = settings.dcgm_selectors
    assert first.matches({"app": "dcgm-exporter"}) and not first.matches({"app": "x"})
    assert second.matches({"tier": "gpu"}) and not second.matches({"tier": "gpu", "legacy": ""})
    env = build_config({}, {"INFERCOST_DCGM_SELECTOR": "app in (a,b);k8s-app=dcgm"})
    assert env.dcgm_selectors == ("app in (a,b)", "k8s-app=dcgm")


def test_dcgm_namespaces_default_env_and_flag() -> None:
    from infercost.controllers.sampling import SamplerSettings

    assert build_config({}, {}).dcgm_namespaces == (
        "gpu-operator",
        "nvidia-gpu-operator",
        "kube-system",
    )
    cfg = build_config({}, {"INFERCOST_DCGM_NAMESPACES": "gpu, monitoring"})
    assert cfg.dcgm_namespaces == ("gpu", "monitoring")
    assert SamplerSettings.from_config(cfg).dcgm_namespaces == ("gpu", "monitoring")
    assert build_config({"dcgm_namespaces": "nvidia"}, {}).dcgm_namespaces == ("nvidia",)


@pytest.mark.parametrize(
    ("values", "env", "message"),
    [
        (
            {"dcgm_url": ["https://10.0.0.1:9400/metrics"]},
            {},
            "--dcgm-url 'https://10.0.0.1:9400/metrics': only http:// URLs are supported",
        ),
        (
            {},
            {"INFERCOST_DCGM_URL": "https://x:9400/metrics"},
            "INFERCOST_DCGM_URL: --dcgm-url 'https://x:9400/metrics': only http://",
        ),
        ({"dcgm_url": ["http://x:port/"]}, {}, "--dcgm-url 'http://x:port/': invalid port"),
        (
            {"dcgm_selector": ["app in (x"]},
            {},
            "--dcgm-selector: label selector 'app in (x': expected ',' or ')'",
        ),
        (
            {},
            {"INFERCOST_DCGM_SELECTOR": "app=x;gpus > 1"},
            "INFERCOST_DCGM_SELECTOR: label selector 'gpus > 1': the operator '>'",
        ),
        ({"dcgm_selector": [""]}, {}, "--dcgm-selector: label selector '' is empty"),
        (
            {"dcgm_namespaces": "gpu-operator,GPU_Operator"},
            {},
            "--dcgm-namespaces: 'GPU_Operator' is not a valid namespace",
        ),
        ({"dcgm_namespaces": " , "}, {}, "--dcgm-namespaces: at least one namespace is needed"),
    ],
)
def test_dcgm_flags_are_checked_up_front(values: dict, env: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(values, env)
    assert message in str(info.value)


def test_in_a_pod_the_namespace_defaults_to_the_pods_own(tmp_path) -> None:  # type: ignore[no-untyped-def]
    own = tmp_path / "namespace"
    own.write_text("ml-platform\n")
    assert build_config({}, {}, namespace_file=own).namespace == "ml-platform"
    assert build_config({"namespace": "ops"}, {}, namespace_file=own).namespace == "ops"
    env = {"INFERCOST_NAMESPACE": "finops"}
    assert build_config({}, env, namespace_file=own).namespace == "finops"
    outside = tmp_path / "missing"
    assert build_config({}, {}, namespace_file=outside).namespace == "infercost-system"
    own.write_text("Not_A_Namespace")
    with pytest.raises(ConfigError, match=f"{own}: 'Not_A_Namespace' is not a valid namespace"):
        build_config({}, {}, namespace_file=own)


def test_one_default_per_concept() -> None:
    from infercost import collect
    from infercost.collect import discovery

    # the exporter discovery and the flag share one value, not two equal copies
    assert DEFAULT_DCGM_SELECTORS is discovery.DEFAULT_DCGM_SELECTORS
    assert OperatorConfig().dcgm_namespaces == collect.DEFAULT_DCGM_NAMESPACES

"""What the operator shows the world beyond CR status: Prometheus series, PrometheusRules,
FOCUS exports."""

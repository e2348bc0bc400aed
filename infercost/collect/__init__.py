"""Discovery and scraping of inference servers and DCGM exporters.

Turns pod caches and metrics pages into token and power samples for the engine; knows nothing
of CRDs or of writing to the API.

- :mod:`~infercost.collect.discovery`: inference pods, DCGM exporter pods, GPU holders
- :mod:`~infercost.collect.scraping`: concurrent, bounded HTTP GET of many targets
- :mod:`~infercost.collect.scanning`: a fast, narrow Prometheus text reader
- :mod:`~infercost.collect.backends`: raw token counters per inference backend
- :mod:`~infercost.collect.dcgm`: power and energy per physical GPU
- :mod:`~infercost.collect.inference` / :mod:`~infercost.collect.power`: scrape results to
  per-pod token pages and per-node power inputs
- :mod:`~infercost.collect.errors`: scrape failure reason codes
"""

# Which pods are DCGM exporters, and where they are trusted (SPEC §3.2): the defaults of
# --dcgm-selector and --dcgm-namespaces. Kept here, free of imports, so that the flag table can
# read them without loading the scraping machinery.
DEFAULT_DCGM_SELECTORS = ("app=nvidia-dcgm-exporter", "app.kubernetes.io/name=dcgm-exporter")
DEFAULT_DCGM_NAMESPACES = ("gpu-operator", "nvidia-gpu-operator", "kube-system")

"""Cost model, ledger and attribution: pure computation over numpy arrays.

No I/O, no Kubernetes, no HTTP, no wall clock: callers pass times and samples in.
"""

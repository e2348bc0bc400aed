"""Benchmarks of SPEC §9: each reports ratios measured in one run, never asserted in tests."""

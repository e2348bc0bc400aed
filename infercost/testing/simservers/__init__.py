"""Simulated inference servers and DCGM exporters on loopback addresses.

Each simulated server serves its backend's exact page format from ground-truth counters that
tests advance explicitly or through an injected clock, and can be told to fail the ways real
servers fail (slow, 5xx, garbage, disconnects, refusing while loading, huge bodies).
"""

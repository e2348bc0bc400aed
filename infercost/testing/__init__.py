"""Test support shipped with the package: a Kubernetes API emulator, simulated inference
servers and DCGM exporters, and scenario builders. Never imported by the operator itself."""

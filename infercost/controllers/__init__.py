"""The reconcilers and the sampler loop, and the wiring of the operator process."""

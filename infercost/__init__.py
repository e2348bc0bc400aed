"""InferCost: the cost of self-hosted LLM inference on Kubernetes, per token, model and namespace."""

__version__ = "0.1.0"

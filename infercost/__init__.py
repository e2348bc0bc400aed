"""InferCost: what self-hosted LLM inference on Kubernetes costs per token, model, namespace."""

__version__ = "0.1.0"

"""The serving tier: backends (vLLM or native), their supervisor, the reconciler and the gateway."""

"""Observability: Prometheus metrics (`metrics`) and structured logs with job and request ids (`logs`)."""

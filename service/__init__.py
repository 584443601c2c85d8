"""Neuroplast control plane: REST API, database, durable job queue and workers (never imports torch)."""

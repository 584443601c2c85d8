"""Loops that run inside each API process, beside the HTTP server: the webhook deliverer (signed
events from the outbox, with retries) and the scheduler (queues due scheduled health checks)."""

"""Probes, retention metrics, brain-rot panel, health gate and reports; later issues."""

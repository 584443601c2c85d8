"""Titans: a neural long-term memory attached to a frozen base model (Behrouz et al., 2025)."""

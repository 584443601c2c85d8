"""Continual-learning methods: one folder each (config.py + method.py), listed in the registry."""

"""What crosses a process boundary, typed once: imported by the control plane (`service/`), the
trainer and the evaluator alike. Torch-free, and it imports nothing from them (docs/architecture.md)."""

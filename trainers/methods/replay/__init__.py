"""LoRA plus experience replay from the lineage's buffer (`memory.replay`)."""

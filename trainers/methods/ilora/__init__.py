"""I-LoRA: fast and slow LoRA adapters with replay and a consistency loss (Ren et al., 2024)."""

"""LoRA plus online elastic weight consolidation (EWC): a Fisher-weighted pull towards the parent."""

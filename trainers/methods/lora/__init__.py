"""Plain sequential LoRA: the baseline every other method is measured against."""

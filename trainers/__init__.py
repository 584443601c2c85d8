"""Training plane: one process per fine-tuning job, one shared loop, one folder per method."""

"""A base model built in-process (corpus, tokenizer, weights), so nothing needs a network."""

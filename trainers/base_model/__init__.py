"""A base model built in-process (corpus, tokenizer, Llama weights), so nothing needs a network."""

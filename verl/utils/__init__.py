"""Utilities: dataset, tokenizer, checkpoint, logging."""

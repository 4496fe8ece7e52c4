"""The toy world: a synthetic reasoning task, a tiny tokenizer and tiny models, all made offline."""

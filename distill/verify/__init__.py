"""Verifiers: one scorer for curation and evaluation (math answers, multiple choice, code in a sandbox)."""

"""generate_summary.json: what a generation run produced and cost (written by `distill generate`)."""

from __future__ import annotations

from distill.runs import Summary


class GenerateSummary(Summary):
    FILE = "generate_summary.json"
    WRITER = "distill generate"

    traces: int
    ok: int
    failed: int
    finish_reasons: dict[str, int] = {}
    errors: dict[str, int] = {}  # failed samples per error (its first 120 characters)
    prompt_tokens: int  # once per prompt: the k samples of a request share the prefix
    completion_tokens: int
    wall_seconds: float
    cost_usd: float | None = None
    tokens_per_second: float | None = None

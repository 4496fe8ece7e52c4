"""curation.json: counts per reason, source and difficulty, acceptance rates, tokens and cost; and the closing line."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from distill.curate.screen import Outcome
from distill.progress import fmt_count, fmt_duration
from distill.runs import Summary
from distill.teacher.summary import GenerateSummary


class CurationSummary(Summary):
    FILE = "curation.json"
    WRITER = "distill curate (in the directory curate.output names, like RUN/curated)"

    traces: int
    accepted: int
    rejected: int
    acceptance_rate: float
    accepted_unverified: int = 0  # kept without a reference to check them against
    rejected_by_reason: dict[str, int]
    rejected_by_detail: dict[str, int] = {}
    per_source: dict[str, dict[str, float]]
    per_difficulty: dict[str, dict[str, float]] = {}
    prompts: int | None = None
    prompts_with_a_kept_trace: int | None = None
    tokens_kept: int
    generation_cost_usd: float | None = None
    cost_per_accepted_trace_usd: float | None = None
    wall_seconds: float | None = None


def reason_kind(reason: str) -> str:
    """'language mixing: 80% latin < 95%' -> 'language mixing' (for counting)."""
    return reason.split(":", 1)[0]


def summarize(outcomes: list[Outcome], kept: list[Outcome], rejected: list[Outcome], wall: float,
              run_dir: Path) -> CurationSummary:
    per_source: dict[str, Counter] = defaultdict(Counter)
    per_difficulty: dict[str, Counter] = defaultdict(Counter)
    for outcome in outcomes:
        verdict = "kept" if outcome.reason is None else "rejected"
        per_source[outcome.source][verdict] += 1
        per_difficulty[outcome.difficulty][verdict] += 1
    rate = lambda c: round(c["kept"] / max(c["kept"] + c["rejected"], 1), 4)  # noqa: E731
    generation_cost = GenerateSummary.read(run_dir).cost_usd if (run_dir / GenerateSummary.FILE).exists() else None
    return CurationSummary(
        traces=len(outcomes), accepted=len(kept), rejected=len(rejected),
        acceptance_rate=round(len(kept) / max(len(outcomes), 1), 4), accepted_unverified=sum(o.unverified for o in kept),
        rejected_by_reason=dict(Counter(reason_kind(o.reason) for o in rejected).most_common()),
        rejected_by_detail=dict(Counter(o.reason[:100] for o in rejected).most_common(50)),
        per_source={s: {**c, "acceptance_rate": rate(c)} for s, c in per_source.items()},
        per_difficulty={d: {**c, "acceptance_rate": rate(c)} for d, c in sorted(per_difficulty.items())},
        prompts=len({o.prompt_id for o in outcomes}), prompts_with_a_kept_trace=len({o.prompt_id for o in kept}),
        tokens_kept=sum(o.completion_tokens or 0 for o in kept), generation_cost_usd=generation_cost,
        cost_per_accepted_trace_usd=round(generation_cost / len(kept), 6) if generation_cost and kept else None,
        wall_seconds=round(wall, 1))


def closing_line(name: str, summary: CurationSummary, wall: float, out_dir: Path) -> str:
    top = ", ".join(f"{k} {v}" for k, v in list(summary.rejected_by_reason.items())[:4])
    unverified = f" ({summary.accepted_unverified} unverified)" if summary.accepted_unverified else ""
    return (f"[curate {name}] done: kept {summary.accepted}{unverified} of {summary.traces} traces "
            f"({summary.acceptance_rate:.0%}); rejected: {top or 'none'}; {fmt_count(summary.tokens_kept)} tokens "
            f"kept; {fmt_duration(wall)} -> {out_dir}")

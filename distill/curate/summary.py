"""curation.json: counts per reason, source and difficulty, acceptance rates, tokens and cost, the teacher's pass rate
per prompt as a histogram of kept and dropped prompts; and the closing line."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from pydantic import BaseModel

from distill.curate.screen import Outcome
from distill.curate.selection import PassRate, SelectionInputs
from distill.progress import fmt_count, fmt_duration
from distill.runs import Summary
from distill.teacher.summary import GenerateSummary


EDGES = [round(i / 10, 1) for i in range(11)]


class PassRateHistogram(BaseModel):
    """Prompts by pass rate (correct / verified samples): `kept` prompts have a trace in the train files, `dropped`
    ones none. Bin i is [edges[i], edges[i+1]), the last one closed; rates of exactly 0 and 1 are also counted apart."""

    edges: list[float]
    kept: list[int]
    dropped: list[int]
    prompts: int  # with a pass rate (at least one verified sample)
    mean: float | None
    never_solved: dict[str, int]  # {"kept": n, "dropped": n}
    always_solved: dict[str, int]
    samples_per_prompt: dict[str, int]  # verified samples per prompt: how many prompts had each count


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
    pass_rates: PassRateHistogram | None = None  # absent in curations written before it existed
    student_pass_rates: PassRateHistogram | None = None  # the student filter's, where it ran


def reason_kind(reason: str) -> str:
    """'language mixing: 80% latin < 95%' -> 'language mixing' (for counting)."""
    return reason.split(":", 1)[0]


def histogram(rates: dict[str, float | None], kept_prompts: set[str], counts: dict[str, int] | None = None) -> PassRateHistogram:
    kept, dropped = [0] * (len(EDGES) - 1), [0] * (len(EDGES) - 1)
    ends = {"never_solved": {"kept": 0, "dropped": 0}, "always_solved": {"kept": 0, "dropped": 0}}
    known = {pid: r for pid, r in rates.items() if r is not None}
    for pid, r in known.items():
        side = "kept" if pid in kept_prompts else "dropped"
        (kept if side == "kept" else dropped)[min(int(r * 10), 9)] += 1
        if r == 0 or r == 1:
            ends["never_solved" if r == 0 else "always_solved"][side] += 1
    mean = round(sum(known.values()) / len(known), 4) if known else None
    per_count = Counter(counts[pid] for pid in known) if counts else Counter()
    return PassRateHistogram(edges=EDGES, kept=kept, dropped=dropped, prompts=len(known), mean=mean, **ends,
                             samples_per_prompt={str(k): v for k, v in sorted(per_count.items())})


def summarize(outcomes: list[Outcome], kept: list[Outcome], rejected: list[Outcome], wall: float,
              run_dir: Path, selection: SelectionInputs | None = None) -> CurationSummary:
    per_source: dict[str, Counter] = defaultdict(Counter)
    per_difficulty: dict[str, Counter] = defaultdict(Counter)
    teacher: dict[str, PassRate] = selection.teacher if selection is not None else {}
    rate_sums: dict[str, list[float]] = defaultdict(list)
    difficulty_of: dict[str, str] = {}
    for outcome in outcomes:
        verdict = "kept" if outcome.reason is None else "rejected"
        per_source[outcome.source][verdict] += 1
        per_difficulty[outcome.difficulty][verdict] += 1
        difficulty_of.setdefault(outcome.prompt_id, outcome.difficulty)
    for prompt_id, prompt_rate in teacher.items():
        if prompt_rate.rate is not None and prompt_id in difficulty_of:
            rate_sums[difficulty_of[prompt_id]].append(prompt_rate.rate)
    for difficulty, values in rate_sums.items():  # the teacher's mean pass rate per prompt, by difficulty
        per_difficulty[difficulty]["mean_pass_rate"] = round(sum(values) / len(values), 4)
    rate = lambda c: round(c["kept"] / max(c["kept"] + c["rejected"], 1), 4)  # noqa: E731
    kept_prompts = {o.prompt_id for o in kept}
    pass_rates = histogram({p: r.rate for p, r in teacher.items()}, kept_prompts,
                           {p: r.verified for p, r in teacher.items()}) if teacher else None
    student = (histogram(selection.student, kept_prompts)
               if selection is not None and selection.student is not None else None)
    generation_cost = GenerateSummary.read(run_dir).cost_usd if (run_dir / GenerateSummary.FILE).exists() else None
    return CurationSummary(
        traces=len(outcomes), accepted=len(kept), rejected=len(rejected),
        acceptance_rate=round(len(kept) / max(len(outcomes), 1), 4), accepted_unverified=sum(not o.verdict.verified for o in kept),
        rejected_by_reason=dict(Counter(reason_kind(o.reason) for o in rejected).most_common()),
        rejected_by_detail=dict(Counter(o.reason[:100] for o in rejected).most_common(50)),
        per_source={s: {**c, "acceptance_rate": rate(c)} for s, c in per_source.items()},
        per_difficulty={d: {**c, "acceptance_rate": rate(c)} for d, c in sorted(per_difficulty.items())},
        prompts=len({o.prompt_id for o in outcomes}), prompts_with_a_kept_trace=len({o.prompt_id for o in kept}),
        tokens_kept=sum(o.completion_tokens or 0 for o in kept), generation_cost_usd=generation_cost,
        cost_per_accepted_trace_usd=round(generation_cost / len(kept), 6) if generation_cost and kept else None,
        wall_seconds=round(wall, 1), pass_rates=pass_rates, student_pass_rates=student)


def closing_line(name: str, summary: CurationSummary, wall: float, out_dir: Path) -> str:
    top = ", ".join(f"{k} {v}" for k, v in list(summary.rejected_by_reason.items())[:4])
    unverified = f" ({summary.accepted_unverified} unverified)" if summary.accepted_unverified else ""
    p = summary.pass_rates
    rates = (f"; teacher pass rate per prompt: mean {p.mean:.2f}, {sum(p.never_solved.values())} never and "
             f"{sum(p.always_solved.values())} always solved" if p is not None and p.mean is not None else "")
    return (f"[curate {name}] done: kept {summary.accepted}{unverified} of {summary.traces} traces "
            f"({summary.acceptance_rate:.0%}); rejected: {top or 'none'}; {fmt_count(summary.tokens_kept)} tokens "
            f"kept{rates}; {fmt_duration(wall)} -> {out_dir}")

"""Selection by difficulty: the teacher's pass rate per prompt, a pass-rate band, and a small chosen subset.

A prompt's pass rate is correct / verified over its k samples (unverified samples, and those a cheap filter
rejected before the judge saw them, do not count). The band keeps prompts with min <= rate <= max (open-r1's
filter uses the open interval); a prompt with no verified sample has no rate and passes the band.

The subset follows s1 (Muennighoff et al. 2025, arXiv 2501.19393: quality, then difficulty, then diversity) and
LIMO: quality is what curation already enforces (verified, filtered, deduplicated); difficulty is the teacher's pass
rate (s1 used two models' failures and trace length); diversity is a round-robin over the groups of `diversity`
(s1 drew a domain uniformly, then a problem in it); length prefers the longest kept trace (s1: longer reasoning
as a proxy for harder). Every choice is seeded, and does not depend on the order the traces are stored in.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from distill.curate.config import PassRateBand, Subset
from distill.curate.screen import Outcome


@dataclass
class PassRate:
    correct: int = 0
    verified: int = 0

    @property
    def rate(self) -> float | None:
        return self.correct / self.verified if self.verified else None


@dataclass
class SelectionInputs:
    """What selection needs beyond the outcomes: the student's pass rates (student filter), each prompt's metadata
    group (a subset's diversity over a metadata field); and, once decided, the teacher's pass rates."""

    student: dict[str, float | None] | None = None
    metadata_groups: dict[str, str] | None = None
    teacher: dict[str, PassRate] = field(default_factory=dict)

    def teacher_rates(self) -> dict[str, float | None]:
        return {prompt_id: rate.rate for prompt_id, rate in self.teacher.items()}

    def groups_for(self, diversity: str | None, outcomes: list[Outcome]) -> dict[str, str] | None:
        if diversity is None:
            return None
        if diversity in ("source", "difficulty"):
            return {o.prompt_id: getattr(o, diversity) for o in outcomes}
        return self.metadata_groups or {}


def teacher_pass_rates(outcomes: list[Outcome]) -> dict[str, PassRate]:
    """Per prompt, from the verdicts."""
    rates: dict[str, PassRate] = defaultdict(PassRate)
    for outcome in outcomes:
        rate = rates[outcome.prompt_id]  # every prompt gets an entry, verified or not
        if outcome.verdict is not None and outcome.verdict.verified:
            rate.verified += 1
            rate.correct += outcome.verdict.correct
    return dict(rates)


def band_reason(rate: float | None, band: PassRateBand, what: str = "pass rate") -> str | None:
    if rate is None:
        return None
    if rate > band.max:
        return f"{what}: {rate:.2f} above {band.max:.2f}"
    if rate < band.min:
        return f"{what}: {rate:.2f} below {band.min:.2f}"
    return None


def apply_band(accepted: list[Outcome], rates: dict[str, float | None], band: PassRateBand,
               what: str = "pass rate") -> tuple[list[Outcome], list[Outcome]]:
    """(in the band, out of it): an outcome out of the band carries its reason."""
    kept, dropped = [], []
    for outcome in accepted:
        outcome.reason = band_reason(rates.get(outcome.prompt_id), band, what)
        (dropped if outcome.reason else kept).append(outcome)
    return kept, dropped


def tie_break(seed: int, prompt_id: str) -> float:
    return random.Random(f"{seed}:{prompt_id}").random()


def choose_subset(accepted: list[Outcome], rates: dict[str, float | None], cfg: Subset, seed: int,
                  groups: dict[str, str] | None = None) -> tuple[list[Outcome], list[Outcome]]:
    """(chosen, the rest): up to `cfg.count` prompts, one trace each. `groups`: prompt id -> its diversity group
    (the source when `cfg.diversity` is `source`)."""
    by_prompt: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in accepted:
        in_band = ((cfg.min_tokens is None or outcome.length >= cfg.min_tokens)
                   and (cfg.max_tokens is None or outcome.length <= cfg.max_tokens))
        if in_band:
            by_prompt[outcome.prompt_id].append(outcome)
    best: dict[str, Outcome] = {}
    for prompt_id, outcomes in by_prompt.items():
        if cfg.length == "any":
            best[prompt_id] = min(outcomes, key=lambda o: tie_break(seed, f"{prompt_id}:{o.sample_index}"))
        else:
            sign = -1 if cfg.length == "longest" else 1
            best[prompt_id] = min(outcomes, key=lambda o: (sign * o.length, o.sample_index))

    def rank(prompt_id: str) -> tuple:
        rate = rates.get(prompt_id)
        hardness = (2.0 if rate is None else rate) if cfg.difficulty == "hardest" else 0.0
        length = {"longest": -best[prompt_id].length, "shortest": best[prompt_id].length}.get(cfg.length, 0)
        return hardness, length, tie_break(seed, prompt_id)

    queues: dict[str, list[str]] = defaultdict(list)
    for prompt_id in sorted(best, key=rank):
        group = groups.get(prompt_id, "None") if cfg.diversity and groups is not None else ""
        queues[group].append(prompt_id)
    chosen: list[str] = []
    order = sorted(queues)
    depth = 0
    while len(chosen) < cfg.count and any(depth < len(queues[g]) for g in order):
        for group in order:  # round-robin: the i-th best of every group before the (i+1)-th of any
            if depth < len(queues[group]) and len(chosen) < cfg.count:
                chosen.append(queues[group][depth])
        depth += 1
    picked = {id(best[p]) for p in chosen}
    kept = [o for o in accepted if id(o) in picked]
    rest = [o for o in accepted if id(o) not in picked]
    for outcome in rest:
        outcome.reason = "not in subset"
    return kept, rest

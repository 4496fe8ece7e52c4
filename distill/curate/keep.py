"""Which screened `Outcome`s are kept and which rejected: exact dedup, near-dedup, verdicts, then selection (the
teacher's pass-rate band, the student's pass-rate filter, up to m traces per prompt, a chosen subset)."""

from __future__ import annotations

import random
from collections import defaultdict

from distill.curate import filters
from distill.curate.config import CurateSection
from distill.curate.screen import Outcome
from distill.curate.selection import SelectionInputs, apply_band, choose_subset, teacher_pass_rates


def keep_or_reject(outcomes: list[Outcome], c: CurateSection,
                   selection: SelectionInputs | None = None) -> tuple[list[Outcome], list[Outcome]]:
    """(kept, rejected): every outcome ends with a reason, or None when kept. Rejected in the order of the reasons'
    stages (filters, near-duplicates, verdicts, selection), which the summary's counts follow. The teacher's pass
    rates per prompt are recorded in `selection.teacher` for the summary."""
    selection = selection if selection is not None else SelectionInputs()
    selection.teacher = teacher_pass_rates(outcomes)
    candidates = drop_duplicates(outcomes)
    rejected = [o for o in outcomes if o.reason]
    if c.near_dedup.enabled:
        candidates, near = drop_near_duplicates(candidates, c)
        rejected += near
    accepted = []
    for outcome in candidates:
        if outcome.verdict.correct:
            accepted.append(outcome)
        else:
            outcome.reason = outcome.verdict.reason
            rejected.append(outcome)
    kept, dropped = select_by_difficulty(accepted, c, selection)
    kept, not_selected = select(kept, c)
    for outcome in not_selected:
        outcome.reason = "not selected"
    sub = c.selection.subset
    if sub is not None:
        groups = selection.groups_for(sub.diversity, kept)
        kept, not_in_subset = choose_subset(kept, selection.teacher_rates(), sub, c.selection.seed, groups)
        not_selected += not_in_subset
    return kept, rejected + dropped + not_selected


def select_by_difficulty(accepted: list[Outcome], c: CurateSection,
                         selection: SelectionInputs) -> tuple[list[Outcome], list[Outcome]]:
    """The teacher's pass-rate band, then the student's filter (prompts it already solves above `max`)."""
    dropped: list[Outcome] = []
    if c.selection.pass_rate is not None:
        accepted, out = apply_band(accepted, selection.teacher_rates(), c.selection.pass_rate)
        dropped += out
    if c.selection.student is not None and selection.student is not None:
        accepted, out = apply_band(accepted, selection.student, c.selection.student.band(), "student pass rate")
        dropped += out
    return accepted, dropped


def drop_duplicates(outcomes: list[Outcome]) -> list[Outcome]:
    """Reject exact repeats of an earlier response to the same prompt; the candidates that remain, in order."""
    seen: set[bytes] = set()
    candidates = []
    for outcome in outcomes:
        if outcome.reason:
            continue
        key, outcome.response_key = outcome.response_key, None
        if key is not None and key in seen:
            outcome.reason = "duplicate response"
            continue
        seen.add(key)
        candidates.append(outcome)
    return candidates


def _by_prompt(outcomes: list[Outcome]) -> dict[str, list[Outcome]]:
    grouped: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        grouped[outcome.prompt_id].append(outcome)
    return grouped


def drop_near_duplicates(candidates: list[Outcome], cfg: CurateSection) -> tuple[list[Outcome], list[Outcome]]:
    """Reject responses that nearly duplicate an earlier sample of the same prompt."""
    kept, dropped = [], []
    for outcomes in _by_prompt(candidates).values():
        outcomes.sort(key=lambda o: o.sample_index)
        near = filters.near_duplicates_of([o.minhash for o in outcomes], cfg.near_dedup.threshold)
        for i, outcome in enumerate(outcomes):
            outcome.minhash = None
            if i in near:
                outcome.reason = f"near-duplicate of sample {outcomes[near[i]].sample_index}"
                dropped.append(outcome)
            else:
                kept.append(outcome)
    return kept, dropped


def select(accepted: list[Outcome], cfg: CurateSection) -> tuple[list[Outcome], list[Outcome]]:
    """Keep up to max_per_prompt accepted traces per prompt; the rest are rejected as 'not selected'."""
    sel = cfg.selection
    if sel.max_per_prompt is None:
        return accepted, []
    kept, dropped = [], []
    for prompt_id, outcomes in _by_prompt(accepted).items():
        if sel.policy == "shortest":
            outcomes = sorted(outcomes, key=lambda o: (o.length, o.sample_index))
        elif sel.policy == "random":
            outcomes = sorted(outcomes, key=lambda o: o.sample_index)
            random.Random(f"{sel.seed}:{prompt_id}").shuffle(outcomes)
        else:
            outcomes = sorted(outcomes, key=lambda o: o.sample_index)
        kept += outcomes[: sel.max_per_prompt]
        dropped += outcomes[sel.max_per_prompt:]
    return kept, dropped

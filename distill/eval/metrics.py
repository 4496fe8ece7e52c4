"""Eval metrics over per-problem sample verdicts: pass@k, bootstrap CIs, cons@n, paired differences.

Functions take fractions (0-1) and return fractions; only `benchmark_results` speaks percent, the
results.json shape documented in distill/eval/__init__.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Resampled means are computed in blocks of at most this many drawn indices (memory stays ~40 MB).
BOOTSTRAP_BLOCK = 5_000_000


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with `c` correct out of `n` samples (Chen et al. 2021):
    1 - C(n-c, k) / C(n, k), as a running product so large n never overflows."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_mean(correct: Sequence[Sequence[bool]], k: int) -> float:
    """pass@k averaged over problems; `correct[i]` holds the verdicts of problem i's samples."""
    return float(np.mean([pass_at_k(len(v), int(sum(v)), k) for v in correct]))


def ks_up_to(n: int) -> list[int]:
    """k = 1, 2, 4, ... up to n."""
    return [2**i for i in range(n.bit_length()) if 2**i <= n]


def per_problem_accuracy(correct: Sequence[Sequence[bool]]) -> np.ndarray:
    """The fraction of each problem's samples that are correct."""
    if any(len(v) == 0 for v in correct):
        raise ValueError("every problem needs at least one sample")
    return np.array([np.mean(np.asarray(v, dtype=float)) for v in correct])


def pass_at_1(correct: Sequence[Sequence[bool]]) -> float:
    """The mean over samples, then over problems."""
    return float(per_problem_accuracy(correct).mean())


def bootstrap_means(values: Sequence[float], resamples: int = 10_000, seed: int = 0) -> np.ndarray:
    """Means of `resamples` resamples (with replacement) of `values`, one per problem."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("bootstrap needs at least one value")
    rng = np.random.default_rng(seed)
    block = max(1, BOOTSTRAP_BLOCK // values.size)
    means = [values[rng.integers(0, values.size, size=(min(block, resamples - start), values.size))].mean(axis=1)
             for start in range(0, resamples, block)]
    return np.concatenate(means)


def bootstrap_ci(values: Sequence[float], resamples: int = 10_000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of per-problem `values`."""
    means = bootstrap_means(values, resamples, seed)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class BootstrapDifference:
    mean: float  # mean over problems of A's score minus B's
    ci95: tuple[float, float]
    share_le_0: float  # share of resamples where A is not better than B (a one-sided bootstrap p-value)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 10_000, confidence: float = 0.95,
                     seed: int = 0) -> BootstrapDifference:
    """A minus B on the same problems (a[i], b[i] are problem i's scores), problems resampled jointly."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired bootstrap needs scores on the same problems, got {a.size} and {b.size}")
    differences = a - b
    means = bootstrap_means(differences, resamples, seed)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return BootstrapDifference(float(differences.mean()), (float(lo), float(hi)), float(np.mean(means <= 0)))


@lru_cache(maxsize=65536)
def scorer_equal(answer: str, other: str) -> bool:
    """Do two extracted answers mean the same thing to the math scorer (e.g. \\frac{1}{2} and 0.5)?"""
    from distill.verify.kinds import judge_math

    return answer == other or judge_math(f"\\boxed{{{answer}}}", other, reasoning=False).correct


def majority_vote_correct(extracted: Sequence[str | None], correct: Sequence[bool],
                          same: Callable[[str, str], bool] = scorer_equal) -> bool:
    """Is the most frequent answer among a problem's samples correct? A tie goes to the answer seen first.

    Correct samples all equal the reference, so they vote as one answer; wrong answers vote together
    when `same` says so. Samples without an answer do not vote."""
    votes: list[list] = []  # [representative answer or None for the correct group, count, is_correct]
    for answer, ok in zip(extracted, correct):
        if ok:
            group = next((g for g in votes if g[2]), None)
        elif answer is None:
            continue
        else:
            group = next((g for g in votes if not g[2] and same(answer, g[0])), None)
        if group is None:
            votes.append([None if ok else answer, 0, bool(ok)])
            group = votes[-1]
        group[1] += 1
    if not votes:
        return False
    return max(votes, key=lambda g: g[1])[2]  # max keeps the first of equal counts: the earliest seen


def cons_at_n(extracted: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]],
              same: Callable[[str, str], bool] = scorer_equal) -> float:
    """The share of problems whose majority-vote answer is correct."""
    return float(np.mean([majority_vote_correct(e, c, same) for e, c in zip(extracted, correct)]))


def length_stats(tokens: Sequence[int]) -> dict:
    """Response length in tokens: mean, median, p90, max."""
    tokens = np.asarray(tokens, dtype=float)
    if tokens.size == 0:
        return {"mean": None, "median": None, "p90": None, "max": None}
    return {"mean": float(tokens.mean()), "median": float(np.median(tokens)),
            "p90": float(np.percentile(tokens, 90)), "max": int(tokens.max())}


def benchmark_results(records, resamples: int = 10_000, seed: int = 0,
                      same: Callable[[str, str], bool] = scorer_equal) -> dict[str, dict]:
    """Per-sample records (benchmark, problem_id, sample, correct, extracted, response_tokens; a list of
    dicts or a DataFrame) -> {benchmark: metrics} in the results.json shape, in percent.

    When problems have different sample counts, n (and the largest k) is the smallest count. cons@n is
    None when no sample has an extracted answer (code: there is no answer to vote on)."""
    results = {}
    for benchmark, problems in _group_samples(records).items():
        ids = list(problems)
        samples = [sorted(problems[p], key=lambda r: r["sample"]) for p in ids]
        correct = [[bool(r["correct"]) for r in s] for s in samples]
        extracted = [[r["extracted"] if isinstance(r.get("extracted"), str) else None for r in s] for s in samples]
        accuracy = per_problem_accuracy(correct)
        n = min(len(c) for c in correct)
        lo, hi = bootstrap_ci(accuracy, resamples, seed=seed)
        results[benchmark] = {
            "problems": len(ids),
            "samples": sum(len(c) for c in correct),
            "pass@1": 100 * float(accuracy.mean()),
            "ci95": [100 * lo, 100 * hi],
            "cons@n": 100 * cons_at_n(extracted, correct, same) if any(a for e in extracted for a in e) else None,
            "n": n,
            "pass@k": {str(k): 100 * pass_at_k_mean(correct, k) for k in ks_up_to(n)},
            "length": length_stats([r["response_tokens"] for s in samples for r in s]),
            "per_problem": {str(p): float(a) for p, a in zip(ids, accuracy)},
        }
    return results


def _group_samples(records) -> dict[str, dict[str, list[Mapping]]]:
    """{benchmark: {problem_id: [records]}}, both in order of first appearance."""
    if hasattr(records, "to_dict"):  # a pandas DataFrame
        records = records.to_dict("records")
    grouped: dict[str, dict[str, list[Mapping]]] = {}
    for record in records:
        grouped.setdefault(record["benchmark"], {}).setdefault(record["problem_id"], []).append(record)
    return grouped


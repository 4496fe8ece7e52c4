"""lm-eval hooks named by the task YAMLs in eval/tasks (through eval/tasks/hooks.py, which re-exports these).

`distill eval` runs lm-eval for the generations only and scores them itself (all samples, in parallel);
these hooks make the same tasks score correctly when run by lm-eval directly:
`lm_eval --include_path eval/tasks --tasks distill_math500 ...`.
"""

from __future__ import annotations

from datasets import Dataset

from distill.eval.docs import normalise
from distill.eval.score import score_samples


def _docs(dataset, layout: str) -> Dataset:
    return Dataset.from_list(normalise(dataset, layout))


def math_docs(dataset):
    return _docs(dataset, "math")


def gpqa_docs(dataset):
    return _docs(dataset, "gpqa")


def livecodebench_docs(dataset):
    return _docs(dataset, "livecodebench")


def humaneval_docs(dataset):
    return _docs(dataset, "humaneval")


def keep_all(resps, docs):
    """Every repeat is a sample: lm-eval's default filter would keep only the first (STACK.md)."""
    return resps


def process_results(doc: dict, results: list) -> dict:
    responses = results[0] if results and isinstance(results[0], list) else results
    verdicts = score_samples([doc] * len(responses), list(responses), reasoning=None, workers=1)
    return {"pass@1": sum(v.correct for v in verdicts) / max(len(verdicts), 1)}

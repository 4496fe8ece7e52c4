"""Scoring with distill's verifiers: eval's samples (`score_samples`), and `distill score INPUT.jsonl`, which
re-scores saved generations from any harness by their reference answers.

Each input line of `distill score` is one problem: a response (or a list of responses) and its reference
answer. The verdicts file has one line per input line: the list of {correct, extracted, reason}, one per response.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from distill.errors import UsageError
from distill.eval.docs import answer_text
from distill.eval.metrics import bootstrap_ci, cons_at_n, ks_up_to, pass_at_k_mean, per_problem_accuracy
from distill.io import atomic_write_text, check_output_path, text_lines
from distill.progress import Progress, say
from distill.verify import kinds
from distill.verify.pool import VerdictPool, judge_many
from distill.verify.reasoning import is_reasoning
from distill.verify.sandbox import Limits, Sandbox
from distill.verify.verdict import Verdict

PROGRESS_EVERY_S = 10.0


def score_samples(docs: list[dict], responses: list[str], reasoning: bool | None, workers: int | None = None,
                  sandbox: Sandbox | None = None, limits: Limits | None = None) -> list[Verdict]:
    """One verdict per (normalised doc, response) pair, in order, each judged by the verifier kind of its doc.
    reasoning None: decided per response."""
    items = [kinds.for_doc(doc, response, is_reasoning(response) if reasoning is None else reasoning)
             for doc, response in zip(docs, responses)]
    return judge_many(items, workers, sandbox, limits)


@dataclass(frozen=True)
class Generation:
    line: int  # 1-based line number in the input file
    responses: list[str]
    answer: str


@dataclass(frozen=True)
class ScoreSummary:
    pass_at_1: float  # percent
    ci95: tuple[float, float]  # percent
    problems: int
    samples: int
    reasoning: bool
    out: Path


def read_generations(path: str | Path, response_key: str = "response", answer_key: str = "answer") -> list[Generation]:
    """The input lines as Generations; bad input raises UsageError("<file>:<line>: ...").

    With the default response key, a line without `response` may hold a `responses` list instead."""
    response_keys = [response_key] + (["responses"] if response_key == "response" else [])
    generations = [_parse_line(line, f"{path}:{number}", number, response_keys, answer_key)
                   for number, line in text_lines(path) if line.strip()]
    if not generations:
        raise UsageError(f"{path}: no generations (the file is empty)")
    return generations


def _parse_line(line: str, where: str, number: int, response_keys: list[str], answer_key: str) -> Generation:
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise UsageError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(item, dict):
        raise UsageError(f"{where}: expected a JSON object, got {type(item).__name__}")
    key = next((k for k in response_keys if k in item), None)
    if key is None:
        raise UsageError(f"{where}: no {' or '.join(repr(k) for k in response_keys)} field (set --response-key)")
    responses = item[key]
    if isinstance(responses, str):
        responses = [responses]
    if not isinstance(responses, list) or not responses or not all(isinstance(r, str) for r in responses):
        raise UsageError(f"{where}: {key!r} must be a string or a non-empty list of strings")
    if answer_key not in item:
        raise UsageError(f"{where}: no {answer_key!r} field (set --answer-key)")
    answer = item[answer_key]
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise UsageError(f"{where}: {answer_key!r} must be a string or a number")
    return Generation(number, responses, answer_text(answer))


def detect_reasoning(generations: list[Generation]) -> bool:
    """Reasoning mode when any response is a reasoning response."""
    return any(is_reasoning(r) for g in generations for r in g.responses)


def score_generations(generations: list[Generation], reasoning: bool, kind: str = "auto", workers: int | None = None,
                      log: Callable[[str], None] = say) -> list[list[Verdict]]:
    """Verdicts per generation, per response; workers 1 (or 0): in this process. A progress line every 10 s."""
    total = sum(len(g.responses) for g in generations)
    verdicts: list[Verdict | None] = [None] * total
    progress, done = Progress("[score]", total, every=PROGRESS_EVERY_S, log=log), 0

    def record(index: int, verdict: Verdict) -> None:
        nonlocal done
        verdicts[index] = verdict
        done += 1
        progress.update(done)

    with VerdictPool(record, workers=0 if workers is not None and workers <= 1 else workers) as pool:
        index = 0
        for g in generations:
            for response in g.responses:
                pool.submit(index, kinds.answer_item(response, g.answer, reasoning, kind))
                index += 1
        pool.close()
    progress.close()
    per_generation, start = [], 0
    for g in generations:
        per_generation.append(verdicts[start:start + len(g.responses)])
        start += len(g.responses)
    return per_generation


def default_out_path(input_path: str | Path) -> Path:
    """<input stem>.verdicts.jsonl beside the input."""
    input_path = Path(input_path)
    return input_path.with_name(f"{input_path.stem}.verdicts.jsonl")


def write_verdicts(path: str | Path, verdicts: list[list[Verdict]]) -> Path:
    lines = (json.dumps([{"correct": v.correct, "extracted": v.extracted, "reason": v.reason} for v in vs])
             for vs in verdicts)
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def run_score(input_path: str | Path, out: str | Path | None = None, response_key: str = "response",
              answer_key: str = "answer", reasoning: bool | None = None, kind: str = "auto",
              workers: int | None = None, log: Callable[[str], None] = say) -> ScoreSummary:
    """Read, score, write the verdicts, and print pass@1 with its 95% bootstrap CI over problems."""
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be 1 (score in this process) or more, got {workers}")
    out = out or default_out_path(input_path)
    check_output_path(out, input_path)
    generations = read_generations(input_path, response_key, answer_key)
    how = "given" if reasoning is not None else "detected"
    if reasoning is None:
        reasoning = detect_reasoning(generations)
    samples = sum(len(g.responses) for g in generations)
    mode = "reasoning: answer after the last </think>" if reasoning else "no reasoning: the whole response"
    log(f"[score] {input_path}: {len(generations)} problems, {samples} samples; {mode} ({how})")
    verdicts = score_generations(generations, reasoning, kind, workers, log)
    out = write_verdicts(out, verdicts)
    correct = [[v.correct for v in vs] for vs in verdicts]
    accuracy = per_problem_accuracy(correct)
    lo, hi = bootstrap_ci(accuracy)
    summary = ScoreSummary(100 * float(accuracy.mean()), (100 * lo, 100 * hi), len(generations), samples, reasoning, out)
    log(f"pass@1 = {summary.pass_at_1:.1f}% (95% CI {summary.ci95[0]:.1f}-{summary.ci95[1]:.1f}, "
        f"{summary.problems} problems, {summary.samples} samples)")
    counts = {len(vs) for vs in verdicts}
    if len(counts) == 1 and (n := counts.pop()) > 1:
        extracted = [[v.extracted for v in vs] for vs in verdicts]
        pass_k = ", ".join(f"pass@{k} = {100 * pass_at_k_mean(correct, k):.1f}%" for k in ks_up_to(n))
        log(f"cons@{n} = {100 * cons_at_n(extracted, correct):.1f}%; {pass_k}")
    log(f"[score] verdicts: {out}")
    return summary

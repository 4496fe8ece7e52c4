"""An optional judge model for traces without a reference answer (writing, QA, translation): a rubric, a 1-10 score,
a threshold.

It runs after screening, on the traces still in the running (filters passed, verdict correct or unverified), each
distinct response once: an exact duplicate is rejected as such afterwards, so it is not paid for. Requests go through
the engines generation uses (`openai` against any OpenAI-compatible server, `hf` in process). Every answer is kept
per trace id under <run>/judgements/<key>/ (the key: judge model, rubric and sampling), so a repeated or interrupted
curation asks only for the traces it has no answer for; a changed threshold reuses every score. A request that failed
is not kept: the next run asks again. An answer without a readable score rejects its trace with that reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from distill.curate.config import JudgeModel
from distill.curate.screen import Outcome, TraceCache
from distill.engines import SamplingParams, make_engine
from distill.errors import DistillError, UsageError
from distill.progress import Progress, fmt_duration, say
from distill.traces import iter_batches
from distill.verify.reasoning import THINK_END, THINK_START, split_reasoning

JUDGEMENTS = pa.schema([("trace_id", pa.string()), ("score", pa.float64()), ("reason", pa.string())])
# Columns the curated train and rejected files gain when a judge ran (null where it did not judge the trace).
JUDGE_FIELDS = [pa.field("judge_score", pa.float64()), pa.field("judge_reason", pa.string()),
                pa.field("judge_model", pa.string())]
# `Score: 7`, `**Score:** 7`, `score = 7/10`: the last one in the answer counts.
SCORE = re.compile(r"\bscore\b\s*\**\s*[:=]\s*\**\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
PLACEHOLDER = re.compile(r"\{(prompt|response)\}")
REASON_CHARS = 300
FAILED = "request failed: "


@dataclass(frozen=True)
class Judgement:
    score: float | None  # None: the answer held no readable score
    reason: str  # the judge's reasons (the text before its score), or why its answer was unreadable


def parse_judgement(text: str, finish_reason: str | None = None) -> Judgement:
    """The score (1-10) and reasons in a judge's answer; a reasoning judge's thinking is skipped."""
    if THINK_START in text and THINK_END not in text:
        cut = " (cut off at max_tokens)" if finish_reason == "length" else ""
        return Judgement(None, f"unparseable: the judge never closed its reasoning{cut}")
    answer = split_reasoning(text)[1]
    matches = list(SCORE.finditer(answer))
    if not matches:
        cut = ", cut off at max_tokens" if finish_reason == "length" else ""
        excerpt = " ".join(answer.split())[:120]
        return Judgement(None, f"unparseable: no 'Score: N' line{cut}: {excerpt!r}")
    last = matches[-1]
    score = float(last.group(1))
    if not 1 <= score <= 10:
        return Judgement(None, f"unparseable: score {last.group(1)} is outside 1-10")
    reason = " ".join(answer[:last.start()].split()).rstrip(" *#-:")
    return Judgement(score, reason[-REASON_CHARS:])


def judge_prompt(rubric: str, prompt_messages: list[dict], response: str, answer_only: bool) -> list[dict]:
    """The judge's one user message: the rubric with the request (the last user message) and the answer put in."""
    request = next((m["content"] for m in reversed(prompt_messages) if m["role"] == "user"), "")
    answer = split_reasoning(response)[1] if answer_only else response
    values = {"prompt": request, "response": answer}
    return [{"role": "user", "content": PLACEHOLDER.sub(lambda m: values[m.group(1)], rubric)}]


def cache_key(cfg: JudgeModel) -> str:
    """What a judgement depends on (not the threshold: a changed threshold reuses every score)."""
    parts = [cfg.kind, cfg.model, cfg.rubric, cfg.answer_only, cfg.temperature, cfg.top_p, cfg.max_tokens]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]


def verdict_of(judgement: tuple[float | None, str], threshold: float) -> str | None:
    """The rejection reason a judgement gives its trace, or None when the trace stays."""
    score, reason = judgement
    if score is None:
        return f"judge: {reason}"
    if score < threshold:
        return f"judge: score {score:g} < {threshold:g}"
    return None


def to_judge(outcomes: list[Outcome]) -> list[int]:
    """Indices of the outcomes the judge reads: still in the running, each distinct response once (in the order
    exact dedup keeps the first)."""
    seen: set[bytes] = set()
    chosen = []
    for index, outcome in enumerate(outcomes):
        if outcome is None or outcome.reason or outcome.verdict is None or not outcome.verdict.correct:
            continue
        if outcome.response_key is not None:
            if outcome.response_key in seen:
                continue
            seen.add(outcome.response_key)
        chosen.append(index)
    return chosen


PROGRESS_EVERY_S = 5.0  # the first line after a few seconds: the first answers say little of the rate


class JudgeProgress:
    """Judged traces with their unparseable and failed counts, on the project's progress bar or lines."""

    def __init__(self, name: str, total: int):
        self.done, self.unparseable, self.failed = 0, 0, 0
        self.progress = Progress(f"[curate {name}] judge: traces", total, every=PROGRESS_EVERY_S)

    def add(self, unparseable: bool, failed: bool) -> None:
        self.done += 1
        self.unparseable += unparseable
        self.failed += failed
        self.progress.update(self.done, f"  unparseable {self.unparseable}  failed {self.failed}")
        if self.done == self.progress.total:
            self.progress.close()


async def ask(cfg: JudgeModel, requests, cache: TraceCache, results: dict, progress: JudgeProgress) -> None:
    """Send each (trace id, messages) of `requests` to the judge, at most max_concurrency in flight, reading the
    traces only as fast as the judge answers."""
    engine_cfg = cfg.engine_section()
    try:
        engine = make_engine(engine_cfg)
    except Exception as exc:  # a local judge (hf, vllm) that does not load
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"curate.judge.model: cannot load {cfg.model!r} ({cfg.kind}): {reason}") from None
    params = SamplingParams(n=1, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens)
    slots = asyncio.Semaphore(engine_cfg.max_concurrency)
    tasks: set[asyncio.Task] = set()

    async def one(trace_id: str, messages: list[dict]) -> None:
        try:
            result = await engine.complete(messages, params)
            completion = result.completions[0] if result.completions else None
            if completion is None or completion.error:
                raise RuntimeError(completion.error if completion else "no answer")
        except Exception as exc:  # this trace is rejected with the reason, not cached: the next run asks again
            results[trace_id] = (None, f"{FAILED}{type(exc).__name__}: {str(exc)[:200]}")
            progress.add(False, True)
        else:
            judgement = parse_judgement(completion.text, completion.finish_reason)
            results[trace_id] = (judgement.score, judgement.reason)
            cache.add(trace_id, judgement.score, judgement.reason)
            progress.add(judgement.score is None, False)
        finally:
            slots.release()

    try:
        for trace_id, messages in requests:
            await slots.acquire()
            task = asyncio.create_task(one(trace_id, messages))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    finally:
        cache.flush()
        await engine.close()


def judge_outcomes(traces_dir: Path, rank: np.ndarray, outcomes: list[Outcome], cfg: JudgeModel, run_dir: Path,
                   name: str) -> dict[str, tuple[float | None, str]]:
    """Judge the outcomes still in the running; those below the threshold, or with an unreadable answer, are rejected
    with that reason (their verifier's verdict stays as it was: a teacher's pass rate counts what it solved). Returns
    (score, reason) per judged trace id, for the curated files."""
    cache = TraceCache(run_dir / "judgements", cache_key(cfg), JUDGEMENTS, "judgements", flush_rows=32)
    chosen = to_judge(outcomes)
    results = {outcomes[i].trace_id: cache.known[outcomes[i].trace_id] for i in chosen if outcomes[i].trace_id in cache.known}
    todo = np.zeros(len(outcomes), dtype=bool)
    todo[[i for i in chosen if outcomes[i].trace_id not in results]] = True
    say(f"[curate {name}] judge {cfg.model} ({cfg.kind}): {len(chosen)} traces, {len(results)} already judged "
        f"(cache), {int(todo.sum())} to ask")

    def requests():
        for start, batch in iter_batches(traces_dir, ["trace_id", "prompt_messages", "response"]):
            ranks = rank[start:start + batch.num_rows]
            rows = [row for row, index in enumerate(ranks) if index >= 0 and todo[index]]
            if not rows:
                continue
            batch = batch.take(rows)
            for trace_id, prompt, response in zip(*(batch.column(c).to_pylist() for c in batch.schema.names)):
                yield trace_id, judge_prompt(cfg.rubric, prompt, response or "", cfg.answer_only)

    if todo.any():
        started = time.time()
        asyncio.run(ask(cfg, requests(), cache, results, JudgeProgress(name, int(todo.sum()))))
        asked_for = fmt_duration(time.time() - started)
    else:
        asked_for = "0s"
    failures = [reason for score, reason in results.values() if score is None and reason.startswith(FAILED)]
    if todo.any() and len(failures) == int(todo.sum()):
        raise DistillError(f"curate.judge: all {len(failures)} requests to the judge {cfg.model} failed (is it served at "
                           f"{', '.join(cfg.base_urls) or 'its address'}?); first: {failures[0]}; rerun once it answers "
                           "(scores it gave before stay cached)")
    kept, by_response = 0, {}
    for index in chosen:
        outcome = outcomes[index]
        judgement = results[outcome.trace_id]
        outcome.reason = verdict_of(judgement, cfg.threshold)
        kept += outcome.reason is None
        if outcome.response_key is not None:
            by_response[outcome.response_key] = judgement
    # An exact repeat of a judged response carries its judgement: rejected with it, or later as a duplicate.
    for outcome in outcomes:
        if outcome is None or outcome.reason or outcome.verdict is None or not outcome.verdict.correct:
            continue
        if outcome.response_key in by_response:
            judgement = by_response[outcome.response_key]
            results.setdefault(outcome.trace_id, judgement)
            outcome.reason = verdict_of(judgement, cfg.threshold)
    scores = [score for score, _ in (results[outcomes[i].trace_id] for i in chosen) if score is not None]
    failed = len(failures)
    mean = f"mean score {sum(scores) / len(scores):.2f}; " if scores else ""
    say(f"[curate {name}] judge: {len(chosen) - failed} of {len(chosen)} traces judged ({asked_for} asking); {mean}"
        f"{kept} at or above {cfg.threshold:g}, {len(scores) - kept} below, {len(chosen) - len(scores) - failed} "
        f"unparseable" + (f", {failed} requests failed (asked again on the next run)" if failed else ""))
    return results

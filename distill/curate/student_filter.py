"""The student pass-rate filter (open-r1's scripts/pass_rate_filtering): the base student's pass rate over k samples
of each training prompt, sampled through the project's engines (hf on a CPU, vllm or a served model on a GPU) and
judged by distill.verify's kinds, as curation judges. Prompts the student already solves above `max` teach it little.

Only prompts with a correct teacher sample are sampled (the others have no trace to keep). Results are cached per
prompt in <run>/student_pass/<key>/, the key naming the student and its sampling: a rerun, or a curation with another
band, samples nothing again; an interrupted one resumes from its last written chunk.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from distill.curate.config import CurateSection, StudentFilter
from distill.curate.screen import Outcome, TraceCache
from distill.curate.selection import SelectionInputs, band_reason, teacher_pass_rates
from distill.engines import SamplingParams, make_engine
from distill.engines.config import EngineSection
from distill.errors import DistillError, UsageError
from distill.progress import fmt_duration, say
from distill.traces import iter_batches
from distill.verify import kinds
from distill.verify.kinds import Item
from distill.verify.pool import judge_many

PROMPT_COLUMNS = ["prompt_id", "prompt_messages", "answer", "tests", "metadata"]
RATES = pa.schema([("prompt_id", pa.string()), ("samples", pa.int32()), ("correct", pa.int32())])
CHUNK = 256  # prompts per written shard: what an interruption can lose


@dataclass
class PromptFacts:
    messages: list[dict]
    answer: str | None
    tests: list[dict] | None  # as stored
    metadata_json: str | None  # as stored

    @property
    def metadata(self) -> dict:
        return json.loads(self.metadata_json or "{}")


def read_prompts(traces_dir: Path, rank: np.ndarray, wanted: set[str]) -> dict[str, PromptFacts]:
    """The prompt of every wanted prompt id, from its first chosen trace."""
    prompts: dict[str, PromptFacts] = {}
    for start, batch in iter_batches(traces_dir, PROMPT_COLUMNS):
        ranks = rank[start:start + batch.num_rows]
        ids = batch.column("prompt_id").to_pylist()
        rows = [i for i, (pid, r) in enumerate(zip(ids, ranks)) if r >= 0 and pid in wanted and pid not in prompts]
        if not rows:
            continue
        part = batch.take(rows)
        for pid, messages, answer, tests, metadata in zip(*(part.column(c).to_pylist() for c in PROMPT_COLUMNS)):
            if pid not in prompts:
                prompts[pid] = PromptFacts(messages, answer, tests, metadata)
    return prompts


def prepare_selection(c: CurateSection, run_dir: Path, traces_dir: Path, rank: np.ndarray,
                      outcomes: list[Outcome]) -> SelectionInputs:
    """The student's pass rates (student filter) and each prompt's metadata group (a subset's diversity over a
    metadata field), where the config asks for them; the traces are read only then."""
    sel = c.selection
    field = sel.subset.diversity if sel.subset is not None else None
    needs_groups = field is not None and field not in ("source", "difficulty")
    inputs = SelectionInputs()
    if not (needs_groups or sel.student is not None):
        return inputs
    solved = {o.prompt_id for o in outcomes if o.verdict is not None and o.verdict.correct and o.verdict.verified}
    if sel.pass_rate is not None:  # prompts the teacher's band drops need no student samples
        rates = teacher_pass_rates(outcomes)
        solved = {p for p in solved if band_reason(rates[p].rate, sel.pass_rate) is None}
    prompts = read_prompts(traces_dir, rank, solved if not needs_groups else {o.prompt_id for o in outcomes})
    if needs_groups:
        inputs.metadata_groups = {pid: str(p.metadata.get(field)) for pid, p in prompts.items()}
    if sel.student is not None:
        inputs.student = student_pass_rates(sel.student, {p: prompts[p] for p in solved if p in prompts},
                                            run_dir / "student_pass", c)
    return inputs


def cache_key(f: StudentFilter, c: CurateSection) -> str:
    what = [f.model, f.k, f.temperature, f.top_p, f.max_tokens, f.seed, c.verifier, c.reasoning, c.answer_kind]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:12]


def student_pass_rates(f: StudentFilter, prompts: dict[str, PromptFacts], cache_root: Path,
                       c: CurateSection) -> dict[str, float | None]:
    """prompt id -> the student's pass rate (correct / judged samples; None when none could be judged)."""
    cache = TraceCache(cache_root, cache_key(f, c), RATES, "rates", flush_rows=CHUNK)  # keyed by prompt id
    directory, known = cache.dir, cache.known
    todo = sorted(pid for pid in prompts if pid not in known)
    label = f"[curate] student pass rate ({f.model}, k={f.k})"
    if todo:
        say(f"{label}: sampling {len(todo):,} prompts ({len(prompts) - len(todo):,} cached in {directory})")
        started = time.time()
        asyncio.run(sample_all(f, c, [(pid, prompts[pid]) for pid in todo], cache, started, label))
        say(f"{label}: {len(todo):,} prompts in {fmt_duration(time.time() - started)}")
    else:
        say(f"{label}: all {len(prompts):,} prompts cached in {directory}")
    return {pid: (known[pid][1] / known[pid][0] if known[pid][0] else None) for pid in prompts if pid in known}


def judge_item(response: str, p: PromptFacts, c: CurateSection) -> Item | None:
    """The item that judges a student's response: by the prompt's tests where it has them, else by its answer, as
    verifier auto does, whatever curate.verifier says (as this filter always has; the teacher's samples of a prompt
    with both were judged by the answer under verifier math). None: the prompt has neither."""
    row = {"response": response, "answer": p.answer, "tests": p.tests, "metadata": p.metadata_json}
    return kinds.for_trace(row, "auto", kinds.TraceOptions(c.reasoning, c.answer_kind))


async def sample_all(f: StudentFilter, c: CurateSection, todo: list[tuple[str, PromptFacts]], cache: TraceCache,
                     started: float, label: str) -> None:
    try:
        engine = make_engine(EngineSection(kind=f.engine, model=f.model, base_urls=f.base_urls,
                                           max_concurrency=f.concurrency, per_endpoint_concurrency=f.concurrency))
    except Exception as exc:  # a local student (hf, vllm) that does not load
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"curate.selection.student.model: cannot load {f.model!r} ({f.engine}): {reason}") from None
    limit = asyncio.Semaphore(f.concurrency)
    failures: list[str] = []

    async def one(index: int, pid: str, p: PromptFacts):
        params = SamplingParams(n=f.k, temperature=f.temperature, top_p=f.top_p, max_tokens=f.max_tokens,
                                seed=f.seed + index)
        async with limit:
            try:
                completions = (await engine.complete(p.messages, params)).completions
                error = None if any(c.error is None for c in completions) else \
                    (completions[0].error if completions else "no completions")
            except Exception as exc:
                error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if error is None:
                return completions
            # Not judged (no rate, never guessed) and not cached: the next run asks again.
            failures.append(f"{pid}: {error[:200]}")
            say(f"{label}: {failures[-1]}: sampling failed")
            return None

    try:
        for first in range(0, len(todo), CHUNK):
            chunk = todo[first:first + CHUNK]
            results = await asyncio.gather(*(one(first + i, pid, p) for i, (pid, p) in enumerate(chunk)))
            items, owners = [], []
            for (pid, p), completions in zip(chunk, results):
                for completion in completions or []:
                    if completion.error is None and (item := judge_item(completion.text or "", p, c)) is not None:
                        items.append(item)
                        owners.append(pid)
            verdicts = judge_many(items, workers=c.workers, limits=c.sandbox.limits(), allow_weak=c.sandbox.allow_weak)
            counts = {pid: [0, 0] for (pid, _), completions in zip(chunk, results) if completions is not None}
            for pid, verdict in zip(owners, verdicts):
                counts[pid][0] += 1
                counts[pid][1] += bool(verdict.correct)
            for pid, (samples, correct) in counts.items():
                cache.add(pid, samples, correct)
                cache.known[pid] = (samples, correct)
            cache.flush()
            done = first + len(chunk)
            say(f"{label}: {done:,}/{len(todo):,} prompts, {fmt_duration(time.time() - started)}")
            if len(failures) == done:  # nothing sampled at all: the student is not there, not a few bad prompts
                where = f" (is it served at {', '.join(f.base_urls)}?)" if f.engine == "openai" else ""
                raise DistillError(f"curate.selection.student: sampling failed for all {done:,} prompts from "
                                   f"{f.model}{where}; first: {failures[0]}")
        if failures:
            say(f"{label}: {len(failures):,} prompts could not be sampled (first: {failures[0]}); they have no student "
                "pass rate and stay: run curate again to sample them")
    finally:
        await engine.close()

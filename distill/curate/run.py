"""`distill curate RUN.yaml`: verify, filter, deduplicate and decontaminate raw traces into the SFT set.

Reads   <run>/traces/            (what `distill generate` wrote)
Writes  <run>/curated/train-*.parquet     accepted traces, with chat `messages` (what students train on)
        <run>/curated/rejected-*.parquet  every other trace, with its `reason`
        <run>/curated/curation.json       counts per reason and source, acceptance rates, tokens, cost
        <run>/curated/config.yaml, manifest.json
        (`curate.output` names another directory than curated/: several curations of one run side by side)
        <run>/verdicts/                   verifier verdicts per trace, reused when the run is repeated
Idempotent: the outputs are a function of the traces and the config, replaced whole at the end.

Streaming, so that memory does not grow with the text: a first pass over the trace shards filters each
trace and sends math answers to the scorer's worker processes as it goes, keeping one small `Outcome`
per trace; dedup and selection work on those; a second pass copies each trace, shard by shard, to the
train or rejected files. Output rows follow the order the traces are stored in.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distill import locks
from distill.curate import filters
from distill.curate.config import CurateSection
from distill.curate.decontaminate import Decontaminator
from distill.errors import UsageError
from distill.io import atomic_write_json, atomic_write_parquet, replace_dir, staging_dir_for
from distill.progress import fmt_count, fmt_duration, say
from distill.runs import Run, check_replaceable
from distill.teacher.config import GenerateConfig
from distill.traces import LOGPROB_COLUMNS, SCHEMA, iter_batches, latest_rank

SHARD_ROWS = 50_000
# What the first pass reads: everything but the long lists (logprobs) and the prompt (read only for decontamination).
SCREEN_COLUMNS = ["trace_id", "prompt_id", "sample_index", "source", "status", "error", "response", "reasoning",
                  "finish_reason", "completion_tokens", "answer", "tests", "metadata"]
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
TRAIN_SCHEMA = SCHEMA.append(pa.field("messages", MESSAGES))
REJECTED_SCHEMA = SCHEMA.append(pa.field("reason", pa.string()))


def load_benchmarks(cfg: CurateSection) -> Decontaminator | None:
    d = cfg.decontamination
    if not d.enabled or not (d.benchmarks or d.suites):
        return None
    from datasets import load_dataset

    from distill.config import looks_like_local_path
    from distill.eval.docs import suite_problems

    decon = Decontaminator(d.ngram, min_overlap=d.min_overlap, boilerplate_problems=d.boilerplate_problems)
    for suite in d.suites:
        try:
            for name, problems in suite_problems(suite, d.local_files).items():
                decon.add(name, problems)
        except UsageError as exc:
            raise UsageError(f"curate.decontamination.suites: {exc}") from None
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"curate.decontamination.suites: cannot load the benchmarks of {suite}: {reason} "
                             f"(offline: curate.decontamination.local_files maps a benchmark name to a local copy)") from None
    for bench in d.benchmarks:
        try:
            if looks_like_local_path(bench.source):
                rows = load_dataset("json", data_files=bench.source, split="train")
            else:
                rows = load_dataset(bench.source, bench.subset, split=bench.split)
            decon.add(bench.name, rows[bench.field])
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"curate.decontamination.benchmarks: cannot load {bench.name} ({bench.source}, "
                             f"field {bench.field!r}): {reason}") from None
    return decon


def filter_reason(row: dict, cfg: CurateSection) -> str | None:
    """The first cheap filter that rejects the trace (verification comes after)."""
    response = row["response"] or ""
    reason = filters.format_reason(response, row["finish_reason"]) if cfg.reasoning else None
    reason = reason or filters.length_reason(row["completion_tokens"], cfg.min_tokens, cfg.max_tokens)
    if not reason and cfg.language.enabled:
        reason = filters.language_reason(row["reasoning"], cfg.language.script, cfg.language.min_share)
    if not reason and cfg.repetition.enabled:
        r = cfg.repetition
        reason = filters.repetition_reason(response, r.ngram, r.max_ngram_share, r.max_line_repeats)
    return reason


def verifier_for(row: dict, cfg: CurateSection) -> str:
    """math, code or none; `no reference` where the configured verifier has nothing to check against."""
    has_tests = row["tests"] not in (None, "", "[]", "null")
    has_answer = row["answer"] is not None and str(row["answer"]).strip() != ""
    verifier = cfg.verifier
    if verifier == "auto":
        verifier = "code" if has_tests else "math" if has_answer else "none" if cfg.accept_unverified else "no reference"
    elif (verifier == "code" and not has_tests) or (verifier == "math" and not has_answer):
        verifier = "none" if cfg.accept_unverified else "no reference"
    return verifier


class VerdictCache:
    """Verdicts per trace id, stored as shards so that a repeated or interrupted run reuses them."""

    FLUSH_ROWS = 10_000

    def __init__(self, directory: Path, config_key: str):
        self.dir = directory / config_key
        self.known: dict[str, tuple[bool, str]] = {}
        paths = sorted(self.dir.glob("verdicts-*.parquet")) if self.dir.is_dir() else []
        for path in paths:
            table = pq.read_table(path)
            for trace_id, correct, reason in zip(*(table.column(c).to_pylist() for c in ("trace_id", "correct", "reason"))):
                self.known[trace_id] = (correct, sys.intern(reason))
        self.pending: list[dict] = []
        self.count = len(paths)

    def add(self, trace_id: str, correct: bool, reason: str) -> None:
        self.pending.append({"trace_id": trace_id, "correct": correct, "reason": reason})
        if len(self.pending) >= self.FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        # The process id keeps two curations of one run into different outputs from writing the same shard name.
        path = self.dir / f"verdicts-{self.count:06d}-{os.getpid()}.parquet"
        atomic_write_parquet(pa.Table.from_pylist(self.pending), path)
        self.count += 1
        self.pending = []


@dataclass(slots=True)
class Outcome:
    """One trace, reduced to what dedup, selection, the summary and the write pass need."""

    trace_id: str
    prompt_id: str
    sample_index: int
    source: str
    difficulty: str
    completion_tokens: int | None
    length: int  # completion tokens, else characters: what the 'shortest' policy compares
    reason: str | None = None  # why it is rejected; None once kept
    response_key: bytes | None = None  # hash of (prompt, response), for exact dedup
    minhash: np.ndarray | None = None  # for near-dedup
    verdict: tuple[bool, str] | None = None
    unverified: bool = False  # kept without a reference to check it against (accept_unverified, verifier none)


class Screen:
    """The first pass: filters, decontamination and verification of each trace, one `Outcome` per trace."""

    def __init__(self, cfg: CurateSection, decon: Decontaminator | None, cache: VerdictCache):
        from distill.verify.math import MathScorer

        self.cfg, self.decon, self.cache = cfg, decon, cache
        self.scorer = MathScorer(lambda outcome, v: self.record_verdict(outcome, v.correct, v.reason), workers=cfg.workers)
        self.contaminated: dict[str, str | None] = {}
        self.difficulty: dict[str | None, str] = {}  # by metadata JSON: prompts share it
        self.code_todo: list[tuple[Outcome, dict]] = []

    def __call__(self, row: dict) -> Outcome:
        c = self.cfg
        response = row["response"] or ""
        outcome = Outcome(row["trace_id"], row["prompt_id"], row["sample_index"], row["source"],
                          self.difficulty_of(row["metadata"]), row["completion_tokens"],
                          row["completion_tokens"] or len(response))
        reason = None
        if row["status"] != "ok":
            reason = f"generation failed: {row['error']}"
        if not reason and self.decon is not None:
            if row["prompt_id"] not in self.contaminated:
                problem = json.loads(row["prompt_messages"])[-1]["content"]
                self.contaminated[row["prompt_id"]] = self.decon.match(problem)
            if self.contaminated[row["prompt_id"]]:
                reason = f"contaminated: overlaps {self.contaminated[row['prompt_id']]}"
        outcome.reason = reason or filter_reason(row, c)
        if outcome.reason:
            return outcome
        if c.dedup:
            outcome.response_key = hashlib.sha1(f"{row['prompt_id']}\0{response}".encode()).digest()
        if c.near_dedup.enabled:
            outcome.minhash = filters.minhash(response, c.near_dedup.shingle, c.near_dedup.num_perm)
        # Verified before dedup: a duplicate repeats its original's answer, which the scorer checks only once.
        verifier = verifier_for(row, c)
        if verifier == "no reference":
            outcome.reason = verifier
            return outcome
        if verifier == "none":
            outcome.verdict = (True, "unverified")
        elif row["trace_id"] in self.cache.known:
            outcome.verdict = self.cache.known[row["trace_id"]]
        elif verifier == "math":
            self.scorer.submit(outcome, response, row["answer"], c.reasoning, c.answer_kind)
        elif verifier == "code":
            self.code_todo.append((outcome, {k: row[k] for k in ("response", "tests", "metadata")}))
        return outcome

    def difficulty_of(self, metadata: str | None) -> str:
        if metadata not in self.difficulty:
            self.difficulty[metadata] = str(json.loads(metadata or "{}").get("difficulty"))
        return self.difficulty[metadata]

    def record_verdict(self, outcome: Outcome, correct: bool, reason: str) -> None:
        outcome.verdict = (correct, sys.intern(reason))
        self.cache.add(outcome.trace_id, correct, reason)


def screen_traces(traces_dir: Path, rank: np.ndarray, c: CurateSection, decon: Decontaminator | None,
                  cache: VerdictCache) -> list[Outcome]:
    """One `Outcome` per trace, in the order of the traces, each with its reason or its verdict."""
    outcomes: list[Outcome | None] = [None] * int(rank.max(initial=-1) + 1)
    columns = SCREEN_COLUMNS + (["prompt_messages"] if decon is not None else [])
    screen = Screen(c, decon, cache)
    with screen.scorer as scorer:
        for start, batch in iter_batches(traces_dir, columns):
            ranks = rank[start:start + batch.num_rows]
            chosen = np.flatnonzero(ranks >= 0)
            if len(chosen) < batch.num_rows:
                batch = batch.take(chosen)
            values = [batch.column(name).to_pylist() for name in columns]
            for index, row_values in zip(ranks[chosen], zip(*values)):
                outcomes[index] = screen(dict(zip(columns, row_values)))
        scorer.close()
        if scorer.distinct:
            say(f"[curate] math-verify: {scorer.distinct} distinct answers")
    verify_code(screen.code_todo, c, screen.record_verdict)
    cache.flush()
    return outcomes


def verify_code(todo: list[tuple[Outcome, dict]], c: CurateSection, record_verdict) -> None:
    if not todo:
        return
    from distill.verify.code import verify_response
    from distill.verify.sandbox import Limits, LocalSandbox

    sandbox = LocalSandbox(allow_weak=c.sandbox.allow_weak)
    limits = Limits(wall_s=c.sandbox.timeout_s, memory_mb=c.sandbox.memory_mb)
    say(f"[curate] running code of {len(todo)} traces in the sandbox")

    def run(row):
        metadata = json.loads(row["metadata"] or "{}")
        return verify_response(row["response"], json.loads(row["tests"]), c.reasoning,
                               starter_code=metadata.get("starter_code"), entry_point=metadata.get("entry_point"),
                               sandbox=sandbox, limits=limits)

    with ThreadPoolExecutor(max_workers=c.workers or 2) as pool:
        for (outcome, _), verdict in zip(todo, pool.map(run, [row for _, row in todo])):
            reason = "correct" if verdict.passed else f"code {verdict.status}: {verdict.detail}"
            record_verdict(outcome, verdict.passed, reason)


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


def drop_near_duplicates(candidates: list[Outcome], cfg: CurateSection) -> tuple[list[Outcome], list[Outcome]]:
    """Reject responses that nearly duplicate an earlier sample of the same prompt."""
    by_prompt: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in candidates:
        by_prompt[outcome.prompt_id].append(outcome)
    kept, dropped = [], []
    for outcomes in by_prompt.values():
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
    by_prompt: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in accepted:
        by_prompt[outcome.prompt_id].append(outcome)
    kept, dropped = [], []
    for prompt_id, outcomes in by_prompt.items():
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


def decide(outcomes: list[Outcome], c: CurateSection) -> tuple[list[Outcome], list[Outcome]]:
    """(kept, rejected): every outcome ends with a reason, or None when kept. Rejected in the order of the reasons'
    stages (filters, near-duplicates, verdicts, selection), which the summary's counts follow."""
    candidates = drop_duplicates(outcomes)
    rejected = [o for o in outcomes if o.reason]
    if c.near_dedup.enabled:
        candidates, near = drop_near_duplicates(candidates, c)
        rejected += near
    accepted = []
    for outcome in candidates:
        correct, reason = outcome.verdict
        outcome.verdict = None
        if correct:
            outcome.unverified = reason == "unverified"
            accepted.append(outcome)
        else:
            outcome.reason = reason
            rejected.append(outcome)
    kept, not_selected = select(accepted, c)
    for outcome in not_selected:
        outcome.reason = "not selected"
    return kept, rejected + not_selected


class ShardedWriter:
    """Parquet files <prefix>-00000.parquet, ... of at most SHARD_ROWS rows each, written batch by batch."""

    def __init__(self, directory: Path, prefix: str, schema: pa.Schema):
        self.directory, self.prefix, self.schema = directory, prefix, schema
        self.files = 0
        self.writer: pq.ParquetWriter | None = None
        self.rows_in_file = 0

    def write(self, batch: pa.RecordBatch) -> None:
        while batch.num_rows:
            if self.writer is None or self.rows_in_file == SHARD_ROWS:
                self._next_file()
            part = batch.slice(0, SHARD_ROWS - self.rows_in_file)
            self.writer.write_batch(part)
            self.rows_in_file += part.num_rows
            batch = batch.slice(part.num_rows)

    def _next_file(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer = pq.ParquetWriter(self.directory / f"{self.prefix}-{self.files:05d}.parquet", self.schema)
        self.files += 1
        self.rows_in_file = 0

    def close(self) -> None:
        if self.writer is None:
            self._next_file()  # an empty file with the schema: the split exists, with no rows
        self.writer.close()


def write_outputs(traces_dir: Path, rank: np.ndarray, outcomes: list[Outcome], staging: Path, keep_logprobs: bool) -> None:
    """The second pass: every trace, whole, to the train files (with `messages`) or the rejected ones (with `reason`);
    the logprob columns stay empty unless asked for."""
    train = ShardedWriter(staging, "train", TRAIN_SCHEMA)
    rejected = ShardedWriter(staging, "rejected", REJECTED_SCHEMA)
    columns = SCHEMA.names if keep_logprobs else [c for c in SCHEMA.names if c not in LOGPROB_COLUMNS]
    for start, batch in iter_batches(traces_dir, columns):
        if not keep_logprobs:
            batch = pa.RecordBatch.from_arrays(
                [batch.column(f.name) if f.name in columns else pa.nulls(batch.num_rows, f.type) for f in SCHEMA],
                schema=SCHEMA)
        ranks = rank[start:start + batch.num_rows]
        kept_rows, rejected_rows, reasons = [], [], []
        for row, index in enumerate(ranks):
            if index < 0:
                continue
            reason = outcomes[index].reason
            if reason is None:
                kept_rows.append(row)
            else:
                rejected_rows.append(row)
                reasons.append(reason)
        if kept_rows:
            kept = batch.take(kept_rows)
            messages = [json.loads(prompt) + [{"role": "assistant", "content": response}]
                        for prompt, response in zip(kept.column("prompt_messages").to_pylist(), kept.column("response").to_pylist())]
            train.write(pa.RecordBatch.from_arrays(kept.columns + [pa.array(messages, MESSAGES)], schema=TRAIN_SCHEMA))
        if rejected_rows:
            batch = batch.take(rejected_rows)
            rejected.write(pa.RecordBatch.from_arrays(batch.columns + [pa.array(reasons, pa.string())], schema=REJECTED_SCHEMA))
    train.close()
    rejected.close()


def curate(cfg: GenerateConfig) -> Path:
    started = time.time()
    run_dir = Path(cfg.run_dir)
    traces_dir = run_dir / "traces"
    if not any(traces_dir.glob("shard-*.parquet")):
        raise UsageError(f"{traces_dir}: no traces to curate (run `distill generate` first)")
    c = cfg.curate
    out_dir = run_dir / c.output
    decon = load_benchmarks(c)
    with locks.holding(out_dir, "curate"):
        check_replaceable(out_dir, "curate", "curate.output")
        # Outputs are recomputed whole and swapped in at the end: any config change is fine (no fingerprint).
        staging = staging_dir_for(out_dir)
        run = Run(staging, "curate", cfg, lock_dir=out_dir).start()
        rank = latest_rank(traces_dir)
        say(f"[curate {cfg.name}] {int((rank >= 0).sum())} traces from {traces_dir}")

        config_key = hashlib.sha256(json.dumps([c.verifier, c.reasoning, c.answer_kind, c.sandbox.model_dump()],
                                               sort_keys=True).encode()).hexdigest()[:12]
        outcomes = screen_traces(traces_dir, rank, c, decon, VerdictCache(run_dir / "verdicts", config_key))
        kept, rejected = decide(outcomes, c)
        write_outputs(traces_dir, rank, outcomes, staging, c.keep_logprobs)
        summary = summarize(cfg, outcomes, kept, rejected, time.time() - started, run_dir)
        atomic_write_json(staging / "curation.json", summary)
        run.finish(traces=len(outcomes), accepted=len(kept), rejected=len(rejected))
        replace_dir(staging, out_dir)
    top = ", ".join(f"{k} {v}" for k, v in Counter(_reason_kind(o.reason) for o in rejected).most_common(4))
    unverified = f" ({summary['accepted_unverified']} unverified)" if summary["accepted_unverified"] else ""
    say(f"[curate {cfg.name}] done: kept {len(kept)}{unverified} of {len(outcomes)} traces "
        f"({summary['acceptance_rate']:.0%}); "
        f"rejected: {top or 'none'}; {fmt_count(summary['tokens_kept'])} tokens kept; "
        f"{fmt_duration(time.time() - started)} -> {out_dir}")
    return out_dir


def _reason_kind(reason: str) -> str:
    """'language mixing: 80% latin < 95%' -> 'language mixing' (for counting)."""
    return reason.split(":", 1)[0]


def summarize(cfg: GenerateConfig, outcomes: list[Outcome], kept: list[Outcome], rejected: list[Outcome], wall: float,
              run_dir: Path) -> dict:
    per_source: dict[str, Counter] = defaultdict(Counter)
    per_difficulty: dict[str, Counter] = defaultdict(Counter)
    for outcome in outcomes:
        verdict = "kept" if outcome.reason is None else "rejected"
        per_source[outcome.source][verdict] += 1
        per_difficulty[outcome.difficulty][verdict] += 1
    rate = lambda c: round(c["kept"] / max(c["kept"] + c["rejected"], 1), 4)  # noqa: E731
    generation_cost = None
    summary_path = run_dir / "generate_summary.json"
    if summary_path.exists():
        generation_cost = json.loads(summary_path.read_text()).get("cost_usd")
    return {
        "traces": len(outcomes), "accepted": len(kept), "rejected": len(rejected),
        "acceptance_rate": round(len(kept) / max(len(outcomes), 1), 4),
        "accepted_unverified": sum(o.unverified for o in kept),
        "rejected_by_reason": dict(Counter(_reason_kind(o.reason) for o in rejected).most_common()),
        "rejected_by_detail": dict(Counter(o.reason[:100] for o in rejected).most_common(50)),
        "per_source": {s: {**c, "acceptance_rate": rate(c)} for s, c in per_source.items()},
        "per_difficulty": {d: {**c, "acceptance_rate": rate(c)} for d, c in sorted(per_difficulty.items())},
        "prompts": len({o.prompt_id for o in outcomes}),
        "prompts_with_a_kept_trace": len({o.prompt_id for o in kept}),
        "tokens_kept": sum(o.completion_tokens or 0 for o in kept),
        "generation_cost_usd": generation_cost,
        "cost_per_accepted_trace_usd": round(generation_cost / len(kept), 6) if generation_cost and kept else None,
        "wall_seconds": round(wall, 1),
    }

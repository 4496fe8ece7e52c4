"""Curation's first pass: each trace screened once, in the order it is stored, into one small `Outcome`.

A trace is rejected by the first of: a failed generation, decontamination, the cheap filters (format, length,
language, repetition), a missing reference; otherwise it gets a verdict: from the verdict cache, or from the
verdict pool (verify/pool.py: the verifier kind that takes the trace judges it, answers in worker processes, code in
the sandbox, as the pass goes).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distill.curate import filters
from distill.curate.config import CurateSection
from distill.curate.decontaminate import Decontaminator
from distill.progress import say
from distill.shards import ShardWriter
from distill.traces import iter_batches
from distill.verify import kinds
from distill.verify.pool import VerdictPool
from distill.verify.verdict import UNVERIFIED, Verdict, shared_verdict

# What the pass reads: everything but the long lists (logprobs) and the prompt (read only for decontamination).
SCREEN_COLUMNS = ["trace_id", "prompt_id", "sample_index", "source", "status", "error", "response", "reasoning",
                  "finish_reason", "completion_tokens", "answer", "tests", "metadata"]
VERDICTS = pa.schema([("trace_id", pa.string()), ("correct", pa.bool_()), ("reason", pa.string())])


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
    verdict: Verdict | None = None  # shared instances (`shared_verdict`, UNVERIFIED): many outcomes, few verdicts


class TraceCache:
    """Values per trace id (a verifier's verdict, a judge model's score), stored as shards so that a repeated or
    interrupted run reuses them instead of paying for them again. `schema`: trace_id, then the stored values."""

    def __init__(self, directory: Path, config_key: str, schema: pa.Schema, prefix: str, flush_rows: int = 10_000):
        self.dir, self.schema, self.prefix, self.flush_rows = directory / config_key, schema, prefix, flush_rows
        self.known: dict[str, tuple] = {}
        paths = sorted(self.dir.glob(f"{prefix}-*.parquet")) if self.dir.is_dir() else []
        for path in paths:
            table = pq.read_table(path)
            for trace_id, *values in zip(*(table.column(c).to_pylist() for c in schema.names)):
                self.known[trace_id] = self.value(values)
        self.pending: list[dict] = []
        self.writer: ShardWriter | None = None

    def value(self, stored: list) -> Any:
        """What `known` holds for a trace's stored values (short strings interned: they repeat)."""
        return tuple(sys.intern(v) if isinstance(v, str) and len(v) < 200 else v for v in stored)

    def add(self, trace_id: str, *values) -> None:
        self.pending.append(dict(zip(self.schema.names, (trace_id, *values))))
        if len(self.pending) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        if self.writer is None:
            # The process id keeps two curations of one run into different outputs from writing the same shard name.
            self.writer = ShardWriter(self.dir, self.schema, prefix=self.prefix, tag=f"-{os.getpid()}")
        self.writer.write_rows(self.pending)
        self.pending = []


class VerdictCache(TraceCache):
    """The verifiers' verdicts per trace id: stored as (correct, reason), known as `Verdict`s."""

    def __init__(self, directory: Path, config_key: str):
        super().__init__(directory, config_key, VERDICTS, "verdicts")

    def value(self, stored: list) -> Verdict:
        correct, reason = stored
        return shared_verdict(correct, reason)


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


class Screen:
    """Screens one trace row at a time into its `Outcome`: a reason, or a verdict (now or once the verifier answers)."""

    def __init__(self, cfg: CurateSection, decon: Decontaminator | None, cache: VerdictCache):
        self.cfg, self.decon, self.cache = cfg, decon, cache
        self.pool = VerdictPool(self.record_verdict, workers=cfg.workers, limits=cfg.sandbox.limits(),
                                allow_weak=cfg.sandbox.allow_weak)  # the sandbox is made at the first code trace
        self.options = kinds.TraceOptions(cfg.reasoning, cfg.answer_kind)
        self.contaminated: dict[str, str | None] = {}
        self.difficulty: dict[str | None, str] = {}  # by metadata JSON: prompts share it

    def __call__(self, row: dict) -> Outcome:
        c = self.cfg
        response = row["response"] = row["response"] or ""  # the row is this call's own: the kinds read it as text
        outcome = Outcome(row["trace_id"], row["prompt_id"], row["sample_index"], row["source"],
                          self.difficulty_of(row["metadata"]), row["completion_tokens"],
                          row["completion_tokens"] or len(response))
        outcome.reason = (f"generation failed: {row['error']}" if row["status"] != "ok" else
                          self.contamination(row) or filter_reason(row, c))
        if outcome.reason:
            return outcome
        if c.dedup:
            outcome.response_key = hashlib.sha1(f"{row['prompt_id']}\0{response}".encode()).digest()
        if c.near_dedup.enabled:
            outcome.minhash = filters.minhash(response, c.near_dedup.shingle, c.near_dedup.num_perm)
        # Verified before dedup: a duplicate repeats its original's answer, which the scorer checks only once.
        if c.verifier == "none":
            outcome.verdict = UNVERIFIED
            return outcome
        item = kinds.for_trace(row, c.verifier, self.options)
        if item is None:  # nothing the verifier could check it against
            if c.accept_unverified:
                outcome.verdict = UNVERIFIED
            else:
                outcome.reason = "no reference"
        elif row["trace_id"] in self.cache.known:
            outcome.verdict = self.cache.known[row["trace_id"]]
        else:
            self.pool.submit(outcome, item)
        return outcome

    def contamination(self, row: dict) -> str | None:
        """`contaminated: overlaps <benchmark item>` when the prompt's last message overlaps a benchmark problem."""
        if self.decon is None:
            return None
        if row["prompt_id"] not in self.contaminated:
            self.contaminated[row["prompt_id"]] = self.decon.match(row["prompt_messages"][-1]["content"])
        hit = self.contaminated[row["prompt_id"]]
        return f"contaminated: overlaps {hit}" if hit else None

    def difficulty_of(self, metadata: str | None) -> str:
        if metadata not in self.difficulty:
            self.difficulty[metadata] = str(json.loads(metadata or "{}").get("difficulty"))
        return self.difficulty[metadata]

    def record_verdict(self, outcome: Outcome, verdict: Verdict) -> None:
        outcome.verdict = shared_verdict(verdict.correct, verdict.reason)
        self.cache.add(outcome.trace_id, verdict.correct, verdict.reason)


def screen_traces(traces_dir: Path, rank: np.ndarray, c: CurateSection, decon: Decontaminator | None,
                  cache: VerdictCache) -> list[Outcome]:
    """One `Outcome` per chosen trace (`rank` >= 0), in rank order, each with its reason or its verdict."""
    outcomes: list[Outcome | None] = [None] * int(rank.max(initial=-1) + 1)
    columns = SCREEN_COLUMNS + (["prompt_messages"] if decon is not None else [])
    screen = Screen(c, decon, cache)
    with screen.pool as pool:
        for start, batch in iter_batches(traces_dir, columns):
            ranks = rank[start:start + batch.num_rows]
            chosen = np.flatnonzero(ranks >= 0)
            if len(chosen) < batch.num_rows:
                batch = batch.take(chosen)
            values = [batch.column(name).to_pylist() for name in columns]
            for index, row_values in zip(ranks[chosen], zip(*values)):
                outcomes[index] = screen(dict(zip(columns, row_values)))
        if pool.sandboxed:
            say(f"[curate] running code of {pool.sandboxed} traces in the sandbox")
        pool.close()
        if pool.distinct_answers:
            say(f"[curate] math-verify: {pool.distinct_answers} distinct answers")
    cache.flush()
    return outcomes

"""`distill curate RUN.yaml`: verify, filter, deduplicate and decontaminate raw traces into the SFT set.

Reads   <run>/traces/            (what `distill generate` wrote)
Writes  <run>/curated/train-*.parquet     accepted traces, with chat `messages` (what students train on)
        <run>/curated/rejected-*.parquet  every other trace, with its `reason`
        <run>/curated/curation.json       counts per reason and source, acceptance rates, tokens, cost
        <run>/curated/config.yaml, manifest.json
        (`curate.output` names another directory than curated/: several curations of one run side by side)
        <run>/verdicts/                   verifier verdicts per trace, reused when the run is repeated
Idempotent: the outputs are a function of the traces and the config, replaced whole at the end.

Streaming, so that memory does not grow with the text. One trace goes through:
  1. `latest_rank` (traces.py): is it the latest try of its sample?
  2. `screen_traces` (screen.py): filters, decontamination, verdict, reduced to one small `Outcome`;
  3. `decide` (decide.py): dedup, near-dedup, verdict, selection: kept, or rejected with its reason;
  4. `write_outputs` (here): copied whole to the train or rejected files, in the order the traces are stored;
  5. `summarize` (summary.py): counted in curation.json.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from distill import locks
from distill.curate.decide import decide
from distill.curate.decontaminate import load_benchmarks
from distill.curate.screen import Outcome, VerdictCache, screen_traces
from distill.curate.summary import closing_line, summarize
from distill.errors import UsageError
from distill.io import replace_dir, staging_dir_for
from distill.progress import say
from distill.runs import Run, check_replaceable
from distill.shards import ShardWriter
from distill.teacher.config import GenerateConfig
from distill.traces import LOGPROB_COLUMNS, MESSAGES, SCHEMA, iter_batches, latest_rank

SHARD_ROWS = 50_000
TRAIN_SCHEMA = SCHEMA.append(pa.field("messages", MESSAGES))  # the prompt's messages, then the response
REJECTED_SCHEMA = SCHEMA.append(pa.field("reason", pa.string()))


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
        summary = summarize(outcomes, kept, rejected, time.time() - started, run_dir)
        summary.write(staging)
        run.finish(traces=len(outcomes), accepted=len(kept), rejected=len(rejected))
        replace_dir(staging, out_dir)
    say(closing_line(cfg.name, summary, time.time() - started, out_dir))
    return out_dir


def write_outputs(traces_dir: Path, rank: np.ndarray, outcomes: list[Outcome], staging: Path, keep_logprobs: bool) -> None:
    """The second pass: every trace, whole, to the train files (with `messages`) or the rejected ones (with `reason`);
    the logprob columns stay empty unless asked for."""
    train = ShardWriter(staging, TRAIN_SCHEMA, prefix="train", digits=5, max_rows=SHARD_ROWS)
    rejected = ShardWriter(staging, REJECTED_SCHEMA, prefix="rejected", digits=5, max_rows=SHARD_ROWS)
    columns = SCHEMA.names if keep_logprobs else [c for c in SCHEMA.names if c not in LOGPROB_COLUMNS]
    for start, batch in iter_batches(traces_dir, columns):
        if not keep_logprobs:
            batch = pa.RecordBatch.from_arrays(
                [batch.column(f.name) if f.name in columns else pa.nulls(batch.num_rows, f.type) for f in SCHEMA],
                schema=SCHEMA)
        kept_rows, rejected_rows, reasons = [], [], []
        for row, index in enumerate(rank[start:start + batch.num_rows]):
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
            messages = [prompt + [{"role": "assistant", "content": response}] for prompt, response
                        in zip(kept.column("prompt_messages").to_pylist(), kept.column("response").to_pylist())]
            train.write(pa.RecordBatch.from_arrays(kept.columns + [pa.array(messages, MESSAGES)], schema=TRAIN_SCHEMA))
        if rejected_rows:
            batch = batch.take(rejected_rows)
            rejected.write(pa.RecordBatch.from_arrays(batch.columns + [pa.array(reasons, pa.string())], schema=REJECTED_SCHEMA))
    train.close(keep_empty=True)
    rejected.close(keep_empty=True)

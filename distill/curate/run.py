"""`distill curate RUN.yaml`: verify, filter, deduplicate and decontaminate raw traces into the SFT set.

Reads   <run>/traces/            (what `distill generate` wrote)
Writes  <run>/curated/train-*.parquet     accepted traces, with chat `messages` (what students train on)
        <run>/curated/rejected-*.parquet  every other trace, with its `reason`
        <run>/curated/curation.json       counts per reason and source, acceptance rates, tokens, cost
        <run>/curated/config.yaml, manifest.json
        (`curate.output` names another directory than curated/: several curations of one run side by side)
        <run>/verdicts/                   verifier verdicts per trace, reused when the run is repeated
        <run>/judgements/                 the judge model's answers per trace (curate.judge), reused likewise
Idempotent: the outputs are a function of the traces and the config, replaced whole at the end.

Streaming, so that memory does not grow with the text. One trace goes through:
  1. `latest_rank` (traces.py): is it the latest try of its sample?
  2. `screen_traces` (screen.py): filters, decontamination, verdict, reduced to one small `Outcome`;
     then, with `curate.judge`, `judge_outcomes` (model_judge.py): a judge model's score, below the threshold a rejection;
  3. `keep_or_reject` (keep.py): dedup, near-dedup, verdict, selection: kept, or rejected with its reason;
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

from distill.curate.config import CurateConfig
from distill.curate.keep import keep_or_reject
from distill.curate.decontaminate import load_benchmarks
from distill.curate.model_judge import JUDGE_FIELDS, judge_outcomes
from distill.curate.screen import Outcome, VerdictCache, screen_traces
from distill.curate.student_filter import prepare_selection
from distill.curate.summary import closing_line, summarize
from distill.errors import UsageError
from distill.progress import say
from distill.runs import replacing
from distill.shards import ShardWriter
from distill.traces import LOGPROB_COLUMNS, MESSAGES, SCHEMA, iter_batches, latest_rank
from distill.verify.reasoning import is_reasoning, split_reasoning

SHARD_ROWS = 50_000
TRAIN_SCHEMA = SCHEMA.append(pa.field("messages", MESSAGES))  # the prompt's messages, then the response
REJECTED_SCHEMA = SCHEMA.append(pa.field("reason", pa.string()))

# An answer with no reasoning, as the R1-Distill models are trained to give one: an empty reasoning block, then the
# answer. Their chat template (tokenizer_config.json of deepseek-ai/DeepSeek-R1-Distill-*) ends its generation prompt
# in `<｜Assistant｜><think>\n`, so every answer opens the block; the model card's usage recommendations name
# "<think>\n\n</think>" as the models' way of answering without thinking; the R1 paper (2.3.3, non-reasoning data)
# trains on such rows: "for simpler queries, such as 'hello', we do not provide a CoT in response". TRL's
# deepseek_r1_distill_training.jinja writes an assistant turn as it stands (the inference template cuts everything up
# to `</think>`), so the block must be in the data; TRL's qwen3 template, the Qwen students' default, renders a final
# turn without `</think>` in this same form.
NO_REASONING = "<think>\n\n</think>\n\n"


def assistant_turn(response: str, answer_only: bool) -> str:
    """The assistant message trained on: the response as generated, or its answer behind an empty reasoning block
    when it has no reasoning (or `answer_only` drops it). A block opened and never closed (kept only by curations
    without the format filter) stays as it is."""
    if not is_reasoning(response):
        return NO_REASONING + response.strip()
    reasoning, answer = split_reasoning(response)
    if answer_only and reasoning is not None:
        return NO_REASONING + answer
    return response


def curate(cfg: CurateConfig) -> Path:
    started = time.time()
    run_dir = Path(cfg.run_dir)
    traces_dir = run_dir / "traces"
    if not any(traces_dir.glob("shard-*.parquet")):
        raise UsageError(f"{traces_dir}: no traces to curate (run `distill generate` first)")
    c = cfg.curate
    out_dir = run_dir / c.output
    decon = load_benchmarks(c)
    # Outputs are recomputed whole and swapped in at the end: any config change is fine (no fingerprint).
    with replacing(out_dir, "curate", cfg, "curate.output") as run:
        staging = run.dir
        rank = latest_rank(traces_dir)
        say(f"[curate {cfg.name}] {int((rank >= 0).sum())} traces from {traces_dir}")

        config_key = hashlib.sha256(json.dumps([c.verifier, c.reasoning, c.answer_kind, c.sandbox.model_dump()],
                                               sort_keys=True).encode()).hexdigest()[:12]
        outcomes = screen_traces(traces_dir, rank, c, decon, VerdictCache(run_dir / "verdicts", config_key))
        judged = judge_outcomes(traces_dir, rank, outcomes, c.judge, run_dir, cfg.name) if c.judge.enabled else None
        selection = prepare_selection(c, run_dir, traces_dir, rank, outcomes)  # student pass rates, metadata groups
        kept, rejected = keep_or_reject(outcomes, c, selection)
        write_outputs(traces_dir, rank, outcomes, staging, c.keep_logprobs, c.answer_only, judged, c.judge.model)
        summary = summarize(outcomes, kept, rejected, time.time() - started, run_dir, selection)
        summary.write(staging)
        run.finish(traces=len(outcomes), accepted=len(kept), rejected=len(rejected))
    say(closing_line(cfg.name, summary, time.time() - started, out_dir))
    return out_dir


def write_outputs(traces_dir: Path, rank: np.ndarray, outcomes: list[Outcome], staging: Path, keep_logprobs: bool,
                  answer_only: bool = False, judged: dict[str, tuple[float | None, str]] | None = None,
                  judge_model: str | None = None) -> None:
    """The second pass: every trace, whole, to the train files (with `messages`) or the rejected ones (with `reason`);
    the logprob columns stay empty unless asked for. When a judge model ran (`judged`), both gain its score, reasons
    and model name (null for the traces it did not read)."""
    extra = JUDGE_FIELDS if judged is not None else []
    train_schema, rejected_schema = pa.schema(list(TRAIN_SCHEMA) + extra), pa.schema(list(REJECTED_SCHEMA) + extra)
    train = ShardWriter(staging, train_schema, prefix="train", digits=5, max_rows=SHARD_ROWS)
    rejected = ShardWriter(staging, rejected_schema, prefix="rejected", digits=5, max_rows=SHARD_ROWS)
    columns = SCHEMA.names if keep_logprobs else [c for c in SCHEMA.names if c not in LOGPROB_COLUMNS]

    def judge_columns(rows: pa.RecordBatch) -> list[pa.Array]:
        if judged is None:
            return []
        found = [judged.get(trace_id) for trace_id in rows.column("trace_id").to_pylist()]
        return [pa.array([j[0] if j else None for j in found], pa.float64()),
                pa.array([j[1] if j else None for j in found], pa.string()),
                pa.array([judge_model if j else None for j in found], pa.string())]

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
            messages = [prompt + [{"role": "assistant", "content": assistant_turn(response or "", answer_only)}]
                        for prompt, response in zip(kept.column("prompt_messages").to_pylist(),
                                                    kept.column("response").to_pylist())]
            train.write(pa.RecordBatch.from_arrays(kept.columns + [pa.array(messages, MESSAGES)] + judge_columns(kept),
                                                   schema=train_schema))
        if rejected_rows:
            batch = batch.take(rejected_rows)
            rejected.write(pa.RecordBatch.from_arrays(batch.columns + [pa.array(reasons, pa.string())] + judge_columns(batch),
                                                      schema=rejected_schema))
    train.close(keep_empty=True)
    rejected.close(keep_empty=True)

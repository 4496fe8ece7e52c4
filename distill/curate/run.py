"""`distill curate RUN.yaml`: verify, filter, deduplicate and decontaminate raw traces into the SFT set.

Reads   <run>/traces/            (what `distill generate` wrote)
Writes  <run>/curated/train-*.parquet     accepted traces, with chat `messages` (what students train on)
        <run>/curated/rejected-*.parquet  every other trace, with its `reason`
        <run>/curated/curation.json       counts per reason and source, acceptance rates, tokens, cost
        <run>/curated/config.yaml, manifest.json
        <run>/verdicts/                   verifier verdicts per trace, reused when the run is repeated
Idempotent: the outputs are a function of the traces and the config, replaced whole at the end.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distill.curate import filters
from distill.curate.config import CurateSection
from distill.curate.decontaminate import Decontaminator
from distill.errors import UsageError
from distill.io import atomic_write_json, atomic_write_parquet, replace_dir, staging_dir_for
from distill.progress import fmt_count, fmt_duration, say
from distill.runs import Run
from distill.teacher.config import GenerateConfig
from distill.traces import latest_rows

SHARD_ROWS = 50_000


def load_benchmarks(cfg: CurateSection) -> Decontaminator | None:
    if not cfg.decontamination.enabled or not cfg.decontamination.benchmarks:
        return None
    from datasets import load_dataset

    from distill.config import looks_like_local_path

    decon = Decontaminator(cfg.decontamination.ngram)
    for bench in cfg.decontamination.benchmarks:
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
    if cfg.verifier != "auto":
        return cfg.verifier
    if row["tests"]:
        return "code"
    return "math" if row["answer"] is not None else "none"


class VerdictCache:
    """Verdicts per trace id, stored as shards so that a repeated or interrupted run reuses them."""

    def __init__(self, directory: Path, config_key: str):
        self.dir = directory / config_key
        self.known: dict[str, tuple[bool, str]] = {}
        for path in sorted(self.dir.glob("verdicts-*.parquet")) if self.dir.is_dir() else []:
            for r in pq.read_table(path).to_pylist():
                self.known[r["trace_id"]] = (r["correct"], r["reason"])
        self.pending: list[dict] = []
        self.count = len(list(self.dir.glob("verdicts-*.parquet"))) if self.dir.is_dir() else 0

    def add(self, trace_id: str, correct: bool, reason: str) -> None:
        self.known[trace_id] = (correct, reason)
        self.pending.append({"trace_id": trace_id, "correct": correct, "reason": reason})
        if len(self.pending) >= 1000:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_parquet(pa.Table.from_pylist(self.pending), self.dir / f"verdicts-{self.count:06d}.parquet")
        self.count += 1
        self.pending = []


def verify(rows: list[dict], cfg: CurateSection, cache: VerdictCache) -> None:
    """Fill row["verdict"] = (correct, reason) for every row that needs one."""
    from distill.verify.math import score_many

    todo_math, todo_code = [], []
    for row in rows:
        if row["trace_id"] in cache.known:
            row["verdict"] = cache.known[row["trace_id"]]
        elif row["verifier"] == "math":
            todo_math.append(row)
        elif row["verifier"] == "code":
            todo_code.append(row)
    if todo_math:
        say(f"[curate] math-verify on {len(todo_math)} traces")
        verdicts = score_many(((r["response"], r["answer"], cfg.reasoning, cfg.answer_kind) for r in todo_math),
                              workers=cfg.workers)
        for row, verdict in zip(todo_math, verdicts):
            row["verdict"] = (verdict.correct, verdict.reason)
            cache.add(row["trace_id"], verdict.correct, verdict.reason)
    if todo_code:
        from distill.verify.code import verify_response
        from distill.verify.sandbox import Limits, LocalSandbox

        sandbox = LocalSandbox(allow_weak=cfg.sandbox.allow_weak)
        limits = Limits(wall_s=cfg.sandbox.timeout_s, memory_mb=cfg.sandbox.memory_mb)
        say(f"[curate] running code of {len(todo_code)} traces in the sandbox")

        def run(row):
            metadata = json.loads(row["metadata"] or "{}")
            return verify_response(row["response"], json.loads(row["tests"]), cfg.reasoning,
                                   starter_code=metadata.get("starter_code"), entry_point=metadata.get("entry_point"),
                                   sandbox=sandbox, limits=limits)

        with ThreadPoolExecutor(max_workers=cfg.workers or 2) as pool:
            for row, verdict in zip(todo_code, pool.map(run, todo_code)):
                reason = "correct" if verdict.passed else f"code {verdict.status}: {verdict.detail}"
                row["verdict"] = (verdict.passed, reason)
                cache.add(row["trace_id"], verdict.passed, reason)
    cache.flush()


def drop_near_duplicates(candidates: list[dict], cfg: CurateSection) -> tuple[list[dict], list[dict]]:
    """Reject responses that nearly duplicate an earlier sample of the same prompt."""
    by_prompt: dict[str, list[dict]] = defaultdict(list)
    for row in candidates:
        by_prompt[row["prompt_id"]].append(row)
    kept, dropped = [], []
    nd = cfg.near_dedup
    for rows in by_prompt.values():
        rows.sort(key=lambda r: r["sample_index"])
        near = filters.near_duplicates([r["response"] for r in rows], nd.threshold, nd.shingle, nd.num_perm)
        for i, row in enumerate(rows):
            if i in near:
                dropped.append({**row, "reason": f"near-duplicate of sample {rows[near[i]]['sample_index']}"})
            else:
                kept.append(row)
    return kept, dropped


def select(accepted: list[dict], cfg: CurateSection) -> tuple[list[dict], list[dict]]:
    """Keep up to max_per_prompt accepted traces per prompt; the rest are rejected as 'not selected'."""
    sel = cfg.selection
    if sel.max_per_prompt is None:
        return accepted, []
    by_prompt: dict[str, list[dict]] = defaultdict(list)
    for row in accepted:
        by_prompt[row["prompt_id"]].append(row)
    kept, dropped = [], []
    for prompt_id, rows in by_prompt.items():
        if sel.policy == "shortest":
            rows = sorted(rows, key=lambda r: (r["completion_tokens"] or len(r["response"]), r["sample_index"]))
        elif sel.policy == "random":
            rows = sorted(rows, key=lambda r: r["sample_index"])
            random.Random(f"{sel.seed}:{prompt_id}").shuffle(rows)
        else:
            rows = sorted(rows, key=lambda r: r["sample_index"])
        kept += rows[: sel.max_per_prompt]
        dropped += rows[sel.max_per_prompt:]
    return kept, dropped


def messages_of(row: dict) -> list[dict]:
    return json.loads(row["prompt_messages"]) + [{"role": "assistant", "content": row["response"]}]


def write_shards(directory: Path, prefix: str, rows: list[dict]) -> None:
    for start in range(0, max(len(rows), 1), SHARD_ROWS):
        chunk = rows[start:start + SHARD_ROWS]
        table = pa.Table.from_pylist(chunk) if chunk else pa.table({"trace_id": pa.array([], pa.string())})
        pq.write_table(table, directory / f"{prefix}-{start // SHARD_ROWS:05d}.parquet")


def curate(cfg: GenerateConfig) -> Path:
    started = time.time()
    run_dir = Path(cfg.run_dir)
    traces_dir = run_dir / "traces"
    if not any(traces_dir.glob("shard-*.parquet")):
        raise UsageError(f"{traces_dir}: no traces to curate (run `distill generate` first)")
    c = cfg.curate
    decon = load_benchmarks(c)
    # Outputs are recomputed whole and swapped in at the end: any config change is fine (no fingerprint).
    staging = staging_dir_for(run_dir / "curated")
    run = Run(staging, "curate", cfg).start()
    rows = latest_rows(traces_dir)
    say(f"[curate {cfg.name}] {len(rows)} traces from {traces_dir}")

    rejected, candidates = [], []
    contaminated: dict[str, str | None] = {}
    seen_responses: set[tuple[str, str]] = set()
    for row in rows:
        reason = None
        if row["status"] != "ok":
            reason = f"generation failed: {row['error']}"
        if not reason and decon is not None:
            if row["prompt_id"] not in contaminated:
                problem = json.loads(row["prompt_messages"])[-1]["content"]
                contaminated[row["prompt_id"]] = decon.match(problem)
            if contaminated[row["prompt_id"]]:
                reason = f"contaminated: overlaps {contaminated[row['prompt_id']]}"
        reason = reason or filter_reason(row, c)
        if not reason and c.dedup:
            key = (row["prompt_id"], hashlib.sha1((row["response"] or "").encode()).hexdigest())
            if key in seen_responses:
                reason = "duplicate response"
            seen_responses.add(key)
        if not reason:
            row["verifier"] = verifier_for(row, c)
            if row["verifier"] == "none":
                row["verdict"] = (True, "unverified")
            candidates.append(row)
        else:
            rejected.append({**row, "reason": reason})

    if c.near_dedup.enabled:
        candidates, near = drop_near_duplicates(candidates, c)
        rejected += near

    config_key = hashlib.sha256(json.dumps([c.verifier, c.reasoning, c.answer_kind, c.sandbox.model_dump()],
                                           sort_keys=True).encode()).hexdigest()[:12]
    verify(candidates, c, VerdictCache(run_dir / "verdicts", config_key))
    accepted = []
    for row in candidates:
        correct, reason = row.pop("verdict")
        row.pop("verifier", None)
        (accepted if correct else rejected).append({**row, "reason": reason} if not correct else row)
    kept, not_selected = select(accepted, c)
    rejected += [{**r, "reason": "not selected"} for r in not_selected]

    write_shards(staging, "train", [{**r, "messages": messages_of(r)} for r in kept])
    write_shards(staging, "rejected", rejected)
    summary = summarize(cfg, rows, kept, rejected, time.time() - started, run_dir)
    atomic_write_json(staging / "curation.json", summary)
    run.finish(traces=len(rows), accepted=len(kept), rejected=len(rejected))
    replace_dir(staging, run_dir / "curated")
    top = ", ".join(f"{k} {v}" for k, v in Counter(_reason_kind(r["reason"]) for r in rejected).most_common(4))
    say(f"[curate {cfg.name}] done: kept {len(kept)} of {len(rows)} traces ({summary['acceptance_rate']:.0%}); "
        f"rejected: {top or 'none'}; {fmt_count(summary['tokens_kept'])} tokens kept; "
        f"{fmt_duration(time.time() - started)} -> {run_dir / 'curated'}")
    return run_dir / "curated"


def _reason_kind(reason: str) -> str:
    """'language mixing: 80% latin < 95%' -> 'language mixing' (for counting)."""
    return reason.split(":", 1)[0]


def summarize(cfg: GenerateConfig, rows: list[dict], kept: list[dict], rejected: list[dict], wall: float,
              run_dir: Path) -> dict:
    per_source: dict[str, Counter] = defaultdict(Counter)
    per_difficulty: dict[str, Counter] = defaultdict(Counter)
    kept_ids = {r["trace_id"] for r in kept}
    for row in rows:
        verdict = "kept" if row["trace_id"] in kept_ids else "rejected"
        per_source[row["source"]][verdict] += 1
        difficulty = json.loads(row["metadata"] or "{}").get("difficulty")
        per_difficulty[str(difficulty)][verdict] += 1
    rate = lambda c: round(c["kept"] / max(c["kept"] + c["rejected"], 1), 4)  # noqa: E731
    generation_cost = None
    summary_path = run_dir / "generate_summary.json"
    if summary_path.exists():
        generation_cost = json.loads(summary_path.read_text()).get("cost_usd")
    return {
        "traces": len(rows), "accepted": len(kept), "rejected": len(rejected),
        "acceptance_rate": round(len(kept) / max(len(rows), 1), 4),
        "rejected_by_reason": dict(Counter(_reason_kind(r["reason"]) for r in rejected).most_common()),
        "rejected_by_detail": dict(Counter(r["reason"][:100] for r in rejected).most_common(50)),
        "per_source": {s: {**c, "acceptance_rate": rate(c)} for s, c in per_source.items()},
        "per_difficulty": {d: {**c, "acceptance_rate": rate(c)} for d, c in sorted(per_difficulty.items())},
        "prompts": len({r["prompt_id"] for r in rows}),
        "prompts_with_a_kept_trace": len({r["prompt_id"] for r in kept}),
        "tokens_kept": sum(r["completion_tokens"] or 0 for r in kept),
        "generation_cost_usd": generation_cost,
        "cost_per_accepted_trace_usd": round(generation_cost / len(kept), 6) if generation_cost and kept else None,
        "wall_seconds": round(wall, 1),
    }

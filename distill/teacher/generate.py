"""`distill generate RUN.yaml`: k samples per prompt from the teacher, as trace shards, resumable.

Kill it at any moment and run it again: samples already in a shard are kept, the rest (failed ones
included) are requested again, and at the end every (prompt, sample) pair is present exactly once
(failed tries included, superseded by a later success). It exits 1 while more than
`max_failed_fraction` of the samples are still failed, and refuses to resume over traces made from
other settings or another text of the same prompts. `repair=true` moves damaged shards aside and
generates their samples again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from pathlib import Path

from distill.engines import SamplingParams, make_engine
from distill.errors import DistillError, UsageError
from distill.progress import fmt_count, fmt_duration, say
from distill.runs import Manifest, Run
from distill.teacher.config import GenerateConfig
from distill.teacher.summary import GenerateSummary
from distill.teacher.prompts import Prompt, load_prompts, source_name
from distill.shards import ShardWriter
from distill.traces import (SCHEMA, Trace, done_pairs, find_damaged, latest_rows, move_aside, prompt_digest,
                            prompt_digests, shard_paths, storable_row, stored_prompt)


def fingerprint(cfg: GenerateConfig) -> dict:
    """What may not change when a generation run resumes: it would mix incompatible traces."""
    return {
        "prompts": cfg.prompts.model_dump(mode="json", exclude={"limit"}),
        "teacher": cfg.engine.model,
        "sampling": cfg.sampling.model_dump(mode="json"),
    }


def request_seed(seed: int | None, prompt_id: str, first_index: int) -> int | None:
    """A distinct seed per (prompt, first missing sample): a resumed request never repeats done samples."""
    if seed is None:
        return None
    digest = hashlib.sha256(f"{seed}:{prompt_id}:{first_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class Progress:
    def __init__(self, name: str, prompts: int, samples: int, done: int):
        self.name, self.prompts, self.samples = name, prompts, samples
        self.done_samples = done
        self.start_done = done
        self.prompts_done = 0
        self.tokens = 0
        self.failed = 0
        self.start = time.time()
        self.last = 0.0

    def add(self, samples: int, tokens: int, failed: int) -> None:
        self.done_samples += samples
        self.prompts_done += 1
        self.tokens += tokens
        self.failed += failed
        if time.time() - self.last >= 5 or self.done_samples == self.samples:
            self.last = time.time()
            say(self.line())

    def line(self) -> str:
        elapsed = max(time.time() - self.start, 1e-9)
        rate = (self.done_samples - self.start_done) / elapsed
        eta = (self.samples - self.done_samples) / rate if rate > 0 else float("nan")
        return (f"[generate {self.name}] samples {self.done_samples}/{self.samples} "
                f"({100 * self.done_samples / max(self.samples, 1):.0f}%)  prompts this run {self.prompts_done}  "
                f"{fmt_count(self.tokens / elapsed)} tok/s  failed {self.failed}  "
                f"eta {fmt_duration(eta) if eta == eta else '?'}")


async def _generate(cfg: GenerateConfig, prompts: list[Prompt], todo: list[tuple[Prompt, list[int]]],
                    done: int, traces_dir: Path) -> Progress:
    engine = make_engine(cfg.engine)
    writer = ShardWriter(traces_dir, SCHEMA)
    total = len(prompts) * cfg.sampling.n
    progress = Progress(cfg.name, len(prompts), total, done)
    buffer: list[dict] = []  # rows checked against the schema: a flush never fails on one
    last_flush = time.time()
    limit = asyncio.Semaphore(cfg.engine.max_concurrency)
    source = source_name(cfg.prompts)
    sampling = cfg.sampling.model_dump(mode="json")

    def flush(force: bool = False) -> None:
        nonlocal buffer, last_flush
        if buffer and (force or len(buffer) >= cfg.flush_every or time.time() - last_flush >= cfg.flush_seconds):
            writer.write_rows(buffer)
            buffer, last_flush = [], time.time()

    async def one(prompt: Prompt, indices: list[int]) -> None:
        messages = prompt.messages(cfg.prompts.template, cfg.prompts.system_prompt, cfg.prompts.alt_template,
                                   cfg.prompts.alt_template_field)
        params = SamplingParams(n=len(indices), temperature=cfg.sampling.temperature, top_p=cfg.sampling.top_p,
                                max_tokens=cfg.sampling.max_tokens, seed=request_seed(cfg.sampling.seed, prompt.id, indices[0]),
                                top_logprobs=cfg.sampling.top_logprobs)
        base = dict(prompt_id=prompt.id, source=source, prompt_messages=messages, teacher=cfg.engine.model,
                    engine=cfg.engine.kind, sampling=sampling, answer=prompt.answer, tests=prompt.tests,
                    metadata=prompt.metadata, created=time.time())
        async with limit:
            try:
                result = await engine.complete(messages, params)
            except Exception as exc:  # recorded on every sample of the request, never dropped
                error = f"{type(exc).__name__}: {exc}"
                buffer.extend(storable_row(Trace(**base, sample_index=i, status="failed", error=error)) for i in indices)
                progress.add(len(indices), 0, len(indices))
                flush()
                return
        traces = []
        for position, index in enumerate(indices):
            c = result.completions[position] if position < len(result.completions) else None
            if c is not None and c.error:  # this sample's answer did not fit; its siblings may have
                traces.append(Trace(**base, sample_index=index, status="failed", error=c.error, endpoint=result.endpoint))
            elif c is not None:
                traces.append(Trace(**base, sample_index=index, response=c.text, finish_reason=c.finish_reason,
                                    prompt_tokens=result.prompt_tokens, completion_tokens=c.completion_tokens,
                                    latency_s=result.latency_s, endpoint=result.endpoint,
                                    token_ids=c.token_ids, top_logprob_ids=c.top_logprob_ids, top_logprobs=c.top_logprobs))
            else:  # the server returned fewer choices than asked: the missing ones are failures
                traces.append(Trace(**base, sample_index=index, status="failed",
                                    error=f"server returned {len(result.completions)} of {len(indices)} samples"))
        rows = [storable_row(t) for t in traces]
        buffer.extend(rows)
        progress.add(len(rows), sum(r["completion_tokens"] or 0 for r in rows), sum(r["status"] == "failed" for r in rows))
        flush()

    try:
        await asyncio.gather(*(one(p, idx) for p, idx in todo))
    finally:
        flush(force=True)
        await engine.close()
    return progress


def generate(cfg: GenerateConfig) -> Path:
    run_dir = Path(cfg.run_dir)
    traces_dir = run_dir / "traces"
    prompts = load_prompts(cfg.prompts)
    check_manifest(run_dir, traces_dir)
    run = Run(run_dir, "generate", cfg, fingerprint(cfg)).start()
    try:
        summary = _run(cfg, prompts, traces_dir)
    except BaseException:
        run.finish(status="failed")
        raise
    failed, total = summary.failed, summary.traces
    too_many = failed > 0 and failed > cfg.max_failed_fraction * total
    run.finish(status="failed" if too_many else "completed",
               **summary.model_dump(include={"traces", "ok", "failed", "prompt_tokens", "completion_tokens"}))
    if too_many:
        reason = max(summary.errors.items(), key=lambda item: item[1])[0] if summary.errors else "?"
        raise DistillError(f"{failed} of {total} samples still failed after retries (more than max_failed_fraction "
                           f"{cfg.max_failed_fraction:g}); most often: {reason}; rerun the same command to retry only "
                           f"the failed samples (the {summary.ok} done are kept)")
    return traces_dir


def _run(cfg: GenerateConfig, prompts: list[Prompt], traces_dir: Path) -> dict:
    started = time.time()
    if cfg.repair:
        repair(cfg, traces_dir)
    check_prompts(cfg, prompts, traces_dir)
    done = done_pairs(traces_dir)
    todo = [(p, missing) for p in prompts
            if (missing := [i for i in range(cfg.sampling.n) if (p.id, i) not in done])]
    already = sum(1 for p in prompts for i in range(cfg.sampling.n) if (p.id, i) in done)
    if already:
        say(f"[generate {cfg.name}] resuming: {already} samples already done, {sum(len(m) for _, m in todo)} to go")
    say(f"[generate {cfg.name}] {len(prompts)} prompts x {cfg.sampling.n} samples from {cfg.engine.model} "
        f"({cfg.engine.kind})")
    progress = asyncio.run(_generate(cfg, prompts, todo, already, traces_dir))
    summary = summarize(cfg, traces_dir, {p.id for p in prompts}, time.time() - started)
    summary.tokens_per_second = round(progress.tokens / max(time.time() - progress.start, 1e-9), 1)
    summary.write(cfg.run_dir)
    say(f"[generate {cfg.name}] done: {summary.ok} ok, {summary.failed} failed of {summary.traces} "
        f"({len(prompts)} prompts x {cfg.sampling.n}); finish {summary.finish_reasons}; "
        f"tokens in {fmt_count(summary.prompt_tokens)} out {fmt_count(summary.completion_tokens)}; "
        f"{fmt_duration(summary.wall_seconds)}; est. cost ${summary.cost_usd:.2f} -> {traces_dir}")
    return summary


def check_manifest(run_dir: Path, traces_dir: Path) -> None:
    """Shards whose settings are unknown (no readable generate manifest beside them) are not resumed over."""
    if not shard_paths(traces_dir):
        return
    path = run_dir / Manifest.FILE
    manifest = Manifest.find(run_dir)
    if manifest is None or manifest.stage != "generate" or manifest.fingerprint is None:
        raise UsageError(f"{traces_dir}: holds trace shards but {path} is missing or unreadable, so the settings "
                         "they were made with are unknown and resuming could mix traces of different settings; "
                         "restore the manifest, or move the shards away, or use a new run_dir")


def check_prompts(cfg: GenerateConfig, prompts: list[Prompt], traces_dir: Path) -> None:
    """Refuse to resume when a prompt that already has traces now reads differently (the source edited in place)."""
    stored = prompt_digests(traces_dir)
    if not stored:
        return
    p = cfg.prompts
    changed = [prompt.id for prompt in prompts if prompt.id in stored and stored[prompt.id] != {prompt_digest(stored_prompt(
        prompt.messages(p.template, p.system_prompt, p.alt_template, p.alt_template_field),
        prompt.answer, prompt.tests, prompt.metadata))}]
    if changed:
        raise UsageError(f"prompts.source: {len(changed)} prompts with traces in {traces_dir} read differently now "
                         f"(first: id {changed[0]!r}): {p.source} was edited since; resuming would mix traces of two "
                         "versions of a prompt. Restore the source, or use a new run_dir")


def repair(cfg: GenerateConfig, traces_dir: Path) -> None:
    damaged = find_damaged(traces_dir)
    for path, reason in damaged:
        target = move_aside(path)
        say(f"[generate {cfg.name}] repair: {path.name} is damaged ({reason}); moved to {target}, "
            "its samples are generated again")
    if not damaged:
        say(f"[generate {cfg.name}] repair: no damaged shard in {traces_dir}")


def summarize(cfg: GenerateConfig, traces_dir: Path, prompt_ids: set[str], wall: float) -> GenerateSummary:
    columns = ["prompt_id", "status", "error", "finish_reason", "prompt_tokens", "completion_tokens"]
    rows = [r for r in latest_rows(traces_dir, columns) if r["prompt_id"] in prompt_ids]
    ok = [r for r in rows if r["status"] == "ok"]
    # Prompt tokens are counted once per request (n samples share the prefix): once per prompt here.
    prompt_tokens = sum({r["prompt_id"]: r["prompt_tokens"] or 0 for r in ok}.values())
    completion_tokens = sum(r["completion_tokens"] or 0 for r in ok)
    c = cfg.cost
    if c.usd_per_million_input is not None or c.usd_per_million_output is not None:
        cost = (prompt_tokens * (c.usd_per_million_input or 0) + completion_tokens * (c.usd_per_million_output or 0)) / 1e6
    elif c.gpu_hour_usd is not None:
        cost = wall / 3600 * c.gpus * c.gpu_hour_usd
    else:
        cost = 0.0
    return GenerateSummary(
        traces=len(rows), ok=len(ok), failed=len(rows) - len(ok),
        finish_reasons=dict(Counter(r["finish_reason"] or "none" for r in ok)),
        errors=dict(Counter((r["error"] or "")[:120] for r in rows if r["status"] != "ok")),
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, wall_seconds=round(wall, 1),
        cost_usd=round(cost, 4))

"""`distill eval SUITE.yaml model=PATH`: one model on one suite -> samples, verdicts, metrics (layout: distill/eval/__init__.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distill.errors import DistillError, UsageError
from distill.benchmarks import Benchmark
from distill.eval.config import SuiteConfig
from distill.eval.metrics import benchmark_results
from distill.eval.results import ModelInfo, Results
from distill.eval.score import score_samples
from distill.io import atomic_write_json, atomic_write_parquet
from distill.progress import fmt_duration, say
from distill.runs import Run
from distill.verify.sandbox import LocalSandbox

SAMPLE_SCHEMA = pa.schema([
    ("benchmark", pa.string()), ("problem_id", pa.string()), ("sample", pa.int32()), ("prompt", pa.string()),
    ("response", pa.string()), ("reference", pa.string()), ("extracted", pa.string()), ("correct", pa.bool_()),
    ("reason", pa.string()), ("response_tokens", pa.int32()),
])


def check_endpoint(base_url: str, api_key: str | None = None) -> None:
    """One-line error for an endpoint that does not answer, before lm-eval retries it for minutes."""
    request = urllib.request.Request(f"{base_url.rstrip('/')}/models",
                                     headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise UsageError(f"model.base_url: {base_url} refused the key (HTTP {exc.code}); set model.api_key_env") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UsageError(f"model.base_url: cannot reach {base_url}: {reason}") from None


def check_checkpoint(cfg: SuiteConfig) -> None:
    """One-line error for a local directory that is not a checkpoint, before transformers or vLLM trace back."""
    path = Path(cfg.model.name_or_path)
    if cfg.model.engine != "openai" and path.is_dir() and not (path / "config.json").is_file():
        raise UsageError(f"model.name_or_path: {cfg.model.name_or_path} is not a model checkpoint (no config.json in it)")


def count_params(path: str) -> int | None:
    """Parameters of a local safetensors checkpoint, from the file headers alone."""
    files = sorted(Path(path).glob("*.safetensors")) if Path(path).is_dir() else []
    total = 0
    for file in files:
        with open(file, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count
    return total or None


def token_counter(path: str):
    """Response length in the model's tokens; characters / 4 when its tokenizer is not at hand (a remote teacher offline)."""
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        return (lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])), "tokens"
    except Exception:
        return (lambda text: (len(text) + 3) // 4), "estimated tokens (characters / 4)"


@contextlib.contextmanager
def endpoint(cfg: SuiteConfig, run_dir: Path):
    """The base URL to send requests to (None: evaluate in this process), serving the checkpoint if asked."""
    model = cfg.model
    api_key = os.environ.get(model.api_key_env) if model.api_key_env else None
    if model.engine == "hf":
        yield None, None
    elif model.engine == "openai":
        check_endpoint(model.base_url, api_key)
        yield model.base_url, api_key
    else:
        from distill.engines.serve import start, stop

        serve = model.serve_config(run_dir)
        start(serve)
        try:
            yield serve.base_url, None
        finally:
            stop(serve)


def score_benchmark(cfg: SuiteConfig, bench: Benchmark, rows: list[dict], count_tokens) -> pa.Table:
    docs = [row["doc"] for row in rows for _ in row["responses"]]
    responses = [r for row in rows for r in row["responses"]]
    sandbox = LocalSandbox(allow_weak=cfg.sandbox.allow_weak)
    verdicts = score_samples(docs, responses, cfg.reasoning, workers=cfg.workers, sandbox=sandbox,
                             limits=cfg.sandbox.limits())
    records = {name: [] for name in SAMPLE_SCHEMA.names}
    position = 0
    for row in rows:
        for index, response in enumerate(row["responses"]):
            verdict = verdicts[position]
            position += 1
            for key, value in (("benchmark", bench.name), ("problem_id", row["doc"]["problem_id"]), ("sample", index),
                               ("prompt", row["doc"]["prompt"]), ("response", response), ("reference", row["doc"]["answer"]),
                               ("extracted", verdict.extracted), ("correct", verdict.correct), ("reason", verdict.reason),
                               ("response_tokens", count_tokens(response))):
                records[key].append(value)
    return pa.table(records, schema=SAMPLE_SCHEMA)


def model_identity(path: str) -> str:
    """What tells a checkpoint apart from one retrained at the same path: its weight files' names, sizes and
    modification times, and its config. A Hub id or endpoint model is its name."""
    local = Path(path).expanduser()
    if not local.is_dir():
        return path
    parts = [(f.name, stat.st_size, stat.st_mtime_ns) for f in sorted(local.iterdir())
             if f.suffix in (".safetensors", ".bin", ".pt", ".json") and f.is_file() and (stat := f.stat())]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def forget_samples_of_another_model(cfg: SuiteConfig) -> None:
    """Samples are kept across runs only for the same checkpoint: a model retrained in place is evaluated again."""
    run_dir, identity = cfg.run_dir, model_identity(cfg.model.name_or_path)
    marker = run_dir / "model_identity.json"
    drawn = json.loads(marker.read_text())["identity"] if marker.exists() else None
    if drawn == identity:
        return
    old = list((run_dir / "samples").glob("*.parquet"))
    if old:
        say(f"[eval {cfg.model.name}] {cfg.model.name_or_path} changed since its samples were drawn: evaluating it again")
    for path in old:
        path.unlink()
    atomic_write_json(marker, {"name_or_path": cfg.model.name_or_path, "identity": identity})


def evaluate(cfg: SuiteConfig) -> dict:
    from distill.eval.lmeval import build_lm, generate

    check_checkpoint(cfg)
    run_dir = cfg.run_dir
    fingerprint = {"suite": cfg.name, "protocol": cfg.protocol.model_dump(), "model": cfg.model.name_or_path,
                   "reasoning": cfg.reasoning, "benchmarks": {b.name: b.model_dump(exclude={"name"}) for b in cfg.benchmarks}}
    run = Run(run_dir, "eval", cfg, fingerprint).start()
    started = time.time()
    say(f"[eval {cfg.model.name}] suite {cfg.name}: {len(cfg.benchmarks)} benchmark(s) -> {run_dir}")
    count_tokens, length_unit = token_counter(cfg.model.name_or_path)
    forget_samples_of_another_model(cfg)
    tables = {}
    todo = [b for b in cfg.benchmarks if not (run_dir / "samples" / f"{b.name}.parquet").exists()]
    for bench in cfg.benchmarks:
        if bench not in todo:
            tables[bench.name] = pq.read_table(run_dir / "samples" / f"{bench.name}.parquet")
            say(f"[eval {cfg.model.name}] {bench.name}: done before, {tables[bench.name].num_rows} samples kept")
    if todo:
        with endpoint(cfg, run_dir) as (base_url, api_key):
            lm = build_lm(cfg, base_url, api_key)
            for bench in todo:
                t0 = time.time()
                say(f"[eval {cfg.model.name}] {bench.name}: {bench.samples} sample(s) per problem")
                rows = generate(cfg, bench, lm)
                if not rows:
                    raise DistillError(f"benchmark {bench.name}: the task yielded no problems")
                table = score_benchmark(cfg, bench, rows, count_tokens)
                atomic_write_parquet(table, run_dir / "samples" / f"{bench.name}.parquet")
                tables[bench.name] = table
                accuracy = sum(table.column("correct").to_pylist()) / max(table.num_rows, 1)
                tokens = sum(table.column("response_tokens").to_pylist())
                elapsed = time.time() - t0
                say(f"[eval {cfg.model.name}] {bench.name}: {len(rows)} problems x {bench.samples}, pass@1 {100 * accuracy:.1f}%, "
                    f"{tokens / max(elapsed, 1e-9):.0f} tok/s, {fmt_duration(elapsed)}")
    records = [r for b in cfg.benchmarks for r in tables[b.name].select(
        ["benchmark", "problem_id", "sample", "correct", "extracted", "response_tokens"]).to_pylist()]
    params = cfg.model.params or count_params(cfg.model.name_or_path)
    results = Results(
        model=ModelInfo(label=cfg.model.name, name_or_path=cfg.model.name_or_path, role=cfg.model.role, params=params),
        suite=cfg.name, protocol={**cfg.protocol.model_dump(), "reasoning": cfg.reasoning, "length_unit": length_unit},
        benchmarks=benchmark_results(records, seed=cfg.protocol.seed))
    results.write(run_dir)
    results = results.model_dump(mode="json", by_alias=True)
    for name, metrics in results["benchmarks"].items():
        lo, hi = metrics["ci95"]
        cons = "n/a (no extracted answers)" if metrics["cons@n"] is None else f"{metrics['cons@n']:.1f}%"
        say(f"[eval {cfg.model.name}] {name}: pass@1 {metrics['pass@1']:.1f}% (95% CI {lo:.1f}-{hi:.1f}), "
            f"cons@{metrics['n']} {cons}, {metrics['problems']} problems")
    run.finish(benchmarks=len(cfg.benchmarks), samples=len(records))
    say(f"[eval {cfg.model.name}] done in {fmt_duration(time.time() - started)}: {run_dir / Results.FILE}")
    return results

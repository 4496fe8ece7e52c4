"""The preflight of an eval suite: one problem of each benchmark, one sample, through the suite's own tasks and
scoring, answered by a two-layer model with the suite's model's tokenizer and architecture."""

from __future__ import annotations

import time
from pathlib import Path

from distill.config import load_config
from distill.eval.config import SuiteConfig
from distill.preflight.models import LocalModels, shrink
from distill.preflight.options import PreflightOptions
from distill.progress import say


def suite_overrides(cfg: SuiteConfig, model: str, out: Path, opts: PreflightOptions) -> list[str]:
    changes = [f"model.name_or_path={model}", "model.engine=hf", "model.label=preflight", f"runs_dir={out}",
               f"protocol.max_tokens={opts.max_new_tokens}", "model.batch_size=4"]
    for i, bench in enumerate(cfg.benchmarks):
        changes += [f"benchmarks.{i}.limit=1", f"benchmarks.{i}.samples=1", f"benchmarks.{i}.max_tokens={opts.max_new_tokens}"]
        if bench.name in opts.local:
            changes.append(f"benchmarks.{i}.data_files={opts.local[bench.name]}")
    return changes


def evaluate_once(suite: str, model: str, out: Path, opts: PreflightOptions, log, overrides: list[str] | None = None) -> dict:
    """pass@1 per benchmark of `model` on one problem each (the number means nothing: the path is what is checked)."""
    import shutil

    from distill.eval.run import evaluate

    cfg = load_config(suite, SuiteConfig, overrides or [])
    shutil.rmtree(out, ignore_errors=True)
    run = load_config(suite, SuiteConfig, [*(overrides or []), *suite_overrides(cfg, model, out, opts)])
    started = time.time()
    results = evaluate(run)
    scores = {name: bench.get("pass@1") for name, bench in (results.get("benchmarks") or {}).items()}
    log(f"eval {suite}: one problem of each of {len(run.benchmarks)} benchmarks ({', '.join(b.name for b in run.benchmarks)}) "
        f"answered and scored in {time.time() - started:.0f}s")
    return scores


def preflight_suite(path: str, overrides: list[str], opts: PreflightOptions) -> dict:
    started = time.time()
    cfg = load_config(path, SuiteConfig, overrides)
    log = lambda line: say(f"[preflight {cfg.name}] {line}")  # noqa: E731
    work = Path(opts.out) / f"suite-{cfg.name}"
    source = LocalModels(opts.models).resolve(cfg.model.name_or_path)
    model = shrink(source, work / "models" / "model", "model.name_or_path")
    log(f"suite {path}: model {cfg.model.name_or_path} (engine {cfg.model.engine} in the suite): here two layers of its "
        f"architecture with its tokenizer, through the hf engine")
    scores = evaluate_once(path, str(model), work / "eval", opts, log, overrides)
    wall = time.time() - started
    log(f"passed in {wall:.0f}s")
    return {"recipe": path, "kind": "suite", "seconds": round(wall, 1), "eval": scores}

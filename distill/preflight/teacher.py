"""The preflight of a generation run (teacher/runs/): its prompts loaded and rendered, a few sampled by a two-layer
model with the teacher's tokenizer (through the hf engine, where the run reaches a server), then curated with the
run's own curate section (verifier, filters, dedup, decontamination against its suites) and priced by the plan."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from distill.config import load_config
from distill.curate.config import CurateConfig
from distill.errors import UsageError
from distill.preflight.models import LocalModels, shrink
from distill.preflight.options import PreflightOptions
from distill.preflight.plan import plan_of
from distill.progress import say

# R1's tokenizer ships with no PyPI package: where it cannot be had, the generation run is checked with the
# tokenizer of an R1-Distill model, which renders prompts in R1's chat format.
STAND_IN = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
PROMPTS = 2


def teacher_model(cfg: CurateConfig, models: LocalModels, work: Path, log) -> Path:
    name = cfg.engine.model
    try:
        return shrink(models.resolve(name), work / "models" / "teacher", "engine.model")
    except UsageError as exc:
        log(f"teacher {name}: {str(exc).split(': ', 1)[-1]}")
        log(f"teacher {name}: {STAND_IN}'s tokenizer (R1's chat format) stands in")
        return shrink(models.resolve(STAND_IN), work / "models" / "stand-in", "teacher stand-in")


def preflight_generation(path: str, overrides: list[str], opts: PreflightOptions) -> dict:
    from distill.curate.run import curate
    from distill.teacher.generate import generate

    started = time.time()
    cfg = load_config(path, CurateConfig, overrides)
    log = lambda line: say(f"[preflight {cfg.name}] {line}")  # noqa: E731
    work = Path(opts.out) / f"teacher-{cfg.name}"
    log(f"run {path}: {cfg.sampling.n} samples per prompt of {cfg.prompts.source} from {cfg.engine.model} "
        f"({cfg.engine.kind} engine)")
    model = teacher_model(cfg, LocalModels(opts.models), work, log)
    shutil.rmtree(work / "run", ignore_errors=True)
    changes = [f"run_dir={work / 'run'}", "engine.kind=hf", f"engine.model={model}", f"prompts.limit={PROMPTS}",
               "sampling.n=2", f"sampling.max_tokens={opts.max_new_tokens}"]
    changes += [f"curate.decontamination.local_files.{name}={file}" for name, file in opts.local.items()]
    log("differs from the run here: " + " ".join(changes[2:]))
    run = load_config(path, CurateConfig, [*overrides, *changes])
    generate(run)
    curate(run)
    log(f"plan: {plan_of(path, overrides)}")
    wall = time.time() - started
    log(f"passed in {wall:.0f}s")
    return {"recipe": path, "kind": "generation", "seconds": round(wall, 1)}

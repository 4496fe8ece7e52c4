"""`distill toy-teacher`: build the toy world, train the toy teacher with the students stage, check it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from distill.config import load_config
from distill.errors import DistillError
from distill.io import atomic_write_json, read_jsonl, replace_dir, staging_dir_for
from distill.progress import fmt_duration, say
from distill.runs import Manifest
from distill.students.config import StudentConfig
from distill.students.train import train
from distill.toy.check import check_model
from distill.toy.world import ToyWorldConfig, build_world

# Pass@1 band the toy teacher must land in: good, but imperfect enough for rejection sampling.
PASS_BAND = (0.5, 0.9)


def discard_completed_run(run_dir: Path) -> None:
    """A finished teacher build is rebuilt from its seed; an interrupted one resumes."""
    manifest = Manifest.find(run_dir)
    if manifest is not None and manifest.status == "completed":
        say(f"[toy-teacher] rebuilding from scratch: removing the completed run {run_dir}")
        shutil.rmtree(run_dir)


def build_teacher(world_cfg: ToyWorldConfig, overrides: list[str] | None = None) -> dict:
    started = time.time()
    world = build_world(world_cfg, log=say)
    recipe = load_config(world_cfg.teacher_recipe, StudentConfig, overrides)
    discard_completed_run(Path(recipe.run_dir))
    model_dir = train(recipe)

    test = read_jsonl(world / "prompts" / "test.jsonl")
    say(f"[toy-teacher] checking on {len(test)} held-out problems, {world_cfg.check_samples} samples each "
        f"at T={world_cfg.check_temperature}")
    result = check_model(str(model_dir), test, k=world_cfg.check_samples, temperature=world_cfg.check_temperature,
                         top_p=world_cfg.check_top_p, seed=world_cfg.seed)
    build_seconds = time.time() - started
    report = {
        "pass_at_1": round(result.pass_at_1, 4),
        "greedy": round(result.greedy, 4),
        "stopped_at_eos": round(result.stopped, 4),
        "problems": result.problems,
        "samples_per_problem": world_cfg.check_samples,
        "temperature": world_cfg.check_temperature,
        "build_seconds": round(build_seconds, 1),
        "world_seed": world_cfg.seed,
        "recipe": world_cfg.teacher_recipe,
        "training_seed": recipe.training.seed,
        "steps": recipe.training.max_steps,
        "in_band": PASS_BAND[0] <= result.pass_at_1 <= PASS_BAND[1],
    }
    atomic_write_json(Path(model_dir) / "toy_teacher.json", report)
    band = "inside" if report["in_band"] else "OUTSIDE"
    say(f"[toy-teacher] pass@1 {report['pass_at_1']:.3f} (T={world_cfg.check_temperature}, k={world_cfg.check_samples}, "
        f"{band} the {PASS_BAND[0]}-{PASS_BAND[1]} band), greedy {report['greedy']:.3f}, "
        f"stopped at EOS {report['stopped_at_eos']:.1%}; built in {fmt_duration(build_seconds)}")
    if not report["in_band"]:
        raise DistillError(
            f"toy teacher pass@1 {report['pass_at_1']} is outside {PASS_BAND}; kept at {model_dir}, "
            f"{world_cfg.teacher_dir} left unchanged"
        )
    # Only a teacher inside the band replaces the installed one (tests and the demo read it from there).
    staging = staging_dir_for(Path(world_cfg.teacher_dir))
    for item in Path(model_dir).iterdir():
        if item.is_file() and item.name != "training_args.bin":
            shutil.copy2(item, staging / item.name)
    replace_dir(staging, Path(world_cfg.teacher_dir))
    say(f"[toy-teacher] installed at {world_cfg.teacher_dir}")
    return report

"""`distill toy-teacher`: build the toy world, train the toy teacher with the students stage, check it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from distill.config import load_config
from distill.io import atomic_write_json, replace_dir, staging_dir_for
from distill.progress import fmt_duration, say
from distill.students.config import StudentConfig
from distill.students.train import train
from distill.toy.check import check_model
from distill.toy.world import ToyWorldConfig, build_world

# Pass@1 band the toy teacher must land in: good, but imperfect enough for rejection sampling.
PASS_BAND = (0.5, 0.9)


def build_teacher(world_cfg: ToyWorldConfig, overrides: list[str] | None = None) -> dict:
    started = time.time()
    world = build_world(world_cfg, log=say)
    recipe = load_config(world_cfg.teacher_recipe, StudentConfig, overrides)
    model_dir = train(recipe)

    test = [json.loads(line) for line in (world / "prompts" / "test.jsonl").read_text().splitlines()]
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
        "seed": world_cfg.seed,
        "recipe": world_cfg.teacher_recipe,
        "in_band": PASS_BAND[0] <= result.pass_at_1 <= PASS_BAND[1],
    }
    staging = staging_dir_for(Path(world_cfg.teacher_dir))
    for item in Path(model_dir).iterdir():
        (staging / item.name).write_bytes(item.read_bytes())
    atomic_write_json(staging / "toy_teacher.json", report)
    replace_dir(staging, Path(world_cfg.teacher_dir))
    band = "inside" if report["in_band"] else "OUTSIDE"
    say(f"[toy-teacher] pass@1 {report['pass_at_1']:.3f} (T={world_cfg.check_temperature}, k={world_cfg.check_samples}, "
        f"{band} the {PASS_BAND[0]}-{PASS_BAND[1]} band), greedy {report['greedy']:.3f}, "
        f"stopped at EOS {report['stopped_at_eos']:.1%}; built in {fmt_duration(build_seconds)} -> {world_cfg.teacher_dir}")
    return report

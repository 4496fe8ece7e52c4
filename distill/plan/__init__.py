"""`distill plan CONFIG`: what a run will cost before it starts.

A student recipe (students/*.yaml): parameters, memory per GPU under its sharding (weights, gradients, optimizer
states, activations with and without checkpointing), tokens to train, GPU-hours and cost at the measured MFU of
bench/results/train_gpu.json, and whether it fits. A generation run (teacher/runs/*.yaml): output tokens, teacher
GPU-hours at a measured or stated throughput, and cost. Nothing is downloaded, loaded on a GPU or written.

    distill plan students/r1-distill-qwen-7b.yaml
    distill plan students/r1-distill-llama-70b.yaml --gpu h200 --nodes 2
    distill plan teacher/runs/math.yaml --prompts 40000 --json
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Any

from pydantic import BaseModel, ValidationError

from distill.errors import UsageError


@dataclass
class PlanOptions:
    gpu: str | None = None
    gpus_per_node: int | None = None
    nodes: int | None = None
    accelerate: str | None = None
    gpu_hour_usd: float | None = None
    headroom: float | None = None
    mfu: float | None = None
    tokens: int | None = None
    prompts: int | None = None
    trace_tokens: int | None = None
    tokens_per_s: float | None = None
    json: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The plan command's flags (distill/cli.py adds them to its `plan` subcommand)."""
    group = parser.add_argument_group("plan", "KEY=VALUE overrides go before these flags (argparse reads no positional "
                                      "after them): distill plan RECIPE training.max_length=16384 --gpu h200")
    group.add_argument("--gpu", help="GPU kind: H100, H200, B200, A100-80GB, A100-40GB, L40S (default: the recipe's "
                       "header, else H100)")
    group.add_argument("--gpus-per-node", type=int, help="default: the recipe's header, else 8")
    group.add_argument("--nodes", type=int, help="default: the recipe's header, else 1")
    group.add_argument("--accelerate", metavar="NAME|PATH", help="sharding, as an accelerate config: ddp, zero2, zero3, "
                       "fsdp (configs/accelerate/) or a path (default: the one the recipe's header names, else ddp)")
    group.add_argument("--gpu-hour-usd", type=float, help="price per GPU-hour (default: an assumed on-demand price per "
                       "GPU kind; generation: the run's cost.gpu_hour_usd)")
    group.add_argument("--headroom", type=float, help="share of GPU memory kept free (default 0.10)")
    group.add_argument("--mfu", type=float, help="model FLOPs utilisation instead of the nearest measured row")
    group.add_argument("--tokens", type=int, help="tokens per epoch, when the data is not at hand")
    group.add_argument("--prompts", type=int, help="generation: number of prompts (a Hub prompt source is not read)")
    group.add_argument("--trace-tokens", type=int, help="generation: mean output tokens per sample")
    group.add_argument("--tokens-per-s", type=float, help="generation: teacher output tokens/s per 8-GPU node")
    group.add_argument("--json", action="store_true", help="print the plan as JSON")


def _check(options: PlanOptions) -> None:
    for name in ("gpus_per_node", "nodes", "tokens", "prompts", "trace_tokens"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} {value}: expected a positive count")
    for name in ("gpu_hour_usd", "tokens_per_s"):
        value = getattr(options, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} {value}: expected a positive number")
    if options.mfu is not None and not 0 < options.mfu <= 1:
        raise UsageError(f"--mfu {options.mfu}: expected a fraction in (0, 1], e.g. 0.4")
    if options.headroom is not None and not 0 <= options.headroom < 1:
        raise UsageError(f"--headroom {options.headroom}: expected a fraction in [0, 1), e.g. 0.1")


def _validate(path: str, data: dict[str, Any], model_cls: type[BaseModel]) -> BaseModel:
    """`data` as `model_cls`, accepting local input paths that are not there yet (the plan says so) where the stage
    itself would refuse them."""
    from distill.config import PATHS_MAY_BE_MISSING, describe_error

    try:
        return model_cls.model_validate(data, context={PATHS_MAY_BE_MISSING: True})
    except ValidationError as exc:
        raise UsageError(describe_error(path, exc, model_cls)) from None


def make_plan(config_path: str, overrides: list[str] | None = None, options: PlanOptions | None = None):
    """The Plan of a student or generation config (dispatched on its top-level keys)."""
    from distill.config import deep_merge, parse_overrides, read_yaml

    options = options or PlanOptions()
    _check(options)
    data = deep_merge(read_yaml(config_path), parse_overrides(overrides or []))
    if "training" in data and "model" in data:
        from distill.plan.student import plan_student
        from distill.students.config import StudentConfig

        return plan_student(_validate(config_path, data, StudentConfig), config_path, options)
    if "prompts" in data and "training" not in data:
        from distill.plan.generation import plan_generation
        from distill.curate.config import CurateConfig

        return plan_generation(_validate(config_path, data, CurateConfig), config_path, options)
    raise UsageError(f"{config_path}: neither a student recipe (model, data, training: students/*.yaml) nor a generation "
                     "run (prompts, sampling: teacher/runs/*.yaml); distill plan prices those two")


def run_plan_command(config_path: str, overrides: list[str] | None = None, options: Any = None) -> None:
    """`distill plan CONFIG [key=value ...] [flags]`: print the plan. `options`: PlanOptions or argparse's namespace."""
    from distill.plan.render import as_json, text
    from distill.progress import say

    if options is not None and not isinstance(options, PlanOptions):
        given = {f.name: getattr(options, f.name, None) for f in fields(PlanOptions)}
        options = PlanOptions(**{name: value for name, value in given.items() if value is not None})
    plan = make_plan(config_path, overrides, options)
    say(as_json(plan) if options is not None and options.json else text(plan))

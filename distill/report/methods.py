"""The method table and plot: what each distillation method bought (pass@1) for what it cost (teacher tokens, steps).

A student that `continues` another carries that student's steps, wall time and teacher tokens: an on-policy run
after SFT has spent both. Teacher tokens are those generated for the SFT data (the whole generation run, rejected
samples included, counted once: a continuation on the same traces spends nothing new) plus those the teacher
scored on-policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from distill.progress import fmt_count, fmt_duration
from distill.report.document import Table
from distill.report.loading import Inputs, ModelRun
from distill.report.plots import pass_at_1_on_log_x
from distill.report.stats import PairedDifference, compare
from distill.report.tables import DASH, difference, interval
from distill.students.methods import training_method


@dataclass
class MethodRow:
    student: str
    methods: list[str]           # the chain, first stage first
    teacher_tokens: int | None
    steps: int
    wall_seconds: float
    pass_at_1: float
    ci95: tuple[float, float]
    vs_control: PairedDifference | None


def lineage(model: ModelRun, inputs: Inputs) -> list[ModelRun]:
    chain, seen = [model], {model.name}
    while chain[0].continues:
        parent = inputs.model(chain[0].continues)
        if parent.name in seen:
            break
        chain.insert(0, parent)
        seen.add(parent.name)
    return chain


def data_generations(model: ModelRun, inputs: Inputs) -> set[Path]:
    """The generation runs behind the curations a student trained on (its config.yaml's data source or sources)."""
    path = model.training.dir / "config.yaml" if model.training else None
    try:
        data = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("data") or {} if path and path.is_file() else {}
    except (OSError, yaml.YAMLError):
        data = {}
    sources = [data.get("source")] + [s.get("source") for s in data.get("sources") or [] if isinstance(s, dict)]
    wanted = {Path(s).resolve() for s in sources if isinstance(s, str)}
    return {run.generation_dir for run in inputs.curations if run.dir.resolve() in wanted}


def teacher_tokens(chain: list[ModelRun], inputs: Inputs) -> int | None:
    generations = {run.generation_dir: run.generation for run in inputs.curations if run.generation}
    own = data_generations(chain[0], inputs)  # unknown (data elsewhere, an older run): every generation given
    generations = {d: g for d, g in generations.items() if d in own} or generations
    generated = sum(g.completion_tokens for g in generations.values()) if generations else None
    total = generated if training_method(chain[0].training.summary.method).learns_from_teacher_text else 0
    for stage in chain:
        scored = stage.training.summary.teacher_tokens_scored
        if training_method(stage.training.summary.method).teacher_scores_samples:
            if scored is None:
                return None
            total = (total or 0) + scored
    return total


def method_rows(inputs: Inputs, cfg) -> list[MethodRow]:
    bench = cfg.methods.benchmark or inputs.benchmarks[0]
    control = inputs.model(cfg.methods.control)
    rows = []
    for model in inputs.students:
        if bench not in model.benchmarks:
            continue
        chain = lineage(model, inputs)
        result = model.benchmarks[bench]
        rows.append(MethodRow(
            student=model.name, methods=[m.training.summary.method for m in chain],
            teacher_tokens=teacher_tokens(chain, inputs),
            steps=sum(m.training.summary.steps for m in chain),
            wall_seconds=sum(m.training.summary.wall_seconds for m in chain),
            pass_at_1=result.pass_at_1, ci95=tuple(result.ci95),
            vs_control=None if model is control else compare(model, control, bench, cfg)))
    return rows


def method_table(rows: list[MethodRow], control: str) -> Table:
    body = [[r.student, " → ".join(r.methods), DASH if r.teacher_tokens is None else fmt_count(r.teacher_tokens),
             f"{r.steps:,}", fmt_duration(r.wall_seconds), f"{r.pass_at_1:.1f} {interval(r.ci95)}",
             "control" if r.student == control else difference(r.vs_control)] for r in rows]
    return Table(["student", "method", "teacher tokens", "student steps", "training time", "pass@1 (95% CI)",
                  f"vs {control} (paired 95% CI)"], body, numeric=[False, False, True, True, True, True, True])


def method_plot(rows: list[MethodRow], bench: str, run_dir: Path) -> str | None:
    shown = [r for r in rows if r.teacher_tokens]
    if not shown:
        return None
    points = [(r.teacher_tokens, r.pass_at_1, r.ci95, f"C{index % 10}", f"{r.student} ({' → '.join(r.methods)})")
              for index, r in enumerate(shown)]
    return pass_at_1_on_log_x(points, "teacher tokens spent (generated + scored)", bench, run_dir / "methods.png")

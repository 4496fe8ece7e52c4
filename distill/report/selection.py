"""Selection by difficulty, measured: students trained on selected traces against one trained on as many random
traces, and against the student trained on all traces (how much selected data matches it), each as a paired
bootstrap difference over the problems both answered (stats.compare)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.report.config import ReportConfig
from distill.report.document import Block, Heading, Image, Paragraph, Table
from distill.report.loading import Inputs, ModelRun
from distill.report.plots import pass_at_1_on_log_x
from distill.report.stats import PairedDifference, compare
from distill.report.tables import DASH, difference, interval, share


@dataclass
class SelectionRow:
    student: str
    role: str  # all traces, random, selected
    examples: int | None
    pass_at_1: float
    ci95: tuple[float, float]
    vs_all: PairedDifference | None
    vs_random: PairedDifference | None


def examples(model: ModelRun) -> int | None:
    return model.training.summary.examples if model.training else None


def selection_rows(inputs: Inputs, cfg: ReportConfig) -> list[SelectionRow]:
    s = cfg.selection
    bench = s.benchmark or inputs.benchmarks[0]
    reference = inputs.model(s.reference)
    random = inputs.model(s.random) if s.random else None
    rows = []
    for name, role in [(s.reference, "all traces"), *([(s.random, "random")] if s.random else []),
                       *((n, "selected") for n in s.selected)]:
        model = inputs.model(name)
        result = model.benchmarks.get(bench)
        if result is None:
            continue
        rows.append(SelectionRow(
            name, role, examples(model), result.pass_at_1, tuple(result.ci95),
            None if model is reference else compare(model, reference, bench, cfg),
            compare(model, random, bench, cfg) if random is not None and role == "selected" else None))
    return rows


def matches(d: PairedDifference | None) -> bool:
    """No worse than the reference: the paired CI reaches 0 or lies above it."""
    return d is not None and d.ci95[1] >= 0


def verdict(rows: list[SelectionRow], inputs: Inputs, cfg: ReportConfig) -> str:
    s = cfg.selection
    teacher = inputs.teacher.benchmarks.get(s.benchmark or inputs.benchmarks[0])
    teacher_pass_at_1 = teacher.pass_at_1 if teacher else None
    lines = []
    by_name = {r.student: r for r in rows}
    reference = by_name.get(s.reference)
    if reference is not None and teacher_pass_at_1:
        lines.append(f"{s.reference} reaches {share(reference.pass_at_1 / teacher_pass_at_1)} of the teacher's pass@1"
                     + (" (far from the teacher: these differences are between students that have not learned the task)."
                        if reference.pass_at_1 < 0.5 * teacher_pass_at_1 else "."))
    for r in rows:
        if r.role == "selected" and r.vs_random is not None:
            d = r.vs_random
            word = "better than" if d.ci95[0] > 0 else "worse than" if d.ci95[1] < 0 else "not distinguishable from"
            lines.append(f"{r.student} ({r.examples or 0:,} traces) is {word} {s.random} on as many random traces: "
                         f"{difference(d)} points.")
    selected = sorted((r for r in rows if r.role == "selected" and r.examples), key=lambda r: r.examples)
    matching = [r for r in selected if matches(r.vs_all)]
    if reference is not None and reference.examples:
        if matching:
            r = matching[0]
            lines.append(f"The smallest selected set that matches {s.reference} ({reference.examples:,} traces; paired CI "
                         f"reaching 0 or above): {r.student}, {r.examples:,} traces ({share(r.examples / reference.examples)}"
                         f" of them), {difference(r.vs_all)} points.")
        elif selected:
            lines.append(f"No selected set matches {s.reference} ({reference.examples:,} traces): the largest, "
                         f"{selected[-1].student} ({selected[-1].examples:,} traces), is {difference(selected[-1].vs_all)} "
                         "points behind it. Selection by teacher pass rate does not pay here.")
    return " ".join(lines)


def selection_table(rows: list[SelectionRow], cfg: ReportConfig) -> Table:
    s = cfg.selection
    total = next((r.examples for r in rows if r.role == "all traces"), None)
    body = [[r.student, r.role, DASH if r.examples is None else f"{r.examples:,}",
             share(r.examples / total) if r.examples and total else DASH, f"{r.pass_at_1:.1f} {interval(r.ci95)}",
             "reference" if r.role == "all traces" else difference(r.vs_all),
             difference(r.vs_random) if r.role == "selected" else DASH] for r in rows]
    return Table(["student", "data", "traces", "share of all", "pass@1 (95% CI)", f"vs {s.reference} (paired 95% CI)",
                  f"vs {s.random or 'random'} (paired 95% CI)"], body,
                 numeric=[False, False, True, True, True, True, True])


def selection_plot(rows: list[SelectionRow], bench: str, run_dir: Path) -> str | None:
    shown = [r for r in rows if r.examples]
    if not shown:
        return None
    colors = {"all traces": "black", "random": "C0", "selected": "C2"}
    selected = sorted((r for r in shown if r.role == "selected"), key=lambda r: r.examples)
    line = ([r.examples for r in selected], [r.pass_at_1 for r in selected]) if len(selected) > 1 else None
    points = [(r.examples, r.pass_at_1, r.ci95, colors[r.role], f"{r.student} ({r.role})") for r in shown]
    return pass_at_1_on_log_x(points, "training traces", bench, run_dir / "selection.png", line)


def selection_blocks(inputs: Inputs, cfg: ReportConfig, run_dir: Path) -> list[Block]:
    if cfg.selection is None:
        return []
    bench = cfg.selection.benchmark or inputs.benchmarks[0]
    rows = selection_rows(inputs, cfg)
    blocks: list[Block] = [Heading("Selection by difficulty"), Paragraph(
        f"Students trained with the same steps on traces chosen by the teacher's pass rate per prompt, on {bench}: "
        f"against {cfg.selection.reference} (all traces) and {cfg.selection.random or 'random traces'} (as many traces, "
        f"drawn at random), paired bootstrap over the problems both answered ({cfg.bootstrap.resamples:,} resamples)."),
        selection_table(rows, cfg)]
    text = verdict(rows, inputs, cfg)
    if text:
        blocks.append(Paragraph(text))
    plot = selection_plot(rows, bench, run_dir)
    if plot:
        blocks.append(Image(plot, f"{bench} pass@1 against training traces: selected, random and all; 95% CIs"))
    return blocks

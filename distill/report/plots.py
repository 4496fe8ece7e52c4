"""PNG plots of the report (matplotlib's object API: no pyplot state, no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from distill.report.loading import Inputs
from distill.report.tables import params

TEACHER_COLOR = "black"
REFERENCE_COLOR = "0.55"
DPI = 100


def student_colors(inputs: Inputs) -> dict[str, str]:
    palette = [f"C{i}" for i in range(10)]
    return {m.name: palette[i % len(palette)] for i, m in enumerate(inputs.students)} | {inputs.teacher.name: TEACHER_COLOR}


def grid(count: int, width: float = 6.0, height: float = 4.2) -> tuple[Figure, list]:
    cols = min(count, 2)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(width * cols, height * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for extra in axes[count:]:
        extra.set_visible(False)
    return fig, axes[:count]


def save(fig: Figure, path: Path) -> str:
    fig.savefig(path, format="png", dpi=DPI)
    return path.name


def pass_at_1_on_log_x(points: list[tuple[float, float, tuple[float, float], str, str]], xlabel: str, bench: str,
                       path: Path, line: tuple[list[float], list[float]] | None = None) -> str:
    """pass@1 with its CI against a log-scaled x (cost, data size): points are (x, pass@1, ci95, color, label); `line`
    joins a series of them."""
    fig = Figure(figsize=(6.5, 4.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    if line is not None:
        ax.plot(*line, color="C2", lw=1, alpha=0.6)
    for x, pass_at_1, ci95, color, label in points:
        ax.errorbar([x], [pass_at_1], yerr=[[pass_at_1 - ci95[0]], [ci95[1] - pass_at_1]], fmt="o", color=color,
                    capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{bench} pass@1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def dodged(size: float, index: int, inputs: Inputs) -> float:
    """Students of the same size side by side instead of on top of each other (a small step on the log axis)."""
    same = [i for i, m in enumerate(inputs.students) if m.params == size]
    return size * 1.08 ** (same.index(index) - (len(same) - 1) / 2)


def score_vs_size(inputs: Inputs, run_dir: Path) -> str:
    """Students' pass@1 (95% CI as error bars) against their size; the teacher as a line with its CI band;
    published students as hollow markers and the published teacher as a dashed line."""
    colors = student_colors(inputs)
    fig, axes = grid(len(inputs.benchmarks))
    sized = all(m.params for m in inputs.students)
    for ax, bench in zip(axes, inputs.benchmarks):
        teacher = inputs.teacher.benchmarks[bench]
        ax.axhline(teacher.pass_at_1, color=TEACHER_COLOR, lw=1.5, label=f"{inputs.teacher.name} (teacher)")
        ax.axhspan(*teacher.ci95, color=TEACHER_COLOR, alpha=0.1, lw=0)
        for i, m in enumerate(inputs.students):
            r = m.benchmarks.get(bench)
            if r is None:
                continue
            x = dodged(m.params, i, inputs) if sized else i
            ax.errorbar([x], [r.pass_at_1], yerr=[[r.pass_at_1 - r.ci95[0]], [r.ci95[1] - r.pass_at_1]],
                        fmt="o", color=colors[m.name], capsize=4, label=m.name)
        if inputs.references and sized:
            for name, ref in inputs.references.models.items():
                score = ref.scores.get(bench, {}).get("pass@1")
                if score is None:
                    continue
                if ref.role == "teacher":
                    ax.axhline(score, color=REFERENCE_COLOR, ls="--", lw=1, label=f"{name} (published)")
                elif ref.params_b:
                    ax.plot([ref.params_b * 1e9], [score], "o", mfc="none", color=REFERENCE_COLOR,
                            label="published students" if "published students" not in ax.get_legend_handles_labels()[1]
                            else None)
        if sized:
            ax.set_xscale("log")
            # At least a decade either side, so that one size (the toy students) still gets a labelled tick.
            sizes = [dodged(m.params, i, inputs) for i, m in enumerate(inputs.students)]
            sizes += [ref.params_b * 1e9 for ref in (inputs.references.models.values() if inputs.references else [])
                      if ref.role == "student" and ref.params_b and bench in ref.scores]
            ax.set_xlim(min(sizes) / 3, max(sizes) * 3)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: params(v)))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("student parameters")
        else:
            ax.set_xticks(range(len(inputs.students)), [m.name for m in inputs.students], rotation=20)
            ax.set_xlim(-0.5, len(inputs.students) - 0.5)
        ax.set_ylabel("pass@1 (%)")
        ax.set_title(bench)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return save(fig, run_dir / "score_vs_size.png")


def pass_at_k(inputs: Inputs, run_dir: Path) -> str:
    colors = student_colors(inputs)
    fig, axes = grid(len(inputs.benchmarks))
    for ax, bench in zip(axes, inputs.benchmarks):
        for m in inputs.models:
            r = m.benchmarks.get(bench)
            if r is None or not r.pass_at_k:
                continue
            ks = sorted(r.pass_at_k, key=int)
            ax.plot([int(k) for k in ks], [r.pass_at_k[k] for k in ks], marker="o", color=colors[m.name],
                    lw=2 if m.role == "teacher" else 1.5, label=m.name + (" (teacher)" if m.role == "teacher" else ""))
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("k (samples per problem)")
        ax.set_ylabel("pass@k (%)")
        ax.set_title(bench)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return save(fig, run_dir / "pass_at_k.png")


def response_lengths(inputs: Inputs, run_dir: Path) -> str:
    """Box per model: median, quartiles, whiskers at the 5th and 95th percentiles, the mean as a diamond."""
    colors = student_colors(inputs)
    fig, axes = grid(len(inputs.benchmarks), height=max(2.5, 0.6 * len(inputs.models) + 1.5))
    for ax, bench in zip(axes, inputs.benchmarks):
        shown = [m for m in inputs.models if bench in m.benchmarks and m.lengths(bench)]
        data = [m.lengths(bench) for m in shown]
        boxes = ax.boxplot(data, orientation="horizontal", tick_labels=[m.name for m in shown], whis=(5, 95),
                           showfliers=False, showmeans=True, patch_artist=True,
                           meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black"})
        for patch, m in zip(boxes["boxes"], shown):
            patch.set_facecolor(colors[m.name])
            patch.set_alpha(0.35 if m.role == "student" else 0.2)
        ax.invert_yaxis()   # teacher on top
        ax.set_xlabel("response length (tokens)")
        ax.set_title(bench)
        ax.grid(alpha=0.3, axis="x")
    return save(fig, run_dir / "response_lengths.png")


def loss_curves(inputs: Inputs, run_dir: Path) -> str | None:
    trained = [m for m in inputs.students if m.training and m.training.metrics]
    if not trained:
        return None
    colors = student_colors(inputs)
    fig = Figure(figsize=(7, 4.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for m in trained:
        ax.plot([r["step"] for r in m.training.metrics], [r["loss"] for r in m.training.metrics], color=colors[m.name],
                label=m.name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return save(fig, run_dir / "loss_curves.png")

"""The teacher's pass rate per prompt, kept and dropped, for each curation (curation.json's `pass_rates`)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from distill.report.document import Table
from distill.report.loading import CurationRun
from distill.report.tables import DASH, share


def with_rates(runs: list[CurationRun]) -> list[CurationRun]:
    return [run for run in runs if getattr(run.curation, "pass_rates", None) is not None]


def bin_labels(edges: list[float]) -> list[str]:
    last = len(edges) - 2
    return [f"[{lo:.1f}, {hi:.1f}{']' if i == last else ')'}" for i, (lo, hi) in enumerate(zip(edges, edges[1:]))]


def pass_rate_table(runs: list[CurationRun]) -> Table:
    """One row per pass-rate bin (and the exact ends); per curation the prompts kept and dropped."""
    shown = with_rates(runs)
    edges = shown[0].curation.pass_rates.edges
    rows = []
    for i, label in enumerate(bin_labels(edges)):
        row = [label]
        for run in shown:
            h = run.curation.pass_rates
            row += [f"{h.kept[i]:,}", f"{h.dropped[i]:,}"] if h.edges == edges else [DASH, DASH]
        rows.append(row)
    for end, label in (("never_solved", "exactly 0 (never solved)"), ("always_solved", "exactly 1 (always solved)")):
        rows.append([label] + [f"{getattr(run.curation.pass_rates, end).get(side, 0):,}" for run in shown
                               for side in ("kept", "dropped")])
    rows.append(["prompts with a pass rate"] + [cell for run in shown for cell in (
        f"{run.curation.pass_rates.prompts:,}", f"mean {run.curation.pass_rates.mean:.2f}"
        if run.curation.pass_rates.mean is not None else DASH)])
    headers = ["teacher pass rate"] + [f"{run.name}: {side}" for run in shown for side in ("kept", "dropped")]
    return Table(headers, rows)


def difficulty_table(runs: list[CurationRun]) -> Table | None:
    """The teacher's mean pass rate and the acceptance rate per difficulty (metadata `difficulty`), where recorded."""
    rows = []
    for run in with_rates(runs):
        for difficulty, counts in run.curation.per_difficulty.items():
            if "mean_pass_rate" in counts:
                rows.append([run.name, difficulty, f"{counts['mean_pass_rate']:.2f}", share(counts.get("acceptance_rate"))])
    if not rows:
        return None
    return Table(["curation", "difficulty", "teacher pass rate (mean over prompts)", "traces kept"], rows)


def pass_rate_plot(runs: list[CurationRun], run_dir: Path) -> str | None:
    shown = with_rates(runs)
    if not shown:
        return None
    cols = min(len(shown), 3)
    rows = -(-len(shown) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), dpi=100, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for extra in axes[len(shown):]:
        extra.set_visible(False)
    for ax, run in zip(axes, shown):
        h = run.curation.pass_rates
        centers = [(lo + hi) / 2 for lo, hi in zip(h.edges, h.edges[1:])]
        width = (h.edges[1] - h.edges[0]) * 0.9
        ax.bar(centers, h.kept, width=width, color="C2", label="kept")
        ax.bar(centers, h.dropped, width=width, bottom=h.kept, color="C3", alpha=0.7, label="dropped")
        ax.set_xlim(0, 1)
        ax.set_xlabel("teacher pass rate (correct / verified samples)")
        ax.set_ylabel("prompts")
        ax.set_title(run.name)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize="small")
    path = run_dir / "pass_rates.png"
    fig.savefig(path, format="png", dpi=100)
    return path.name

"""Tables of the report: scores per benchmark, the summary, the data, training and provenance."""

from __future__ import annotations

import math

from distill.progress import fmt_count, fmt_duration
from distill.report.document import Table
from distill.report.loading import CurationRun, Inputs, ModelRun, Provenance
from distill.report.stats import Headline, PairedDifference, share_of

DASH = "—"
SHOWN_VERSIONS = ("distill", "python", "torch", "transformers", "trl", "vllm", "lm-eval", "math-verify")


def points(value: float | None) -> str:
    return DASH if value is None or math.isnan(value) else f"{value:.1f}"


def interval(ci, signed: bool = False) -> str:
    if ci is None:
        return DASH
    form = "{:+.1f}" if signed else "{:.1f}"
    return f"[{form.format(ci[0])}, {form.format(ci[1])}]"


def share(value: float | None) -> str:
    return DASH if value is None else f"{100 * value:.1f}%"


def params(count: float | None) -> str:
    if count is None:
        return DASH
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.3g}{unit}"
    return f"{count:.0f}"


def difference(d: PairedDifference | dict | None) -> str:
    if d is None:
        return DASH
    diff, ci = (d.diff, d.ci95) if isinstance(d, PairedDifference) else (d["diff"], d["ci95"])
    return f"{diff:+.1f} {interval(ci, signed=True)}"


def reference_teacher_scores(inputs: Inputs, bench: str) -> dict[str, float]:
    if not inputs.references:
        return {}
    for model in inputs.references.models.values():
        if model.role == "teacher" and bench in model.scores:
            return model.scores[bench]
    return {}


def benchmark_table(inputs: Inputs, headline: Headline, bench: str) -> Table:
    """Teacher, students and published references on one benchmark."""
    rows = []
    for name, r in headline.rows[bench].items():
        cons = DASH if r["cons@n"] is None else f"{r['cons@n']:.1f} (n={r['n']})"
        length = DASH if r["mean_length"] is None else f"{r['mean_length']:.0f}"
        rows.append([name, r["role"], params(r["params"]), points(r["pass@1"]), interval(r["ci95"]),
                     share(r["share_of_teacher"]) if r["role"] == "student" else DASH, cons, length,
                     difference(r.get("vs_teacher"))])
    published_teacher = reference_teacher_scores(inputs, bench).get("pass@1")
    for name, model in (inputs.references.models.items() if inputs.references else []):
        scores = model.scores.get(bench)
        if not scores:
            continue
        cons_key = next((k for k in scores if k.startswith("cons@")), None)
        cons = f"{scores[cons_key]:.1f} (n={cons_key.removeprefix('cons@')})" if cons_key else DASH
        rows.append([f"{name} (published)", model.role, params(model.params_b * 1e9 if model.params_b else None),
                     points(scores.get("pass@1")), DASH,
                     share(share_of(scores.get("pass@1"), published_teacher)) if model.role == "student" else DASH,
                     cons, DASH, DASH])
    return Table(["model", "role", "params", "pass@1", "95% CI", "share of teacher", "cons@n", "mean length (tokens)",
                  "student − teacher (paired 95% CI)"], rows, numeric=[False, False] + [True] * 7)


def summary_table(inputs: Inputs, headline: Headline) -> Table:
    """One row per model: pass@1 with its CI and the share of the teacher on every benchmark."""
    headers = ["model", "params"]
    for bench in inputs.benchmarks:
        headers += [f"{bench} pass@1 (95% CI)", f"{bench} share of teacher"]
    rows = []
    for model in inputs.models:
        row = [model.name, params(model.params)]
        for bench in inputs.benchmarks:
            r = headline.rows[bench].get(model.name)
            if r is None:
                row += [DASH, DASH]
            else:
                row += [f"{points(r['pass@1'])} {interval(r['ci95'])}",
                        share(r["share_of_teacher"]) if model.role == "student" else DASH]
        rows.append(row)
    return Table(headers, rows)


def comparisons_table(headline: Headline) -> Table:
    rows = [[c.benchmark, c.better, c.worse, f"{c.diff:+.1f}", interval(c.ci95, signed=True), str(c.problems),
             "yes" if c.excludes_zero else "no"] for c in headline.comparisons]
    return Table(["benchmark", "model", "vs", "pass@1 difference", "paired 95% CI", "problems", "CI excludes 0"], rows,
                 numeric=[False, False, False, True, True, True, False])


def _overview_column(run: CurationRun) -> list[str]:
    c, g = run.curation, run.generation
    cost = c.generation_cost_usd if c.generation_cost_usd is not None else (g.cost_usd if g else None)
    per_trace = c.cost_per_accepted_trace_usd
    if per_trace is None and cost and c.accepted:
        per_trace = cost / c.accepted
    generated = [f"{g.traces:,}", f"{g.failed:,}", fmt_count(g.prompt_tokens), fmt_count(g.completion_tokens),
                 fmt_duration(g.wall_seconds)] if g else [DASH] * 5
    return generated + [f"{c.traces:,}", f"{c.accepted:,}", f"{c.rejected:,}", share(c.acceptance_rate),
                        fmt_count(c.tokens_kept), DASH if cost is None else f"${cost:,.2f}",
                        DASH if per_trace is None else f"${per_trace:,.4f}"]


OVERVIEW_ROWS = ["samples generated", "generation failures", "prompt tokens (once per prompt)",
                 "completion tokens generated", "generation wall time", "traces curated", "accepted", "rejected",
                 "acceptance rate", "tokens in accepted traces", "estimated generation cost", "cost per accepted trace"]


def data_overview_table(runs: list[CurationRun]) -> Table:
    """One column per curation; the generation rows repeat when curations share their generation run."""
    columns = [_overview_column(run) for run in runs]
    rows = [[label, *(column[i] for column in columns)] for i, label in enumerate(OVERVIEW_ROWS)]
    return Table(["", *(run.name for run in runs)], rows)


def rejection_table(runs: list[CurationRun]) -> Table:
    reasons = list(dict.fromkeys(reason for run in runs for reason in run.curation.rejected_by_reason))
    rows = []
    for reason in reasons:
        cells = []
        for run in runs:
            count, total = run.curation.rejected_by_reason.get(reason, 0), run.curation.traces
            cells.append(f"{count:,} ({share(count / total if total else None)})")
        rows.append([reason, *cells])
    return Table(["rejected because", *(f"{run.name}: traces (share)" for run in runs)], rows)


def source_table(runs: list[CurationRun]) -> Table:
    rows = []
    for run in runs:
        for source, counts in run.curation.per_source.items():
            kept, rejected = int(counts.get("kept", 0)), int(counts.get("rejected", 0))
            rows.append([run.name, source, f"{kept:,}", f"{rejected:,}",
                         share(kept / (kept + rejected) if kept + rejected else None)])
    return Table(["curation", "source", "accepted", "rejected", "acceptance rate"], rows, numeric=[False, False, True, True, True])


def training_table(students: list[ModelRun]) -> Table:
    rows = []
    for m in students:
        if not m.training:
            continue
        s = m.training.summary
        rows.append([m.name, f"{s.steps:,}", DASH if s.examples is None else f"{s.examples:,}",
                     DASH if s.tokens is None else fmt_count(s.tokens),
                     DASH if s.final_loss is None else f"{s.final_loss:.4f}", fmt_duration(s.wall_seconds), params(s.parameters)])
    return Table(["student", "steps", "examples", "tokens seen", "final loss", "wall time", "parameters"], rows)


def student_sources_table(students: list[ModelRun]) -> Table | None:
    """Each student's training rows per source (train_summary.json's `sources`; absent in runs written before it)."""
    rows = []
    for m in students:
        for entry in (getattr(m.training.summary, "sources", None) or []) if m.training else []:
            e = entry if isinstance(entry, dict) else entry.model_dump()
            tokens, token_share = e.get("tokens"), e.get("token_share")
            rows.append([m.name, str(e.get("name", DASH)), str(e.get("source", DASH)), str(e.get("split") or DASH),
                         f"{e.get('rows', 0):,}", DASH if tokens is None else fmt_count(tokens), share(e.get("share")),
                         share(token_share)])
    if not rows:
        return None
    return Table(["student", "source", "path or id", "split", "rows", "tokens", "share of rows", "share of tokens"], rows,
                 numeric=[False, False, False, False, True, True, True, True])


def provenance_table(items: list[Provenance]) -> Table:
    rows = []
    for p in items:
        m = p.manifest
        if m is None:
            rows.append([p.what, str(p.path), "no manifest"] + [DASH] * 5)
            continue
        shown = ", ".join(f"{k} {m.versions[k]}" for k in SHOWN_VERSIONS if k in m.versions)
        commit = m.git_commit
        short = DASH if not commit else commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")
        rows.append([p.what, str(p.path), m.status, short, m.config_hash or DASH, m.started or DASH, m.ended or DASH,
                     shown or DASH])
    return Table(["input", "directory", "status", "git commit", "config hash", "started", "ended", "versions"], rows,
                 numeric=[False] * 8)

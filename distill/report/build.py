"""`distill report REPORT.yaml`: evaluation, curation and training runs -> report.md, report.html, PNGs."""

from __future__ import annotations

import json
from pathlib import Path

from distill.config import load_config
from distill.io import atomic_write_json, atomic_write_text
from distill.progress import say
from distill.report import methods, passrates, plots, selection, tables
from distill.report.config import ReportConfig
from distill.report.document import Block, Details, Heading, Image, Paragraph
from distill.report.html import render_html
from distill.report.loading import Inputs, load_inputs
from distill.report.markdown import render_markdown
from distill.report.stats import Headline, headline
from distill.runs import Run, replacing


def as_config(report: ReportConfig | str | Path) -> ReportConfig:
    return report if isinstance(report, ReportConfig) else load_config(report, ReportConfig)


def headline_numbers(report: ReportConfig | str | Path) -> dict:
    """{"benchmarks": {bench: {model: {"pass@1", "ci95", "share_of_teacher", "vs_teacher": {"diff", "ci95"}, ...}}},
    "comparisons": [{"better", "worse", "benchmark", "diff", "ci95", "excludes_zero", ...}]}; points are percent,
    share_of_teacher a fraction. The same numbers the report shows (also written to headline.json)."""
    cfg = as_config(report)
    return headline(load_inputs(cfg), cfg).to_dict()


def summary_markdown(report: ReportConfig | str | Path) -> str:
    """The report's summary in Markdown: the main table (every model's pass@1, CI and share of the teacher per
    benchmark) and, where the config names comparisons, the paired differences between students."""
    cfg = as_config(report)
    inputs = load_inputs(cfg)
    return render_markdown(summary_blocks(inputs, headline(inputs, cfg), cfg)).strip()


def summary_blocks(inputs: Inputs, numbers: Headline, cfg: ReportConfig | None = None) -> list[Block]:
    blocks: list[Block] = [tables.summary_table(inputs, numbers)]
    if numbers.comparisons:
        blocks += [Paragraph("Paired differences between students (bootstrap over the problems both answered):"),
                   tables.comparisons_table(numbers)]
    if cfg is not None and cfg.methods is not None:
        blocks += [Paragraph("Methods at their cost (teacher tokens generated or scored, student steps summed over "
                             "continued runs):"), methods.method_table(methods.method_rows(inputs, cfg), cfg.methods.control)]
    if cfg is not None and cfg.selection is not None:
        rows = selection.selection_rows(inputs, cfg)
        blocks += [Paragraph("Selection by teacher pass rate (same steps; paired differences):"),
                   selection.selection_table(rows, cfg)]
        verdict = selection.verdict(rows, inputs, cfg)
        blocks += [Paragraph(verdict)] if verdict else []
    return blocks


def protocol_text(inputs: Inputs) -> str:
    p = inputs.teacher.results.protocol
    parts = [f"{key} {p[key]}" for key in ("temperature", "top_p", "max_tokens") if p.get(key) is not None]
    suite = inputs.teacher.results.suite
    return (f"Suite {suite}" if suite else "Sampling") + (f": {', '.join(parts)}." if parts else ".")


def score_blocks(inputs: Inputs, numbers: Headline, cfg: ReportConfig) -> list[Block]:
    blocks: list[Block] = [Heading("Summary"), *summary_blocks(inputs, numbers)]  # the methods table has its own section
    blocks += [Heading("Benchmarks"), Paragraph(
        "pass@1: the mean over n samples per problem, in percent, with its 95% CI; share of teacher: the student's "
        "pass@1 divided by the teacher's; cons@n: majority vote over n samples; student − teacher: the pass@1 "
        f"difference in points, with a paired bootstrap CI over problems ({cfg.bootstrap.resamples:,} resamples). "
        + (f"Published rows: {inputs.references.source}." if inputs.references else ""))]
    for bench in inputs.benchmarks:
        r = inputs.teacher.benchmarks[bench]
        blocks += [Heading(bench, 3), Paragraph(f"{r.problems:,} problems, {r.samples:,} teacher samples."),
                   tables.benchmark_table(inputs, numbers, bench)]
    return blocks


def plot_blocks(inputs: Inputs, run_dir: Path) -> list[Block]:
    return [
        Heading("Plots"),
        Image(plots.score_vs_size(inputs, run_dir),
              "pass@1 against student size, 95% CIs as error bars; the teacher as a line with its CI band"),
        Image(plots.pass_at_k(inputs, run_dir), "pass@k (unbiased estimate) against k"),
        Image(plots.response_lengths(inputs, run_dir),
              "response lengths: median, quartiles, 5th-95th percentile whiskers, mean as a diamond"),
    ]


def data_blocks(inputs: Inputs, run_dir: Path) -> list[Block]:
    if not inputs.curations:
        return []
    generations = sorted({str(run.generation_dir) for run in inputs.curations})
    described = ", ".join(f"{run.name} ({run.dir})" for run in inputs.curations)
    return [Heading("Data"), Paragraph(f"Teacher traces from {', '.join(generations)}; curations: {described}."),
            tables.data_overview_table(inputs.curations), tables.rejection_table(inputs.curations),
            tables.source_table(inputs.curations), *pass_rate_blocks(inputs, run_dir)]


def pass_rate_blocks(inputs: Inputs, run_dir: Path) -> list[Block]:
    if not passrates.with_rates(inputs.curations):
        return []
    blocks: list[Block] = [Heading("Teacher pass rate per prompt", 3), Paragraph(
        "Per curation, prompts by the teacher's pass rate over its samples (correct / verified): kept prompts have a "
        "trace in the training set, dropped ones none (never solved, or out of the selection's band or subset)."),
        passrates.pass_rate_table(inputs.curations)]
    by_difficulty = passrates.difficulty_table(inputs.curations)
    if by_difficulty:
        blocks.append(by_difficulty)
    plot = passrates.pass_rate_plot(inputs.curations, run_dir)
    if plot:
        blocks.append(Image(plot, "prompts by teacher pass rate, kept (green) and dropped (red), per curation"))
    return blocks


def method_blocks(inputs: Inputs, cfg: ReportConfig, run_dir: Path) -> list[Block]:
    if cfg.methods is None:
        return []
    bench = cfg.methods.benchmark or inputs.benchmarks[0]
    rows = methods.method_rows(inputs, cfg)
    blocks: list[Block] = [Heading("Methods"), Paragraph(
        f"Each student's distillation method (a chain when it continued another student), on {bench}: teacher tokens "
        "spent (generated for the SFT data, counted once, plus scored on-policy), student steps and training time "
        f"summed over the chain, pass@1 with its 95% CI, and the paired difference to {cfg.methods.control}."),
        methods.method_table(rows, cfg.methods.control)]
    plot = methods.method_plot(rows, bench, run_dir)
    if plot:
        blocks.append(Image(plot, f"{bench} pass@1 against teacher tokens spent, per method; 95% CIs as error bars"))
    return blocks


def training_blocks(inputs: Inputs, run_dir: Path) -> list[Block]:
    if not any(m.training for m in inputs.students):
        return []
    blocks: list[Block] = [Heading("Training"), tables.training_table(inputs.students)]
    sources = tables.student_sources_table(inputs.students)
    if sources:
        blocks += [Paragraph("Training rows and tokens per data source (tokens: one pass over the rows, cut at "
                             "max_length):"), sources]
    curves = plots.loss_curves(inputs, run_dir)
    if curves:
        blocks.append(Image(curves, "training loss per logged step"))
    return blocks


def provenance_blocks(inputs: Inputs) -> list[Block]:
    blocks: list[Block] = [Heading("Provenance"), tables.provenance_table(inputs.provenance)]
    if inputs.references:
        blocks.append(Paragraph(f"Published references: {inputs.references.source}."))
    for p in inputs.provenance:
        if p.config_text:
            blocks.append(Details(f"config.yaml of {p.what} ({p.path})", p.config_text, "yaml"))
        if p.manifest:
            blocks.append(Details(f"manifest.json of {p.what}", json.dumps(p.manifest.model_dump(mode="json"), indent=2),
                                  "json"))
    return blocks


def own_provenance(run: Run) -> Paragraph:
    m = run.manifest
    return Paragraph(f"This report: written {m.started} from config hash {m.config_hash} at git commit "
                     f"{m.git_commit or 'unknown'}, distill {m.versions.get('distill', 'unknown')}.")


def build_report(cfg: ReportConfig) -> Path:
    """Write the report to cfg.run_dir, replacing it whole once everything is written; returns report.html."""
    inputs = load_inputs(cfg)
    numbers = headline(inputs, cfg)
    final = Path(cfg.run_dir)
    with replacing(final, "report", cfg, "run_dir") as run:
        staging = run.dir
        blocks: list[Block] = [Heading(cfg.title, 1), Paragraph(
            f"Teacher: {inputs.teacher.name}. Students: {', '.join(m.name for m in inputs.students)}. "
            + protocol_text(inputs))]
        blocks += score_blocks(inputs, numbers, cfg)
        blocks += plot_blocks(inputs, staging)
        blocks += method_blocks(inputs, cfg, staging)
        blocks += selection.selection_blocks(inputs, cfg, staging)
        blocks += data_blocks(inputs, staging)
        blocks += training_blocks(inputs, staging)
        blocks += provenance_blocks(inputs)
        blocks.append(own_provenance(run))

        atomic_write_text(staging / "report.md", render_markdown(blocks))
        atomic_write_text(staging / "report.html", render_html(blocks, cfg.title, staging))
        atomic_write_text(staging / "summary.md", render_markdown(summary_blocks(inputs, numbers, cfg)).strip() + "\n")
        atomic_write_json(staging / "headline.json", numbers.to_dict())
        run.finish(models=len(inputs.models), benchmarks=len(inputs.benchmarks))
        for path in staging.iterdir():  # atomic writes create files readable by their owner only; a report is for sharing
            path.chmod(0o644)
    say(f"[report] {len(inputs.students)} students vs {inputs.teacher.name} on {', '.join(inputs.benchmarks)} "
        f"-> {final / 'report.html'} (and report.md)")
    return final / "report.html"

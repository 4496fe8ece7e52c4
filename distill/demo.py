"""`distill demo configs/demo.yaml`: the whole pipeline on the toy world, stage by stage through the real CLI.

teacher (serve + generate k samples per prompt) -> curate (rejection sampling) and an unfiltered copy ->
two students trained side by side -> the curated student trained further, by on-policy distillation from a
stronger same-tokenizer teacher and, as the control, by as many SFT steps; and selection by difficulty: k samples
per prompt on a second run give each prompt a teacher pass rate, and four students train with the same steps on all
correct traces, on the pass-rate band, on as many random traces and on a hardest-first half -> eval of the teacher
and the eight students -> report. Each stage is the
same `distill <stage>` command a user runs; this module only chains them, times them and checks the
outcome that distillation is supposed to show.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import Field

from distill.config import Section, read_yaml
from distill.errors import DistillError, UsageError
from distill.progress import fmt_duration, say
from distill.students.methods import DEFAULT_METHOD, training_method


class DemoConfig(Section):
    renamed = {"out": "runs_dir"}

    world: str = "configs/toy-world.yaml"
    teacher: str = "toy/teacher"
    engine: Literal["auto", "vllm", "hf"] = "auto"  # teacher sampling: auto = vllm where .venv-vllm is installed
    serve: str = "teacher/toy-cpu.yaml"  # the vLLM CPU recipe for the toy teacher
    vllm_python: str = ".venv-vllm/bin/python"
    generation: str = "teacher/runs/toy.yaml"
    prompts: int = Field(default=12000, ge=1)  # toy training prompts: the students need thousands of distinct problems
    samples: int = Field(default=1, ge=1)  # k samples per prompt
    sequences_in_flight: int = Field(default=32, ge=1)  # requests x samples: the CPU server's fastest measured batch
    student: str = "students/toy-student.yaml"
    steps: int = Field(default=2200, ge=1)  # per student
    eval_suite: str = "eval/suites/toy.yaml"
    eval_engine: Literal["hf", "vllm"] = "hf"  # hf: in process, no server start-up per model
    eval_limit: int | None = Field(default=None, ge=1)  # held-out problems (default: all)
    eval_samples: int = Field(default=8, ge=1)  # samples per eval problem: the paired CI needs them
    # The second stage: the curated student continued by on-policy distillation, and by SFT (the control).
    on_policy: str = "students/toy-student-on-policy.yaml"
    sft_control: str = "students/toy-student-sft-control.yaml"
    second_teacher: str = "toy/teacher-long"  # the on-policy teacher, built where missing (one-time)
    second_teacher_recipe: str = "students/toy-teacher-long.yaml"
    second_steps: int | None = Field(default=None, ge=1)  # both continuations (default: their recipes' max_steps)
    # Selection by difficulty (issue 15): k samples of each of the first `selection_prompts` training prompts give each
    # a teacher pass rate; students trained with the same steps on all their correct traces, on the prompts inside the
    # band, on as many random traces, and on a hardest-first subset of half as many prompts.
    selection_prompts: int = Field(default=2000, ge=1)
    selection_samples: int = Field(default=4, ge=2)  # a pass rate needs several samples per prompt
    selection_band_max: float = Field(default=0.75, ge=0, le=1)  # prompts the teacher solves more often are dropped
    selection_student: str = "students/toy-student-select.yaml"
    selection_steps: int | None = Field(default=None, ge=1)  # default: the recipe's max_steps
    report: str = "eval/report-toy.yaml"
    runs_dir: str = "runs"  # every run of the demo goes under this directory
    # The demo writes under `out` only. update_readme=true (make demo-readme) also puts the report's summary (table
    # and paired differences) between the demo-table markers of `readme`, a tracked file: off by default.
    update_readme: bool = False
    readme: str = "README.md"
    min_share_of_teacher: float = 0.9  # what the demo checks at the end
    strict: bool = False  # exit non-zero when the checks fail


def distill_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "distill", *args]


def run_stage(title: str, *args: str) -> float:
    say(f"[demo] {title}: distill {' '.join(args)}")
    started = time.time()
    if subprocess.run(distill_cmd(*args)).returncode != 0:
        raise DistillError(f"demo stage '{title}' failed (command: distill {' '.join(args)})")
    return time.time() - started


@contextmanager
def served_teacher(cfg: DemoConfig, engine: str):
    """Overrides that point generation at the teacher: a vLLM server for the duration, or the hf engine."""
    if engine == "hf":
        yield ["engine.kind=hf", f"engine.model={cfg.teacher}"]
        return
    serve_args = [cfg.serve, f"model={cfg.teacher}", f"served_model_name={cfg.teacher}", f"python={cfg.vllm_python}",
                  f"run_dir={Path(cfg.runs_dir) / 'serve'}"]
    run_stage("serve the teacher (vLLM CPU build)", "serve", *serve_args)
    try:
        from distill.config import load_config
        from distill.engines.serve import ServeConfig

        serve = load_config(cfg.serve, ServeConfig, serve_args[1:])
        # A server that dies mid-run should end the demo in minutes, not after the default 10-minute grace.
        yield ["engine.kind=openai", f"engine.model={cfg.teacher}", f"engine.base_urls=[{serve.base_url}]",
               "engine.all_down_timeout_s=120"]
    finally:
        subprocess.run(distill_cmd("serve", *serve_args, "--stop"))


def student_args(cfg: DemoConfig, name: str, recipe: str, source: Path, steps: int | None) -> list[str]:
    args = ["train", recipe, f"name={name}", f"run_dir={Path(cfg.runs_dir) / 'students' / name}", f"data.source={source}"]
    if steps:
        # logging_steps: a loss curve even for short runs
        args += [f"training.max_steps={steps}", f"training.logging_steps={max(1, min(50, steps // 20))}"]
    return args


def train_students(cfg: DemoConfig, runs: dict[str, list[str]]) -> float:
    """Two students at once, one core each (OMP_NUM_THREADS=1): the CPU has two."""
    started = time.time()
    procs = {}
    for name, args in runs.items():
        say(f"[demo] train {name}: distill {' '.join(args)}")
        procs[name] = subprocess.Popen(distill_cmd(*args), env={**os.environ, "OMP_NUM_THREADS": "1"})
    failed = [name for name, proc in procs.items() if proc.wait() != 0]
    if failed:
        raise DistillError(f"demo stage 'train' failed for {', '.join(failed)}")
    return time.time() - started


SELECTION_STUDENTS = ("toy-select-all", "toy-select-band", "toy-select-random", "toy-select-band-half")


def curate_selection(cfg: DemoConfig, generation: list[str], select_dir: Path, timings: dict[str, float]) -> dict[str, Path]:
    """The selection experiment's four curations of one k-samples run, by student name: every correct trace; the
    prompts whose teacher pass rate is at most `selection_band_max`; as many traces drawn at random; and a hardest-first
    subset of half as many prompts from the band."""
    from distill.curate.summary import CurationSummary

    started = time.time()
    outputs = dict(zip(SELECTION_STUDENTS, ("select-all", "select-band", "select-random", "select-band-half")))
    band = [f"curate.selection.pass_rate.max={cfg.selection_band_max}"]
    run_stage("curate all correct traces (selection)", "curate", *generation, "curate.output=select-all")
    run_stage("curate by teacher pass rate (selection)", "curate", *generation, "curate.output=select-band", *band)
    kept = CurationSummary.read(select_dir / "select-band").accepted
    if kept < 2:
        raise DistillError(f"selection: the pass-rate band kept {kept} trace(s) of {select_dir}; raise selection_prompts "
                           "or selection_samples")
    run_stage("curate as many random traces (selection)", "curate", *generation, "curate.output=select-random",
              f"curate.selection.subset.count={kept}", "curate.selection.subset.difficulty=random",
              "curate.selection.subset.length=any")
    run_stage("curate a hardest-first half (selection)", "curate", *generation, "curate.output=select-band-half", *band,
              f"curate.selection.subset.count={kept // 2}")
    timings["curate for selection"] = time.time() - started
    return {name: select_dir / output for name, output in outputs.items()}


def demo(cfg: DemoConfig) -> Path:
    out = Path(cfg.runs_dir)
    engine = cfg.engine if cfg.engine != "auto" else ("vllm" if Path(cfg.vllm_python).exists() else "hf")
    timings: dict[str, float] = {}
    started = time.time()
    if not (Path(cfg.teacher) / "toy_teacher.json").exists():
        timings["toy teacher (one-time build)"] = run_stage("build the toy teacher", "toy-teacher", cfg.world)
    if not (Path(cfg.second_teacher) / "toy_teacher.json").exists():
        timings["second-stage teacher (one-time build)"] = run_stage(
            "build the second-stage teacher", "toy-teacher", cfg.world, f"teacher_recipe={cfg.second_teacher_recipe}",
            f"teacher_dir={cfg.second_teacher}")
    timings["toy world"] = run_stage("toy world", "toy-world", cfg.world)

    run_dir = out / "teacher" / "toy"
    generation = [cfg.generation, f"run_dir={run_dir}", f"prompts.limit={cfg.prompts}", f"sampling.n={cfg.samples}"]
    requests = max(1, cfg.sequences_in_flight // cfg.samples)  # sampling only: curation sends no requests
    in_flight = [f"engine.max_concurrency={requests}", f"engine.per_endpoint_concurrency={requests}"]
    select_dir = out / "teacher" / "toy-select"
    select_generation = [cfg.generation, f"run_dir={select_dir}", f"prompts.limit={cfg.selection_prompts}",
                         f"sampling.n={cfg.selection_samples}"]
    select_requests = max(1, cfg.sequences_in_flight // cfg.selection_samples)
    with served_teacher(cfg, engine) as engine_args:
        timings[f"teacher samples ({engine})"] = run_stage("sample the teacher", "generate", *generation, *in_flight,
                                                            *engine_args)
        timings[f"teacher samples for selection ({engine})"] = run_stage(
            "sample the teacher k times per prompt (selection)", "generate", *select_generation,
            f"engine.max_concurrency={select_requests}", f"engine.per_endpoint_concurrency={select_requests}", *engine_args)
    timings["curate"] = run_stage("curate (rejection sampling)", "curate", *generation)
    timings["unfiltered copy"] = run_stage(
        "all traces, unfiltered", "curate", *generation, "curate.output=unfiltered", "curate.verifier=none",
        "curate.reasoning=false", "curate.min_tokens=0", "curate.max_tokens=null", "curate.dedup=false",
        "curate.language.enabled=false", "curate.repetition.enabled=false", "curate.decontamination.enabled=false")

    selection_sets = curate_selection(cfg, select_generation, select_dir, timings)

    students = {"toy-student-curated": run_dir / "curated", "toy-student-unfiltered": run_dir / "unfiltered"}
    timings["train both students"] = train_students(cfg, {name: student_args(cfg, name, cfg.student, source, cfg.steps)
                                                          for name, source in students.items()})
    start = out / "students" / "toy-student-curated" / "model"
    second = {"toy-student-on-policy": (cfg.on_policy, run_dir / "unfiltered"),  # every prompt; samples its own answers
              "toy-student-sft-control": (cfg.sft_control, run_dir / "curated")}
    timings["continue the curated student"] = train_students(cfg, {
        name: student_args(cfg, name, recipe, source, cfg.second_steps) + [f"model.name_or_path={start}"]
        + ([f"teacher.model={cfg.second_teacher}"]
           if training_method(read_yaml(recipe).get("method", DEFAULT_METHOD)).needs_teacher else [])
        for name, (recipe, source) in second.items()})
    students.update(second)
    names = list(selection_sets)
    for pair in (names[:2], names[2:]):  # two at a time: one core each
        timings[f"train {', '.join(pair)}"] = train_students(cfg, {
            name: student_args(cfg, name, cfg.selection_student, selection_sets[name], cfg.selection_steps) for name in pair})
    students.update(selection_sets)

    eval_args = [f"runs_dir={out / 'eval'}", f"model.engine={cfg.eval_engine}", f"benchmarks.0.samples={cfg.eval_samples}"]
    eval_args += [f"benchmarks.0.limit={cfg.eval_limit}"] if cfg.eval_limit else []
    models = {"toy-teacher": (cfg.teacher, "teacher")}
    models.update({name: (str(out / "students" / name / "model"), "student") for name in students})
    for label, (path, role) in models.items():
        timings[f"eval {label}"] = run_stage(f"eval {label}", "eval", cfg.eval_suite, f"model={path}", f"model.label={label}",
                                             f"model.role={role}", *eval_args)

    curations = [run_dir / "curated", run_dir / "unfiltered", *selection_sets.values()]
    report_args = [f"run_dir={out / 'report' / 'toy'}", f"teacher.eval_dir={out / 'eval' / 'toy-teacher'}",
                   f"curations=[{', '.join(map(str, curations))}]"]
    for index, name in enumerate(students):
        report_args += [f"students.{index}.eval_dir={out / 'eval' / name}", f"students.{index}.train_dir={out / 'students' / name}"]
        if name in second:
            report_args.append(f"students.{index}.continues=toy-student-curated")
    timings["report"] = run_stage("report", "report", cfg.report, *report_args)

    total = time.time() - started
    say("[demo] stage times: " + ", ".join(f"{k} {fmt_duration(v)}" for k, v in timings.items()))
    ok = check_outcome(cfg, cfg.report, report_args)
    report_dir = out / "report" / "toy"
    readme = readme_to_update(cfg)
    if readme is not None:
        update_readme(readme, (report_dir / "summary.md").read_text(encoding="utf-8"))
    say(f"[demo] done in {fmt_duration(total)}; report: {report_dir / 'report.html'} (and report.md)")
    if cfg.strict and not ok:
        raise DistillError("the demo's checks failed (see the lines above)")
    return report_dir


README_START, README_END = "<!-- demo-table:start -->", "<!-- demo-table:end -->"


def readme_to_update(cfg: DemoConfig) -> Path | None:
    """The README the demo rewrites at the end: none unless asked for (update_readme), so a run changes no tracked file."""
    return Path(cfg.readme) if cfg.update_readme else None


def update_readme(readme: Path, table: str) -> None:
    """Put the report's own summary (table and paired differences) between the README's markers (written by code)."""
    from distill.io import atomic_write_text

    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise DistillError(f"{readme}: no {README_START} ... {README_END} markers for the demo's table")
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    mode = readme.stat().st_mode & 0o777
    atomic_write_text(readme, f"{head}{README_START}\n{table.strip()}\n{README_END}{tail}")
    readme.chmod(mode)  # an atomic write creates the file owner-only
    say(f"[demo] {readme}: the demo's table updated")


def check_outcome(cfg: DemoConfig, report: str, report_args: list[str]) -> bool:
    """What distillation must show on the toy: the filtered student near the teacher, and ahead of the unfiltered one;
    the student continued on-policy ahead of the one continued by as many SFT steps. Then what selection by teacher
    pass rate did, where the report has it: a measurement, not a check (it may well not help on the toy)."""
    from distill.config import load_config
    from distill.report.config import ReportConfig
    from distill.report.loading import load_inputs
    from distill.report.selection import selection_rows, verdict
    from distill.report.stats import headline

    report_cfg = load_config(report, ReportConfig, report_args)
    inputs = load_inputs(report_cfg)
    numbers = headline(inputs, report_cfg).to_dict()
    toy = numbers["benchmarks"].get("toy", {})
    if not {"toy-teacher", "toy-student-curated", "toy-student-unfiltered"} <= toy.keys():
        raise UsageError(f"{report}: the demo's checks need benchmark 'toy' for toy-teacher, toy-student-curated and "
                         "toy-student-unfiltered")
    curated, unfiltered, teacher = toy["toy-student-curated"], toy["toy-student-unfiltered"], toy["toy-teacher"]
    share = curated["share_of_teacher"] or 0.0  # None: the teacher scored 0
    share_ok = share >= cfg.min_share_of_teacher
    say(f"[demo] teacher pass@1 {teacher['pass@1']:.1f}%; curated student {curated['pass@1']:.1f}% "
        f"({100 * share:.0f}% of the teacher: {'ok' if share_ok else 'FAILED'}, "
        f"needs {100 * cfg.min_share_of_teacher:.0f}%); unfiltered student {unfiltered['pass@1']:.1f}%")
    ok = share_ok
    for better, worse in (("toy-student-curated", "toy-student-unfiltered"), ("toy-student-on-policy", "toy-student-sft-control")):
        found = next((c for c in numbers["comparisons"] if (c["better"], c["worse"], c["benchmark"]) == (better, worse, "toy")), None)
        if found is None:
            raise UsageError(f"{report}: the demo's checks need the comparison {{better: {better}, worse: {worse}}} on 'toy'")
        lo, hi = found["ci95"]
        passed = found["excludes_zero"] and found["diff"] > 0
        say(f"[demo] {better.removeprefix('toy-student-')} - {worse.removeprefix('toy-student-')}: {found['diff']:+.1f} points "
            f"(paired 95% CI {lo:+.1f} to {hi:+.1f}): {'ok, excludes zero' if passed else 'FAILED, does not exclude zero'}")
        ok = ok and passed
    if report_cfg.selection is not None:
        say(f"[demo] selection: {verdict(selection_rows(inputs, report_cfg), inputs, report_cfg)}")
    return ok

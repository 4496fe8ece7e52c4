"""REPORT.yaml: which evaluation, training and curation runs a report compares."""

from __future__ import annotations

from pydantic import Field, model_validator

from distill.config import Section


class TeacherEntry(Section):
    eval_dir: str                      # an eval run directory (distill/eval/__init__.py documents its layout)
    name: str | None = None            # shown in tables and plots; default: the label in results.json
    params_b: float | None = None      # parameters in billions; default: results.json model.params


class StudentEntry(TeacherEntry):
    train_dir: str | None = None       # the student's training run directory (metrics.jsonl, train_summary.json)
    continues: str | None = None       # the student whose model this run trained further: its steps and teacher cost count too


class MethodsSection(Section):
    """The method table: every student's method, teacher tokens spent and steps, against one control student."""

    control: str                       # a student name: the others' paired differences are taken to it
    benchmark: str | None = None       # default: the first benchmark


class Comparison(Section):
    """A paired bootstrap of `better - worse` pass@1 over the problems both runs answered."""

    better: str                        # a student name (or the teacher's)
    worse: str


class SelectionSection(Section):
    """Selection by difficulty, measured: students trained on selected traces against the all-traces student and
    against one trained on as many random traces (paired differences), and how much selected data matches all."""

    reference: str                     # the student trained on all traces
    random: str | None = None          # the student trained on as many random traces as the (largest) selected one
    selected: list[str] = Field(min_length=1)  # students trained on selected traces, at one or several sizes
    benchmark: str | None = None       # default: the first benchmark


class BootstrapSection(Section):
    resamples: int = Field(10_000, ge=100)
    seed: int = 0


class ReportConfig(Section):
    renamed = {"out_dir": "run_dir", "curation_dir": "curations (a list of curation directories, like RUN/curated)"}

    title: str = "Distillation report"
    run_dir: str                       # replaced whole, atomically, on every run
    teacher: TeacherEntry
    students: list[StudentEntry] = Field(min_length=1)
    # Curation directories (curation.json; `curate.output` of a generation run, like runs/teacher/math/curated), each a
    # column of the data section; the generation run they curated (generate_summary.json) is the directory above.
    curations: list[str] = []
    references: str | None = None      # published scores, e.g. eval/reference/r1-paper.yaml
    benchmarks: list[str] | None = None  # which benchmarks, in which order; default: the teacher's
    comparisons: list[Comparison] = []   # paired differences between students, beside each student vs the teacher
    methods: MethodsSection | None = None  # a table and plot of distillation methods (sft, kd, on-policy) at their cost
    selection: SelectionSection | None = None  # selected vs random vs all traces (issue 15's toy measurements)
    bootstrap: BootstrapSection = BootstrapSection()

    @model_validator(mode="after")
    def _names_known(self) -> ReportConfig:
        explicit = [s.name for s in [self.teacher, *self.students] if s.name]
        if len(explicit) != len(set(explicit)):
            raise ValueError(f"model names must be unique (got {explicit})")
        return self

"""Read the runs a report compares, validated, with one-line errors naming the file at fault."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from distill.config import read_yaml
from distill.errors import UsageError
from distill.curate.summary import CurationSummary
from distill.eval.results import BenchmarkResult, Results
from distill.report.config import ReportConfig, TeacherEntry
from distill.runs import Manifest, validated
from distill.students.summary import TrainSummary
from distill.teacher.summary import GenerateSummary

LAYOUT = "an eval run directory as documented in distill/eval/__init__.py"


class Loose(BaseModel):
    """Published reference scores (not a stage's output): the keys the report reads are checked, the others kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())


class ReferenceModel(Loose):
    params_b: float | None = None
    role: Literal["teacher", "student"] = "student"
    scores: dict[str, dict[str, float]]


class ReferencesFile(Loose):
    source: str
    models: dict[str, ReferenceModel]


@dataclass
class Provenance:
    """What one input directory says about how it was made (config.yaml, manifest.json), if anything."""

    what: str
    path: Path
    config_text: str | None = None
    manifest: Manifest | None = None


@dataclass
class TrainingRun:
    dir: Path
    summary: TrainSummary
    metrics: list[dict[str, Any]]      # metrics.jsonl records that carry a loss


@dataclass
class ModelRun:
    name: str
    role: Literal["teacher", "student"]
    params: float | None               # parameter count
    dir: Path
    results: Results
    training: TrainingRun | None = None
    continues: str | None = None
    _lengths: dict[str, list[int]] = field(default_factory=dict, repr=False)

    @property
    def benchmarks(self) -> dict[str, BenchmarkResult]:
        return self.results.benchmarks

    def lengths(self, benchmark: str) -> list[int]:
        """Response tokens of every sample of `benchmark` (only that column is read: sample files are large)."""
        if benchmark not in self._lengths:
            import pyarrow.parquet as pq

            path = self.dir / "samples" / f"{benchmark}.parquet"
            if not path.is_file():
                raise UsageError(f"{path}: no such file (expected per-sample results in {LAYOUT})")
            try:
                column = pq.read_table(path, columns=["response_tokens"]).column("response_tokens")
            except Exception as exc:  # pyarrow raises several types for missing columns and corrupt files
                raise UsageError(f"{path}: cannot read column response_tokens: {str(exc).splitlines()[0]}") from None
            self._lengths[benchmark] = [int(v) for v in column.to_pylist() if v is not None]
        return self._lengths[benchmark]


@dataclass
class CurationRun:
    name: str                          # the curation's directory name (`curate.output`): curated, unfiltered, ...
    dir: Path
    generation_dir: Path               # the generation run it curated
    curation: CurationSummary
    generation: GenerateSummary | None


@dataclass
class Inputs:
    teacher: ModelRun
    students: list[ModelRun]
    curations: list[CurationRun]
    references: ReferencesFile | None
    benchmarks: list[str]
    provenance: list[Provenance]

    @property
    def models(self) -> list[ModelRun]:
        return [self.teacher, *self.students]

    def model(self, name: str) -> ModelRun:
        return next(m for m in self.models if m.name == name)


def load_training(train_dir: str | Path) -> TrainingRun:
    directory = Path(train_dir)
    summary = TrainSummary.read(directory)
    metrics_path = directory / "metrics.jsonl"
    metrics = []
    if metrics_path.is_file():
        for number, line in enumerate(metrics_path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise UsageError(f"{metrics_path}:{number}: not valid JSON (expected one metrics record per line)") from None
            if isinstance(record, dict) and "loss" in record and "step" in record:
                metrics.append(record)
    return TrainingRun(directory, summary, metrics)


def load_model_run(entry: TeacherEntry, role: Literal["teacher", "student"]) -> ModelRun:
    directory = Path(entry.eval_dir)
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such directory (expected {LAYOUT})")
    results = Results.read(directory)
    training = load_training(entry.train_dir) if getattr(entry, "train_dir", None) else None
    if entry.params_b is not None:
        params = entry.params_b * 1e9
    elif results.model.params is not None:
        params = float(results.model.params)
    elif training is not None and training.summary.parameters:
        params = float(training.summary.parameters)
    else:
        params = None
    return ModelRun(entry.name or results.model.label, role, params, directory, results, training,
                    getattr(entry, "continues", None))


def load_curation(curation_dir: str | Path) -> CurationRun:
    directory = Path(curation_dir)
    curation = CurationSummary.read(directory)
    generation_dir = directory.resolve().parent
    generation = GenerateSummary.read(generation_dir) if (generation_dir / GenerateSummary.FILE).is_file() else None
    return CurationRun(directory.name, directory, generation_dir, curation, generation)


def load_references(path: str | Path) -> ReferencesFile:
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such file (expected published reference scores: source, models)")
    return validated(Path(path), read_yaml(path), ReferencesFile)


def provenance_of(what: str, directory: Path) -> Provenance:
    config = directory / "config.yaml"
    return Provenance(
        what, directory,
        config.read_text(encoding="utf-8") if config.is_file() else None,
        Manifest.read(directory) if (directory / Manifest.FILE).is_file() else None,
    )


def load_inputs(cfg: ReportConfig) -> Inputs:
    teacher = load_model_run(cfg.teacher, "teacher")
    students = [load_model_run(entry, "student") for entry in cfg.students]
    names = [m.name for m in [teacher, *students]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"models named more than once: {', '.join(duplicates)} (set a distinct `name` for each in the report config)")
    for pair in cfg.comparisons:
        for name in (pair.better, pair.worse):
            if name not in names:
                raise UsageError(f"comparisons: unknown model {name!r} (expected one of: {', '.join(names)})")
    student_names = [m.name for m in students]
    for what, name in [("methods.control", cfg.methods and cfg.methods.control)] + [
            (f"students ({m.name}).continues", m.continues) for m in students]:
        if name and name not in student_names:
            raise UsageError(f"{what}: unknown student {name!r} (expected one of: {', '.join(student_names)})")
    selection = cfg.selection
    for what, name in ([("selection.reference", selection.reference), ("selection.random", selection.random)]
                       + [(f"selection.selected.{i}", n) for i, n in enumerate(selection.selected)] if selection else []):
        if name and name not in student_names:
            raise UsageError(f"{what}: unknown student {name!r} (expected one of: {', '.join(student_names)})")
    if cfg.methods:
        untrained = [m.name for m in students if not m.training]
        if untrained:
            raise UsageError(f"methods: the method table needs each student's train_dir (missing for {', '.join(untrained)})")
    benchmarks = cfg.benchmarks or list(teacher.benchmarks)
    missing = [b for b in benchmarks if b not in teacher.benchmarks]
    if missing:
        raise UsageError(f"{teacher.dir / Results.FILE}: the teacher has no results for {', '.join(missing)} "
                         f"(it has: {', '.join(teacher.benchmarks)})")
    curations = [load_curation(path) for path in cfg.curations]
    names = [run.name for run in curations]
    if len(set(names)) != len(names):
        raise UsageError(f"curations: two curation directories share a name ({', '.join(names)}); each is a column")
    references = load_references(cfg.references) if cfg.references else None

    provenance = [provenance_of(f"eval: {m.name}", m.dir) for m in [teacher, *students]]
    provenance += [provenance_of(f"train: {m.name}", m.training.dir) for m in students if m.training]
    for generation_dir in dict.fromkeys(run.generation_dir for run in curations):
        provenance.append(provenance_of("generate", generation_dir))
    provenance += [provenance_of(f"curate: {run.name}", run.dir) for run in curations]
    return Inputs(teacher, students, curations, references, benchmarks, provenance)

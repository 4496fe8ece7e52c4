"""Benchmarks as eval suites name them: each one's lm-eval task YAML, its data, its problems.

Eval draws its samples from them (distill.eval); curation decontaminates against their problems
(distill.curate). Neither stage is imported here.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from distill.config import Section, read_yaml
from distill.hub import loading

DEFAULT_TASKS_DIR = "eval/tasks"


class Benchmark(Section):
    name: str  # the name in results and reports: aime24, math500, ...
    task: str  # an lm-eval task under the suite's tasks_dir (distill_aime24) or a path to a task YAML
    samples: int = Field(default=1, ge=1)  # samples per problem; pass@1 is their mean
    data_files: str | None = None  # local copy instead of the Hub dataset (.json / .jsonl / .jsonl.gz / .parquet)
    max_tokens: int | None = Field(default=None, ge=1)  # instead of the protocol's
    limit: int | None = Field(default=None, ge=1)  # first N problems only (smoke runs)

    @field_validator("data_files")
    @classmethod
    def _exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).expanduser().is_file():
            raise ValueError(f"no such file: {value}")
        return value


def task_yaml(tasks_dir: str, task: str) -> Path | None:
    for candidate in (Path(task), Path(tasks_dir) / f"{task}.yaml"):
        if candidate.suffix == ".yaml" and candidate.is_file():
            return candidate
    return None


def check_tasks(benchmarks: list[Benchmark], tasks_dir: str) -> None:
    """ValueError when two benchmarks share a name or a task YAML is missing."""
    names = [b.name for b in benchmarks]
    if len(set(names)) != len(names):
        raise ValueError(f"benchmark names repeat: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    for bench in benchmarks:
        if task_yaml(tasks_dir, bench.task) is None:
            known = sorted(p.stem for p in Path(tasks_dir).glob("*.yaml"))
            raise ValueError(f"benchmark {bench.name}: unknown task {bench.task!r} "
                             f"(tasks in {tasks_dir}: {', '.join(known) or 'none'})")


class SuiteBenchmarks(BaseModel):
    """The benchmark part of an eval suite; the rest (model, protocol, ...) is eval's `SuiteConfig`."""

    benchmarks: list[Benchmark] = Field(min_length=1)
    tasks_dir: str = DEFAULT_TASKS_DIR

    @model_validator(mode="after")
    def _tasks_exist(self) -> SuiteBenchmarks:
        check_tasks(self.benchmarks, self.tasks_dir)
        return self


def load_task(path: Path) -> dict:
    """A task YAML with its includes and `!function` hooks resolved (lm-eval's loader)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=True)


def with_data_files(task: dict, data_files: str | None) -> dict:
    """The task reading `data_files` (or, without them, the local file a json task names) instead of the Hub."""
    if data_files is None and task.get("dataset_path") == "json":  # a task that only has a local file (the toy)
        data_files = task.get("dataset_kwargs", {}).get("data_files", {}).get("test")
    if data_files is not None:
        kind = "parquet" if data_files.endswith(".parquet") else "json"
        task.update(dataset_path=kind, dataset_name=None, test_split="test",
                    dataset_kwargs={"data_files": {"test": str(Path(data_files).expanduser().resolve())}})
        for unused in ("validation_split", "training_split", "fewshot_split"):
            task.pop(unused, None)
    return task


def suite_problems(suite_path: str, local_files: dict[str, str] | None = None) -> dict[str, list[str]]:
    """{benchmark: problem texts} for every benchmark of an eval suite, loaded as `distill eval` loads them
    (Hub ids by default, `local_files` by benchmark name instead): what curation decontaminates against."""
    from datasets import load_dataset

    raw = read_yaml(suite_path)
    suite = SuiteBenchmarks.model_validate({key: raw[key] for key in ("benchmarks", "tasks_dir") if key in raw})
    problems = {}
    for bench in suite.benchmarks:
        data_files = (local_files or {}).get(bench.name, bench.data_files)
        task = with_data_files(load_task(task_yaml(suite.tasks_dir, bench.task)), data_files)
        with loading(f"benchmark {bench.name} ({suite_path})", str(task["dataset_path"]), "dataset"):
            rows = load_dataset(task["dataset_path"], task.get("dataset_name"), split=task["test_split"],
                                **task.get("dataset_kwargs", {}))
        docs = task["process_docs"](rows) if task.get("process_docs") else rows
        problems[bench.name] = list(docs["problem"])
    return problems

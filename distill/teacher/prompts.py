"""Prompt sources: a Hub dataset, a local JSONL / JSON / parquet file or directory, with a field mapping."""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import load_dataset

from distill.config import looks_like_local_path
from distill.errors import UsageError
from distill.progress import say
from distill.teacher.config import PromptsSection


FIELD = re.compile(r"\{(\w+)\}")  # {problem}, {starter_code}, ...; LaTeX like \\boxed{} is left alone


@dataclass
class Prompt:
    id: str
    problem: str
    answer: str | None = None
    tests: Any = None
    metadata: dict = field(default_factory=dict)

    def messages(self, template: str, system_prompt: str | None, alt_template: str | None = None,
                 alt_field: str | None = None) -> list[dict]:
        if alt_template and alt_field and str(self.metadata.get(alt_field) or "").strip():
            template = alt_template
        values = {**{k: str(v) for k, v in self.metadata.items()}, "problem": self.problem}
        user = FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), template)
        return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": user}]


def _rows(cfg: PromptsSection):
    source = cfg.source
    try:
        if looks_like_local_path(source):
            path = Path(source).expanduser()
            files = sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".json", ".parquet")) if path.is_dir() else [path]
            if not files:
                raise UsageError(f"prompts.source: {source} holds no .jsonl, .json or .parquet files")
            kind = "parquet" if files[0].suffix == ".parquet" else "json"
            return load_dataset(kind, data_files=[str(f) for f in files], split="train")
        return load_dataset(source, cfg.subset, split=cfg.split)
    except UsageError:
        raise
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"prompts.source: cannot load {source!r}: {reason}") from None


def load_prompts(cfg: PromptsSection) -> list[Prompt]:
    rows = _rows(cfg)
    missing = [f"{key} -> {col!r}" for key, col in cfg.fields.items() if col not in rows.column_names]
    if missing:
        raise UsageError(f"prompts.fields: {cfg.source} has no column for {', '.join(missing)} "
                         f"(columns: {', '.join(rows.column_names)})")
    if cfg.limit:
        rows = rows.select(range(min(cfg.limit, len(rows))))
    mapped = set(cfg.fields.values())
    prompts, seen, duplicates = [], set(), 0
    for index, row in enumerate(rows):
        problem = row[cfg.fields["problem"]]
        if not isinstance(problem, str) or not problem.strip():
            raise UsageError(f"prompts.source: {cfg.source}: row {index}: empty or non-text problem")
        if "id" in cfg.fields:
            pid = str(row[cfg.fields["id"]])
            if pid in seen:
                raise UsageError(f"prompts.source: {cfg.source}: row {index}: duplicate id {pid!r}")
        else:
            # No id column: the problem's own hash, stable when the source is reordered or extended.
            pid = "h" + hashlib.sha256(problem.strip().encode()).hexdigest()[:16]
            if pid in seen:
                duplicates += 1
                continue
        seen.add(pid)
        answer = row[cfg.fields["answer"]] if "answer" in cfg.fields else None
        tests = row[cfg.fields["tests"]] if "tests" in cfg.fields else None
        if isinstance(tests, str):
            tests = parse_tests(tests)
        metadata = {k: v for k, v in row.items() if k not in mapped and _plain(v)}
        prompts.append(Prompt(pid, problem, None if answer is None else str(answer), tests, metadata))
    if duplicates:
        say(f"prompts: skipped {duplicates} exact duplicate problems of {cfg.source}")
    return prompts


def parse_tests(text: str) -> Any:
    """Tests stored as a JSON string, or as a Python literal (some LiveCodeBench exports)."""
    try:
        return json.loads(text)
    except ValueError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def source_name(cfg: PromptsSection) -> str:
    if cfg.name:
        return cfg.name
    return Path(cfg.source).stem if looks_like_local_path(cfg.source) else cfg.source

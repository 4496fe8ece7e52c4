"""Prompt sources: a Hub dataset, a local JSONL / JSON / parquet file or directory, with a field mapping.

Local files are read here, not through `datasets`, so that every bad row is one error naming its file and line.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import load_dataset

from distill.io import read_utf8
from distill.config import looks_like_local_path
from distill.errors import UsageError
from distill.hub import load_error
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


def _rows(cfg: PromptsSection) -> tuple[list[str], Iterator[tuple[str, dict]]]:
    """(column names, (where, row) pairs): `where` names the file and line (or the row) for error messages."""
    source = cfg.source
    if looks_like_local_path(source):
        path = Path(source).expanduser()
        files = sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".json", ".parquet")) if path.is_dir() else [path]
        if not files:
            raise UsageError(f"prompts.source: {source} holds no .jsonl, .json or .parquet files")
        rows = [pair for f in files for pair in read_local(f)]
        columns = list(dict.fromkeys(key for _, row in rows for key in row))
        # Every row gets every column (None where absent), in one order, as a table would give them.
        return columns, ((where, {c: row.get(c) for c in columns}) for where, row in rows)
    try:
        dataset = load_dataset(source, cfg.subset, split=cfg.split)
    except Exception as exc:
        error = load_error("prompts.source", source, exc, "dataset")
        if error is not None:
            raise error from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"prompts.source: cannot load {source!r}: {reason}") from None
    return dataset.column_names, ((f"{source}: row {i}", row) for i, row in enumerate(dataset))


def read_local(path: Path) -> list[tuple[str, dict]]:
    """(where, row) for every row of a local .jsonl, .json (a list of objects, or JSON lines) or .parquet file."""
    if path.suffix == ".parquet":
        try:
            return [(f"{path}: row {i}", row) for i, row in enumerate(pq.read_table(path).to_pylist())]
        except (pa.ArrowException, OSError) as exc:
            raise UsageError(f"prompts.source: {path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
    text = read_utf8(path, "prompts.source", "save the file as UTF-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"prompts.source: {path}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        rows = [(f"{path}: item {i}", item) for i, item in enumerate(items)]
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"{path}:{number}", json.loads(line)))
                except ValueError as exc:
                    raise UsageError(f"prompts.source: {path}:{number}: not valid JSON ({exc.msg}, column {exc.colno}); "
                                     "expected one JSON object per line") from None
    for where, row in rows:
        if not isinstance(row, dict):
            raise UsageError(f"prompts.source: {where}: expected a JSON object, got {type(row).__name__} {str(row)[:40]!r}")
    return rows


def load_prompts(cfg: PromptsSection) -> list[Prompt]:
    columns, rows = _rows(cfg)
    missing = [f"{key} -> {col!r}" for key, col in cfg.fields.items() if col not in columns]
    if missing:
        raise UsageError(f"prompts.fields: {cfg.source} has no column for {', '.join(missing)} "
                         f"(columns: {', '.join(columns) or 'none, it holds no rows'})")
    if cfg.limit:
        rows = itertools.islice(rows, cfg.limit)
    mapped = set(cfg.fields.values())
    prompts, seen, duplicates = [], set(), 0
    for where, row in rows:
        problem, pid = problem_and_id(row, cfg.fields, where, "prompts.source")
        if pid in seen:
            if "id" in cfg.fields:
                raise UsageError(f"prompts.source: {where}: duplicate id {pid!r}")
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


def problem_and_id(row: dict, fields: dict[str, str], where: str, key: str) -> tuple[str, str]:
    """A row's problem text and its id: the id column's value, else the problem's own hash (stable when the source is
    reordered or extended). A row without either is one line naming `key` and where the row is."""
    problem = row[fields["problem"]]
    if not isinstance(problem, str) or not problem.strip():
        raise UsageError(f"{key}: {where}: empty or non-text problem ({fields['problem']!r})")
    if "id" not in fields:
        return problem, "h" + hashlib.sha256(problem.strip().encode()).hexdigest()[:16]
    pid = row[fields["id"]]
    if pid is None or isinstance(pid, (dict, list)):
        raise UsageError(f"{key}: {where}: no id ({fields['id']!r} is {json.dumps(pid)[:40]})")
    return problem, str(pid)


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

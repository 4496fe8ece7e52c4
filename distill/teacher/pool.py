"""`distill prompts POOL.yaml`: several prompt pools merged into one prompts file, deduplicated across sources.

Each source is read as `distill generate` reads `prompts.source` (a Hub dataset id, or a local .json / .jsonl /
.parquet file or directory). Problems are offered in priority order (the order of `sources`, then file order) to
`ProblemDeduper`: exact duplicates after normalisation, then near-duplicates by MinHash + LSH; the first copy is
kept. The run directory gets `prompts.jsonl` (what `distill generate RUN.yaml prompts.source=...` reads, with
`id`, `problem`, `answer`, `tests`, `pool_source` and each source's other plain columns) and `pool.json` (rows in
and kept per source, duplicates per source pair, a sample of near-duplicate pairs).
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from distill.config import HubIdOrPath, Section, load_config
from distill.errors import UsageError
from distill.io import atomic_write_text
from distill.progress import say
from distill.runs import Summary, replacing
from distill.teacher import prompts
from distill.teacher.config import PromptsSection
from distill.teacher.pool_dedup import ProblemDeduper, boilerplate_shingles

SCHEMA_FIELDS = ("id", "problem", "answer", "tests")
OUTPUT = "prompts.jsonl"
PROGRESS_EVERY_S = 5.0


class PoolSourceCount(BaseModel):
    name: str
    source: str
    rows_in: int
    kept: int
    exact_duplicates: int
    near_duplicates: int


class SourcePair(BaseModel):
    """Rows of `dropped_source` dropped as copies of rows kept from `kept_source` (the earlier in priority)."""

    kept_source: str
    dropped_source: str
    exact: int
    near: int


class PoolSummary(Summary):
    FILE = "pool.json"
    WRITER = "distill prompts"

    name: str
    output: str
    rows_in: int
    rows_kept: int
    exact_duplicates: int
    near_duplicates: int
    dedup_seconds: float
    rows_per_s: int | None = None
    seconds: float | None = None  # all of it: reading the sources too
    near: dict
    boilerplate_shingles: int
    sources: list[PoolSourceCount]
    pairs: list[SourcePair]  # each dropped row counts once, against the kept row it duplicates
    near_pair_samples: list[dict]  # {similarity, kept: {pool_source, id, problem}, dropped: {...}}


class PoolSource(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # names the source in ids, pool.json and pool_source
    source: HubIdOrPath  # Hub dataset id, or a local .jsonl / .json / .parquet file or directory
    split: str = "train"
    subset: str | None = None
    fields: dict[str, str] = Field(default_factory=lambda: {"problem": "problem"})  # schema field -> source column
    limit: int | None = Field(default=None, ge=1)

    @field_validator("fields")
    @classmethod
    def _fields(cls, fields: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(fields) - set(SCHEMA_FIELDS))
        if unknown:
            raise ValueError(f"unknown schema field(s) {unknown}; expected {', '.join(SCHEMA_FIELDS)}")
        if "problem" not in fields:
            raise ValueError("'problem' must be mapped")
        return fields


class NearDuplicates(Section):
    """MinHash + LSH (datasketch) over character 5-shingles of the normalised problem, the pool's boilerplate left out.
    `python bench/dedup.py --calibrate` on the 8,449 real math problems (MATH train + AIME), with `same_numbers`:
    at 0.7, character 5-shingles merge 74% of heavily reworded copies (two synonyms, two words swapped, numbers
    reformatted) and 57 real pairs with different answers (0.7%, an upper bound: some are one problem with its answer
    written two ways); word 3-shingles merge 60% for the same 57 (word 2: 61% / 64), at three quarters of the CPU
    time. Without `same_numbers`, 66% of copies with one to three numbers changed merge, and 168 different-answer
    pairs. `same_answer` then keeps every different-answer pair apart where the pools have answers."""

    enabled: bool = True
    threshold: float = Field(default=0.7, gt=0, le=1)  # estimated Jaccard similarity of the shingle sets
    shingle: Literal["word", "char"] = "char"
    ngram: int = Field(default=5, ge=1)
    num_perm: int = Field(default=128, ge=16)
    # Merge only problems that hold the same numbers in the same order: one template with other numbers is
    # another problem.
    same_numbers: bool = True
    # Merge only problems whose reference answers agree (when both have one): MATH holds sibling problems that
    # differ in one word ("the value of x" / "of y", "radius" / "center") and share 80-90% of their shingles.
    same_answer: bool = True
    # Shingles in at least this share of the pool's problems are its boilerplate, left out of the comparison (0: none).
    boilerplate_share: float = Field(default=0.01, ge=0, le=1)


class PoolConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    run_dir: str | None = None  # default: runs/prompts/<name>
    # In priority order: of duplicates, the copy of the earliest source is kept.
    sources: list[PoolSource] = Field(min_length=1)
    near: NearDuplicates = Field(default_factory=NearDuplicates)
    pair_samples: int = Field(default=20, ge=0)  # near-duplicate pairs shown in pool.json, per source pair

    @model_validator(mode="after")
    def _check(self) -> PoolConfig:
        names = [s.name for s in self.sources]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"sources: names must differ; repeated: {', '.join(repeated)}")
        if self.run_dir is None:
            self.run_dir = f"runs/prompts/{self.name}"
        return self


def run_prompts_command(config_path: str, overrides: list[str]) -> Path:
    return build_pool(load_config(config_path, PoolConfig, overrides))


def source_rows(index: int, src: PoolSource) -> list[tuple[str, dict]]:
    """(where, row) of one source, read as `distill generate` reads prompts; errors name `sources.<index>`."""
    key = f"sources.{index}"
    try:
        columns, rows = prompts._rows(PromptsSection(source=src.source, split=src.split, subset=src.subset, fields=src.fields))
        rows = list(rows)
    except UsageError as exc:
        raise UsageError(str(exc).replace("prompts.source:", f"{key}.source:", 1)) from None
    if not rows:
        raise UsageError(f"{key}.source: {src.source} holds no rows (an empty pool)")
    missing = [f"{field} -> {column!r}" for field, column in src.fields.items() if column not in columns]
    if missing:
        raise UsageError(f"{key}.fields: {src.source} has no column for {', '.join(missing)} (columns: {', '.join(columns)})")
    return rows[:src.limit] if src.limit else rows


def prompt_row(src: PoolSource, where: str, row: dict, key: str) -> dict[str, Any]:
    """One row of prompts.jsonl: the schema fields under their own names, then the source's other plain columns."""
    problem, pid = prompts.problem_and_id(row, src.fields, where, f"{key}.source")  # ids as generate gives them
    out: dict[str, Any] = {"id": f"{src.name}-{pid}", "problem": problem,
                           "answer": None if "answer" not in src.fields or row[src.fields["answer"]] is None
                           else str(row[src.fields["answer"]]),
                           "tests": row[src.fields["tests"]] if "tests" in src.fields else None, "pool_source": src.name}
    mapped = set(src.fields.values())
    for column, value in row.items():
        if column not in mapped and column not in out and prompts._plain(value):
            out[column] = value
    return out


def build_pool(cfg: PoolConfig) -> Path:
    started = time.time()
    final = Path(cfg.run_dir)
    # Every source read and every row checked before the run directory is touched.
    loaded = [(src, [prompt_row(src, where, row, f"sources.{i}") for where, row in source_rows(i, src)])
              for i, src in enumerate(cfg.sources)]
    for i, (src, rows) in enumerate(loaded):
        repeated = [pid for pid, n in Counter(row["id"] for row in rows).items() if n > 1] if "id" in src.fields else []
        if repeated:
            raise UsageError(f"sources.{i}.fields.id: {src.source} repeats the id {repeated[0].removeprefix(src.name + '-')!r}; "
                             "map a column that names each problem once, or none (ids are then the problem's hash)")
    inputs = [(f"sources.{i}.source", src.source) for i, src in enumerate(cfg.sources)]
    with replacing(final, "prompts", cfg, "run_dir", inputs) as run:
        staging = run.dir
        kept, summary = dedup_sources(cfg, loaded)
        columns = list(dict.fromkeys(c for row in kept for c in row))  # every row gets every column, as a table
        atomic_write_text(staging / OUTPUT, "".join(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False) + "\n"
                                                    for row in kept))
        summary.seconds = round(time.time() - started, 2)
        summary.write(staging)
        run.finish(rows_in=summary.rows_in, rows_kept=summary.rows_kept)
    say(f"[prompts {cfg.name}] {summary.rows_in:,} problems from {len(cfg.sources)} sources -> {summary.rows_kept:,} kept "
        f"({summary.exact_duplicates:,} exact, {summary.near_duplicates:,} near duplicates) in {summary.seconds:.1f}s, "
        f"{summary.rows_per_s or 0:,} rows/s: "
        f"{final / OUTPUT}")
    return final / OUTPUT


def dedup_sources(cfg: PoolConfig, loaded: list[tuple[PoolSource, list[dict]]]) -> tuple[list[dict], PoolSummary]:
    """The kept rows (prompt_row's), in priority order, and pool.json's content."""
    near = cfg.near
    boilerplate = frozenset()
    if near.enabled and near.boilerplate_share > 0:
        boilerplate = boilerplate_shingles([row["problem"] for _, rows in loaded for row in rows], near.shingle, near.ngram,
                                           near.boilerplate_share)
    deduper = ProblemDeduper(near=near.enabled, threshold=near.threshold, shingle=near.shingle, ngram=near.ngram,
                             num_perm=near.num_perm, same_numbers=near.same_numbers, same_answer=near.same_answer,
                             boilerplate=boilerplate)
    kept: list[dict] = []
    pairs: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"exact": 0, "near": 0})
    samples: dict[tuple[str, str], list] = defaultdict(list)
    per_source = []
    total = sum(len(rows) for _, rows in loaded)
    done, last_say, t0 = 0, time.time(), time.time()
    for src, rows in loaded:
        counts = {"exact": 0, "near": 0}
        for out in rows:
            match = deduper.add(out["problem"], out["answer"])
            if match is None:
                kept.append(out)
            else:
                original = kept[match.kept]
                pair = (original["pool_source"], src.name)
                counts[match.kind] += 1
                pairs[pair][match.kind] += 1
                if match.kind == "near" and len(samples[pair]) < cfg.pair_samples:
                    samples[pair].append({"similarity": round(match.similarity, 3),
                                          "kept": {k: original[k] for k in ("pool_source", "id", "problem")},
                                          "dropped": {k: out[k] for k in ("pool_source", "id", "problem")}})
            done += 1
            if time.time() - last_say >= PROGRESS_EVERY_S:
                last_say = time.time()
                say(f"[prompts {cfg.name}] {src.name}: {done:,}/{total:,} rows, {done / (last_say - t0):,.0f} rows/s, "
                    f"{len(kept):,} kept")
        per_source.append({"name": src.name, "source": src.source, "rows_in": len(rows),
                           "kept": len(rows) - counts["exact"] - counts["near"],
                           "exact_duplicates": counts["exact"], "near_duplicates": counts["near"]})
    seconds = time.time() - t0
    order = {src.name: i for i, (src, _) in enumerate(loaded)}
    names = [src.name for src, _ in loaded]
    pair_rows = [{"kept_source": a, "dropped_source": b, **pairs.get((a, b), {"exact": 0, "near": 0})}
                 for i, a in enumerate(names) for b in names[i:]]
    summary = PoolSummary(
        name=cfg.name, output=OUTPUT, rows_in=total, rows_kept=len(kept),
        exact_duplicates=sum(s["exact_duplicates"] for s in per_source),
        near_duplicates=sum(s["near_duplicates"] for s in per_source),
        dedup_seconds=round(seconds, 2), rows_per_s=round(total / seconds) if seconds > 0 else None,
        near=near.model_dump(), boilerplate_shingles=len(boilerplate), sources=per_source, pairs=pair_rows,
        near_pair_samples=[s for pair in sorted(samples, key=lambda p: (order[p[0]], order[p[1]])) for s in samples[pair]],
    )
    return kept, summary

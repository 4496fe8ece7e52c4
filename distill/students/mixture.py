"""Weighted mixtures of SFT sources (`data.sources`): drawn the same way by `distill train` and `distill mix`.

How a mixture is drawn, all of it seeded by data.shuffle_seed (0 when null):
- Each source loads as `data.source` would (every row checked), in its canonical order (curated sets by trace_id).
- `samples: N` takes exactly N rows of its source: fewer than it holds, a seeded sample without replacement; more,
  every row N // rows times plus a seeded sample without replacement for the remainder.
- `weight: w` sources share the other rows in proportion to their weights. How many rows that is: with
  data.total_samples, it minus the fixed `samples` (largest-remainder rounding: the counts add up exactly, each
  within one row of its share); without, the most that repeats no row of a weighted source: the one that runs out
  first is taken whole, each other gets its share of that, rounded down. So a weighted source is up-sampled only
  when total_samples asks for more rows than the weighted sources hold in proportion.
- The drawn rows are concatenated, then shuffled (unless shuffle_seed is null), then cut to data.max_samples: a
  run stopped by max_steps trains on a prefix, and a uniform shuffle keeps a prefix's shares near the weights.
Each source draws from its own generator, seeded by (seed, its name): adding, dropping or reordering sources leaves
the rows the others draw unchanged.

`distill mix MIX.yaml` writes a mixture as a dataset directory (train-*.parquet with `messages`, `source` and
`source_row`, plus mixture.json), which students then name as their data.source; their summaries still split
rows and tokens by the mixture's sources (students/training_rows.py reads them).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
from datasets import Dataset, concatenate_datasets
from pydantic import BaseModel, Field, field_validator, model_validator

from distill.config import Section, load_config
from distill.errors import UsageError
from distill.progress import fmt_count, fmt_duration, say
from distill.runs import Summary, is_main_process, replacing
from distill.students.config import DataSection, SourceSection
from distill.students.data import TrainingRows, load_messages



class MixedSource(BaseModel):
    """One source of a written mixture: where it came from, what it was asked for and what it gave."""

    name: str
    source: str
    split: str = "train"
    subset: str | None = None
    weight: float | None = None
    samples: int | None = None
    available: int | None = None  # rows the source holds
    rows: int  # rows of the mixture drawn from it
    share: float


class MixtureSummary(Summary):
    FILE = "mixture.json"
    WRITER = "distill mix"

    name: str
    rows: int
    seed: int
    sources: list[MixedSource]
    config: dict


MIXTURE_FILE = MixtureSummary.FILE


def seed_of(data: DataSection) -> int:
    return 0 if data.shuffle_seed is None else data.shuffle_seed


def source_rng(seed: int, name: str) -> np.random.Generator:
    """One source's generator: its draws depend on the seed and its name only."""
    return np.random.default_rng([seed % 2**63, int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")])


def draw(available: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` row indices of a source of `available` rows: whole repeats, then a seeded sample without replacement."""
    repeats, rest = divmod(count, available)
    picked = np.sort(rng.choice(available, size=rest, replace=False)) if rest else np.empty(0, dtype=np.int64)
    return np.concatenate([np.tile(np.arange(available), repeats), picked]).astype(np.int64)


def plan_counts(sources: list[SourceSection], available: list[int], total_samples: int | None) -> list[int]:
    """Rows to draw from each source (module docstring: the rule)."""
    counts = [s.samples or 0 for s in sources]
    weighted = [i for i, s in enumerate(sources) if s.weight is not None]
    if not weighted:
        return counts
    if total_samples is None:  # the source that runs out first is taken whole, the others in proportion to it
        scale = min(available[i] / sources[i].weight for i in weighted if sources[i].weight > 0)
        for i in weighted:  # the epsilon forgives float error in rows / w * w
            counts[i] = min(available[i], math.floor(scale * sources[i].weight + 1e-9))
        return counts
    total_weight = sum(sources[i].weight for i in weighted)
    room = total_samples - sum(counts)
    exact = [room * sources[i].weight / total_weight for i in weighted]
    base = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(weighted)), key=lambda j: (base[j] - exact[j], j))
    for j in by_remainder[:room - sum(base)]:
        base[j] += 1
    for j, i in enumerate(weighted):
        counts[i] = base[j]
    return counts


def _concatenate(parts: list[Dataset]) -> Dataset:
    """One dataset of the sources' rows; messages whose turns carry other keys than role and content (a Hub set's
    extras) are cut to those two, so that the sources' columns agree."""
    if len({json.dumps(p.features.to_dict(), sort_keys=True) for p in parts}) == 1:
        return concatenate_datasets(parts)

    def plain(row):
        return {"messages": [{"role": m["role"], "content": m["content"]} for m in row["messages"]]}

    parts = [p.map(plain, desc="Aligning message columns") for p in parts]
    try:
        return concatenate_datasets(parts)
    except ValueError as exc:
        raise UsageError(f"data.sources: the sources' columns do not agree in type ({str(exc).splitlines()[0]})") from None


def draw_mixture(data: DataSection, extra_columns=()) -> TrainingRows:
    """The mixture `data.sources` describes, drawn (module docstring: how)."""
    seed = seed_of(data)
    loaded = []
    for i, s in enumerate(data.sources):
        loaded.append(load_messages(s.source, s.split, s.subset, s.messages_field, None, None, extra_columns,
                                    key=f"data.sources.{i}.source"))
        if is_main_process():
            say(f"  source {i + 1}/{len(data.sources)} {s.name}: {len(loaded[-1]):,} rows checked")
    available = [len(d) for d in loaded]
    counts = plan_counts(data.sources, available, data.total_samples)
    if not sum(counts):
        raise UsageError("data.sources: the weights leave no row to draw (raise a weight, or set data.total_samples)")
    parts, origin, source_row = [], [], []
    for index, (spec, dataset, count) in enumerate(zip(data.sources, loaded, counts)):
        if count:
            rows = draw(len(dataset), count, source_rng(seed, spec.name))
            parts.append(dataset.select(rows))
            origin.append(np.full(count, index))
            source_row.append(rows)
    dataset, origin, source_row = _concatenate(parts), np.concatenate(origin), np.concatenate(source_row)
    if data.shuffle_seed is not None:
        order = np.random.default_rng(seed % 2**63).permutation(len(dataset))
        dataset, origin, source_row = dataset.select(order), origin[order], source_row[order]
    if data.max_samples is not None and data.max_samples < len(dataset):
        dataset, origin, source_row = (dataset.select(range(data.max_samples)), origin[:data.max_samples],
                                       source_row[:data.max_samples])
    described = [{"name": s.name, "source": s.source, "split": s.split, "subset": s.subset, "weight": s.weight,
                  "samples": s.samples, "available": n} for s, n in zip(data.sources, available)]
    return TrainingRows(dataset, origin, described, source_row)


class MixConfig(Section):
    """students/mixtures/<mix>.yaml: a mixture written once as a dataset, for several students' data.source."""

    name: str
    run_dir: str | None = None  # default: runs/mixtures/<name>
    data: DataSection  # the same block as a student's data section, with data.sources
    shard_rows: int = Field(default=20_000, ge=1)

    @field_validator("data")
    @classmethod
    def _a_mixture(cls, data: DataSection) -> DataSection:
        if data.sources is None:
            raise ValueError("needs data.sources (distill mix writes a mixture of several sources; data.source is one)")
        return data

    @model_validator(mode="after")
    def _defaults(self) -> MixConfig:
        if self.run_dir is None:
            self.run_dir = f"runs/mixtures/{self.name}"
        return self


def write_mixture(cfg: MixConfig) -> Path:
    """Draw the mixture and write it as one dataset directory, swapped in whole (lock held, staging beside it)."""
    started = time.time()
    out = Path(cfg.run_dir)
    inputs = [(f"data.sources.{i}.source", s.source) for i, s in enumerate(cfg.data.sources)]
    with replacing(out, "mix", cfg, "run_dir", inputs) as run:
        staging = run.dir
        rows = draw_mixture(cfg.data)
        say(f"[mix {cfg.name}] {rows.describe()}")
        _write_shards(rows, staging, cfg.shard_rows)
        counts = rows.rows_per_source()
        MixtureSummary(name=cfg.name, rows=len(rows.dataset), seed=seed_of(cfg.data),
                       sources=[MixedSource(**s, rows=n, share=round(n / len(rows.dataset), 4))
                                for s, n in zip(rows.sources, counts)],
                       config=cfg.model_dump(mode="json")).write(staging)
        run.finish(rows=len(rows.dataset), **{f"rows_{s['name']}": n for s, n in zip(rows.sources, counts)})
    say(f"[mix {cfg.name}] done: {fmt_count(len(rows.dataset))} rows from {len(counts)} sources in "
        f"{fmt_duration(time.time() - started)} -> {out} (a student's data.source)")
    return out


def _write_shards(rows: TrainingRows, directory: Path, shard_rows: int) -> None:
    import pyarrow as pa

    from distill.shards import ShardWriter

    names = [s["name"] for s in rows.sources]
    dataset = rows.dataset.select_columns(["messages"]).flatten_indices()
    writer = None
    for start in range(0, len(dataset), 1000):
        table = dataset.with_format("arrow")[start:start + 1000]
        stop = start + table.num_rows
        table = table.append_column("source", pa.array([names[i] for i in rows.origin[start:stop]], pa.string()))
        table = table.append_column("source_row", pa.array(rows.source_row[start:stop], pa.int64()))
        if writer is None:
            writer = ShardWriter(directory, table.schema, prefix="train", digits=5, max_rows=shard_rows)
        writer.write(table)
    writer.close()


def run_mix_command(config_path: str, overrides: list[str]) -> Path:
    """`distill mix MIX.yaml [key=value ...]`."""
    return write_mixture(load_config(config_path, MixConfig, overrides))

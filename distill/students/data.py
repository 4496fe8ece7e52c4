"""Load a chat `messages` dataset for SFT: a local dataset directory, a JSONL/parquet file, or a Hub id; and the
rows a run trains on, with the source of each (`TrainingRows`: students/training_rows.py loads them)."""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import Dataset, load_dataset, load_from_disk

from distill.config import looks_like_local_path
from distill.errors import UsageError
from distill.hub import load_error

ROLES = {"system", "user", "assistant", "tool"}


def _local_files(path: Path, split: str, key: str = "data.source") -> tuple[str, list[str]]:
    """(datasets builder, files) of a local JSONL/parquet file or a directory of them."""
    if not path.is_dir():
        return ("parquet" if path.suffix == ".parquet" else "json"), [str(path)]
    for kind, pattern in (("parquet", "*.parquet"), ("json", "*.jsonl"), ("json", "*.json")):
        files = sorted(str(p) for p in path.rglob(pattern) if not any(part.startswith(".") for part in p.parts))
        if files:
            # Shards named <split>-*.parquet or under <split>/ select a split; otherwise all files are one split.
            return kind, [f for f in files if Path(f).name.startswith(split) or f"/{split}/" in f] or files
    raise UsageError(f"{key}: {path} holds no dataset (no saved dataset, *.parquet or *.jsonl files)")


def _first_bad_line(files: list[str], messages_field: str) -> str | None:
    """Where a JSON Lines file first fails to parse or holds a bad row (datasets' own error names neither)."""
    for name in files:
        if not name.endswith(".jsonl"):
            continue
        with open(name, "rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    return f"{name}:{number}: not UTF-8 text"
                except ValueError as exc:
                    return f"{name}:{number}: invalid JSON ({getattr(exc, 'msg', exc)})"
                if not isinstance(row, dict):
                    return f"{name}:{number}: expected a JSON object per line"
                problem = conversation_problem(row.get(messages_field))
                if problem:
                    return f"{name}:{number}: {problem}"
    return None


def _blank(name: str) -> bool:
    with open(name, "rb") as f:
        return not any(line.strip() for line in f)


def _row_origin(files: list[str], index: int) -> str:
    """'FILE:LINE' (JSON Lines) or 'FILE row N' (parquet) of the dataset's row `index`, in load order."""
    import pyarrow.parquet as pq

    for name in files:
        if name.endswith(".parquet"):
            rows = pq.ParquetFile(name).metadata.num_rows
            if index < rows:
                return f"{name} row {index}"
            index -= rows
            continue
        with open(name, "rb") as f:
            for number, raw in enumerate(f, 1):
                if raw.strip():
                    if index == 0:
                        return f"{name}:{number}"
                    index -= 1
    return f"row {index}"


def load_messages(source: str, split: str = "train", subset: str | None = None, messages_field: str = "messages",
                  max_samples: int | None = None, shuffle_seed: int | None = 0, extra_columns=(), key: str = "data.source") -> Dataset:
    """A dataset with the column `messages` (and `extra_columns`), checked row by row (errors name `key`, the file and
    the line)."""
    files: list[str] = []
    try:
        path = Path(source).expanduser()
        if not looks_like_local_path(source):
            dataset = load_dataset(source, subset, split=split)
        elif path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
            loaded = load_from_disk(str(path))
            dataset = loaded[split] if hasattr(loaded, "keys") else loaded
        else:
            kind, files = _local_files(path, split, key)
            dataset = load_dataset(kind, data_files=files, split="train")
    except UsageError:
        raise
    except Exception as exc:  # datasets raises many types; the user needs the source and the reason
        error = None if files else load_error(key, source, exc, "dataset")
        if error is not None:
            raise error from None
        bad = _first_bad_line(files, messages_field)
        if bad:
            raise UsageError(f"{key}: {bad}") from None
        if files and all(_blank(f) for f in files):
            raise UsageError(f"{key}: {source} (split {split!r}) has no rows (empty file)") from None
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{key}: cannot load {source!r} (split {split!r}): {reason}") from None

    if messages_field not in dataset.column_names:
        raise UsageError(
            f"{key}: {source} has no column {messages_field!r} (columns: {', '.join(dataset.column_names)}); "
            f"set {key.removesuffix('source')}messages_field to the column that holds the chat messages"
        )
    missing = [c for c in extra_columns if c not in dataset.column_names]
    if missing:
        raise UsageError(f"{key}: {source} has no column(s) {', '.join(missing)} (columns: {', '.join(dataset.column_names)})")
    if len(dataset) == 0:
        raise UsageError(f"{key}: {source} (split {split!r}) has no rows")
    check_rows(dataset[messages_field], source, files, messages_field, key)
    if messages_field != "messages":
        dataset = dataset.rename_column(messages_field, "messages")
    if "trace_id" in dataset.column_names:
        # A curated set is written in the order its traces completed, which differs from run to run:
        # a canonical order first makes the seeded shuffle, and so training, depend on the set's content only.
        with warnings.catch_warnings():  # datasets' sort passes pyarrow an option it deprecated; nothing for users to do
            warnings.filterwarnings("ignore", "Specifying null_placement", FutureWarning)
            dataset = dataset.sort("trace_id")
    dataset = dataset.select_columns(["messages", *extra_columns])
    if shuffle_seed is not None:
        dataset = dataset.shuffle(seed=shuffle_seed)
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    return dataset


def check_rows(rows, source: str, files: list[str], messages_field: str, key: str = "data.source") -> None:
    """Every row is a conversation to train on; the first that is not names its file and line (file order)."""
    try:
        for index, row in enumerate(rows):
            problem = conversation_problem(row)
            if problem:
                where = _row_origin(files, index) if files else f"{source} row {index}"
                raise UsageError(f"{key}: {where}: {problem}")
    except UnicodeDecodeError:  # datasets loads some non-UTF-8 lines without complaint, until the text is read
        raise UsageError(f"{key}: {_first_bad_line(files, messages_field) or source + ': not UTF-8 text'}") from None


def conversation_problem(messages) -> str | None:
    """What is wrong with one row's messages for SFT, or None."""
    if not isinstance(messages, list) or not messages:
        return "expected a non-empty list of {role, content} messages"
    for turn in messages:
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or not isinstance(turn.get("content"), str):
            return f"expected messages with a role in {sorted(ROLES)} and string content, got {turn!r:.120}"
    if not any(turn["role"] == "assistant" for turn in messages):
        return "no assistant message to train on"
    return None


def content_digest(dataset: Dataset) -> str:
    """A hash of the rows as they will be trained on (content and order): a curation rewritten at the same
    path is a different dataset, while the same content written again is not."""
    digest = hashlib.sha256()
    for row in dataset["messages"]:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


@dataclass
class TrainingRows:
    """The rows a run trains on, in training order, and the source each came from."""

    dataset: Dataset  # `messages` (and any extra columns asked for)
    origin: np.ndarray  # per row: the index of its source in `sources`
    sources: list[dict] = field(default_factory=list)  # per source: name, source, split (+ available: rows it holds)
    source_row: np.ndarray | None = None  # mixtures: where each row sits in its source (`distill mix` writes it)

    def rows_per_source(self) -> list[int]:
        return np.bincount(self.origin, minlength=len(self.sources)).tolist()

    def describe(self) -> str:
        """'N rows' of one source, or 'N rows from K sources: a n (s%), ...' of a mixture."""
        total = len(self.dataset)
        if len(self.sources) == 1:
            return f"{self.sources[0]['source']}, {total:,} rows"
        parts = [f"{s['name']} {n:,} ({100 * n / max(total, 1):.1f}%)" for s, n in zip(self.sources, self.rows_per_source())]
        return f"{total:,} rows from {len(self.sources)} sources: {', '.join(parts)}"

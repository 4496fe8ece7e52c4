"""Load a chat `messages` dataset for SFT: a local dataset directory, a JSONL/parquet file, or a Hub id."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

from datasets import Dataset, load_dataset, load_from_disk

from distill.config import looks_like_local_path
from distill.errors import UsageError

ROLES = {"system", "user", "assistant", "tool"}


def _load_local(path: Path, split: str) -> Dataset:
    if path.is_dir():
        if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
            loaded = load_from_disk(str(path))
            return loaded[split] if hasattr(loaded, "keys") else loaded
        for kind, pattern in (("parquet", "*.parquet"), ("json", "*.jsonl"), ("json", "*.json")):
            files = sorted(str(p) for p in path.rglob(pattern) if not any(part.startswith(".") for part in p.parts))
            if files:
                # Shards named <split>-*.parquet or under <split>/ select a split; otherwise all files are one split.
                chosen = [f for f in files if Path(f).name.startswith(split) or f"/{split}/" in f] or files
                return load_dataset(kind, data_files=chosen, split="train")
        raise UsageError(f"data.source: {path} holds no dataset (no saved dataset, *.parquet or *.jsonl files)")
    kind = "parquet" if path.suffix == ".parquet" else "json"
    return load_dataset(kind, data_files=str(path), split="train")


def load_messages(source: str, split: str = "train", subset: str | None = None, messages_field: str = "messages",
                  max_samples: int | None = None, shuffle_seed: int | None = 0, extra_columns=()) -> Dataset:
    """A dataset with the column `messages` (and `extra_columns`), checked row by row (errors name the source and row)."""
    try:
        if looks_like_local_path(source):
            dataset = _load_local(Path(source).expanduser(), split)
        else:
            dataset = load_dataset(source, subset, split=split)
    except UsageError:
        raise
    except Exception as exc:  # datasets raises many types; the user needs the source and the reason
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"data.source: cannot load {source!r} (split {split!r}): {reason}") from None

    if messages_field not in dataset.column_names:
        raise UsageError(
            f"data.source: {source} has no column {messages_field!r} (columns: {', '.join(dataset.column_names)}); "
            "set data.messages_field"
        )
    missing = [c for c in extra_columns if c not in dataset.column_names]
    if missing:
        raise UsageError(f"data.source: {source} has no column(s) {', '.join(missing)} (columns: {', '.join(dataset.column_names)})")
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
    for index, row in enumerate(dataset["messages"]):
        check_conversation(row, source, index)
    if len(dataset) == 0:
        raise UsageError(f"data.source: {source} (split {split!r}) has no rows")
    return dataset


def check_conversation(messages, source: str, index: int) -> None:
    where = f"data.source: {source}: row {index}"
    if not isinstance(messages, list) or not messages:
        raise UsageError(f"{where}: expected a non-empty list of {{role, content}} messages")
    for turn in messages:
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or not isinstance(turn.get("content"), str):
            raise UsageError(f"{where}: expected messages with a role in {sorted(ROLES)} and string content, got {turn!r:.120}")
    if not any(turn["role"] == "assistant" for turn in messages):
        raise UsageError(f"{where}: no assistant message to train on")


def content_digest(dataset: Dataset) -> str:
    """A hash of the rows as they will be trained on (content and order): a curation rewritten at the same
    path is a different dataset, while the same content written again is not."""
    digest = hashlib.sha256()
    for row in dataset["messages"]:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]

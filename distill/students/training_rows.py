"""The rows a student trains on: one dataset, a mixture `distill mix` wrote (its rows still counted by source), or a
mixture drawn from data.sources (students/mixture.py); and, for the run's summary, the rows and tokens per source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datasets import Dataset

from distill.errors import UsageError
from distill.progress import say
from distill.students.config import DataSection
from distill.students.data import TrainingRows, load_messages
from distill.students.mixture import MIXTURE_FILE, MixedSource, MixtureSummary, draw_mixture
from distill.students.summary import SourceUsage


def training_rows(data: DataSection, extra_columns=()) -> TrainingRows:
    """What a student trains on: one source (a mixture `distill mix` wrote counts its own sources) or a mixture."""
    if data.sources is not None:
        return draw_mixture(data, extra_columns)
    written = _written_mixture(data.source)
    columns = (*extra_columns, "source") if written and "source" not in extra_columns else tuple(extra_columns)
    dataset = load_messages(data.source, data.split, data.subset, data.messages_field, data.max_samples,
                            data.shuffle_seed, extra_columns=columns)
    if not written:
        return TrainingRows(dataset, np.zeros(len(dataset), dtype=np.int64),
                            [{"name": data.source, "source": data.source, "split": data.split}])
    index = {s.name: i for i, s in enumerate(written)}
    origin = np.array([index.get(name, -1) for name in dataset["source"]], dtype=np.int64)
    if (origin < 0).any():
        raise UsageError(f"data.source: {data.source}: rows name a source that {MIXTURE_FILE} does not list")
    if "source" not in extra_columns:
        dataset = dataset.remove_columns("source")
    return TrainingRows(dataset, origin, [{"name": s.name, "source": s.source, "split": s.split} for s in written])


def _written_mixture(source: str) -> list[MixedSource] | None:
    """The sources listed by the mixture.json of a directory `distill mix` wrote, else None."""
    directory = Path(source).expanduser()
    if not (directory / MIXTURE_FILE).is_file():
        return None
    try:
        return MixtureSummary.read(directory).sources
    except UsageError as exc:
        raise UsageError(f"data.source: {exc}; run distill mix again") from None


def row_tokens(dataset: Dataset, tokenizer, chat_template: str | None, max_length: int, num_proc: int | None) -> np.ndarray | None:
    """Tokens of each row's conversation in the student's chat template, cut at max_length: the length it trains at."""
    def count(batch):
        ids = tokenizer.apply_chat_template(batch["messages"], chat_template=chat_template, tokenize=True, return_dict=False)
        return {"tokens": [min(len(row), max_length) for row in ids]}

    try:
        counted = dataset.select_columns(["messages"]).map(count, batched=True, batch_size=256, remove_columns=["messages"],
                                                           num_proc=num_proc, desc="Counting tokens per source")
    except Exception as exc:  # a template that renders for training renders here; if not, the rows are still counted
        say(f"tokens per source not counted: the chat template did not render ({str(exc).splitlines()[0] if str(exc) else exc!r})")
        return None
    return np.asarray(counted["tokens"], dtype=np.int64)


def source_usage(rows: TrainingRows, tokens: np.ndarray | None) -> list[SourceUsage]:
    """Per source: rows and tokens trained on (one pass over the training rows), and their shares."""
    counts = rows.rows_per_source()
    per_source = np.bincount(rows.origin, weights=tokens, minlength=len(rows.sources)) if tokens is not None else None
    total_rows = max(sum(counts), 1)
    total_tokens = max(float(per_source.sum()), 1.0) if per_source is not None else None
    return [SourceUsage(name=s["name"], source=s["source"], split=s["split"], rows=n, share=round(n / total_rows, 4),
                        tokens=int(per_source[i]) if per_source is not None else None,
                        token_share=round(float(per_source[i]) / total_tokens, 4) if per_source is not None else None)
            for i, (s, n) in enumerate(zip(rows.sources, counts))]

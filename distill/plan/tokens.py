"""Tokens a student run trains on, per epoch: from the data's own token counts, the curation summary, or the data
tokenised with the student's tokenizer; else unknown, with what to run to know."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.config import looks_like_local_path


@dataclass
class TokenCount:
    tokens: int | None  # per epoch
    traces: int | None
    source: str  # how it was counted, or what to run

    @property
    def mean_trace(self) -> float | None:
        return self.tokens / self.traces if self.tokens and self.traces else None


def _curation_dir(path: Path) -> Path | None:
    from distill.curate.summary import CurationSummary

    for directory in (path, path.parent):
        if (directory / CurationSummary.FILE).is_file():
            return directory
    return None


def _parquet_counts(path: Path) -> tuple[int, int] | None:
    """(prompt + completion tokens, rows) of curated train shards, which carry the teacher's token counts."""
    import pyarrow.parquet as pq

    files = [path] if path.is_file() else sorted(path.glob("train-*.parquet"))
    if not files or not all(f.suffix == ".parquet" for f in files):
        return None
    if not all({"prompt_tokens", "completion_tokens"} <= set(pq.read_schema(f).names) for f in files):
        return None
    tokens = rows = 0
    for f in files:
        table = pq.read_table(f, columns=["prompt_tokens", "completion_tokens"])
        tokens += sum(v or 0 for v in table.column("prompt_tokens").to_pylist())
        tokens += sum(v or 0 for v in table.column("completion_tokens").to_pylist())
        rows += table.num_rows
    return tokens, rows


def _tokenised(model_path: str, source: str, split: str, subset: str | None, messages_field: str) -> tuple[int, int] | None:
    """Tokens of the data as the student's own chat template and tokenizer see them (a local model only)."""
    from distill.students.data import load_messages

    model = Path(model_path).expanduser()
    if not (model / "tokenizer_config.json").is_file() and not (model / "tokenizer.json").is_file():
        return None
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    if tokenizer.chat_template is None:
        return None
    dataset = load_messages(source, split, subset, messages_field)
    ids = tokenizer.apply_chat_template(list(dataset[messages_field]), tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    return sum(len(row) for row in ids), len(ids)


def count_source(source: str, model_path: str, split: str = "train", subset: str | None = None,
                 messages_field: str = "messages") -> TokenCount:
    """Tokens and traces of one dataset: the curated shards' token counts, else curation.json, else the data
    tokenised with a local student's tokenizer; else unknown, saying what to run."""
    path = Path(source).expanduser()
    if not looks_like_local_path(source):
        return TokenCount(None, None, f"unknown: {source} is a Hub dataset; pass --tokens N (plan reads no Hub data)")
    if not path.exists():
        return TokenCount(None, None, f"unknown: {source} does not exist yet; run `distill curate teacher/runs/<run>.yaml` "
                                      "first (its curation.json gives the tokens), or pass --tokens N")
    parquet = _parquet_counts(path)
    if parquet:
        return TokenCount(parquet[0], parquet[1], f"prompt + completion tokens of the {parquet[1]} traces in {source} "
                                                  "(the teacher's token counts)")
    curated = _curation_dir(path)
    if curated is not None:
        from distill.curate.summary import CurationSummary

        summary = CurationSummary.read(curated)
        return TokenCount(summary.tokens_kept, summary.accepted,
                          f"tokens_kept of {curated / CurationSummary.FILE} (completion tokens of the {summary.accepted} "
                          "kept traces; prompts not counted)")
    counted = _tokenised(model_path, source, split, subset, messages_field)
    if counted:
        return TokenCount(counted[0], counted[1], f"{source} tokenised with {model_path}'s chat template")
    return TokenCount(None, None, f"unknown: {source} has no curation.json or token counts, and the tokenizer is not "
                                  "local; pass --tokens N")


def count_tokens(cfg, override: int | None = None) -> TokenCount:
    """Per-epoch tokens of `cfg` (a StudentConfig): one dataset capped by data.max_samples, or a mixture drawn as
    distill.students.mixture draws it (rows per source x that source's mean trace)."""
    if override is not None:
        return TokenCount(override, None, "--tokens on the command line")
    data, model = cfg.data, cfg.model.name_or_path
    if getattr(data, "sources", None):
        return _mixture(data, model)
    count = count_source(data.source, model, data.split, data.subset, data.messages_field)
    cap = data.max_samples
    if count.tokens and count.traces and cap and cap < count.traces:
        return TokenCount(round(count.tokens * cap / count.traces), cap, f"{count.source}, scaled to data.max_samples {cap}")
    return count


def _mixture(data, model: str) -> TokenCount:
    from distill.students.mixture import plan_counts

    counts = [count_source(s.source, model, s.split, s.subset, s.messages_field) for s in data.sources]
    missing = [(s, c) for s, c in zip(data.sources, counts) if not (c.tokens and c.traces)]
    if missing:
        absent = [s.source for s, c in missing if "does not exist yet" in c.source]
        other = [f"{s.name}: {c.source}" for s, c in missing if "does not exist yet" not in c.source]
        said = ([f"not there yet: {', '.join(absent)} (run `distill curate` for each; its curation.json gives the tokens)"]
                if absent else []) + other
        return TokenCount(None, None, "unknown for the mixture: " + "; ".join(said) + "; or pass --tokens N")
    rows = plan_counts(data.sources, [c.traces for c in counts], data.total_samples)
    tokens = round(sum(r * c.mean_trace for r, c in zip(rows, counts)))
    parts = ", ".join(f"{s.name} {r:,} rows x {c.mean_trace:,.0f}" for s, r, c in zip(data.sources, rows, counts))
    return TokenCount(tokens, sum(rows), f"mixture of data.sources as drawn: {parts} tokens")

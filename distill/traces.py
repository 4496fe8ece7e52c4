"""The trace: one sample of one prompt, the record that flows through every stage.

Traces are stored as parquet shards under a run directory, each written atomically. A shard is
immutable once written; resuming appends new shards. Reading deduplicates by (prompt_id,
sample_index), keeping a successful sample over a failed try of the same pair.

Every shard is checked against SCHEMA when it is opened: an unreadable shard, a missing column or a
null key is a DamagedShard error naming the shard and the fix, never rows of nulls.

The trace is stored as it is used: the prompt's messages, the sampling parameters and the reference tests are
nested columns. `metadata` stays a JSON string: it holds whatever other fields a prompt source has (keys and value
types differ from one source to the next), which no fixed struct can hold and a map would force into one type.
Shards of the earlier schema (those three columns as JSON strings, and a `final_answer` column) are converted as
they are read, so old runs resume and curate as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distill.errors import DistillError
from distill.shards import ShardWriter
from distill.verify.reasoning import split_reasoning
from distill.verify.stored_tests import stored_tests

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
SAMPLING = pa.struct([("n", pa.int64()), ("temperature", pa.float64()), ("top_p", pa.float64()),
                      ("max_tokens", pa.int64()), ("seed", pa.int64()), ("top_logprobs", pa.int64())])
# One row per test. testtype stdin | functional (LiveCodeBench {input, output, testtype}; null where the test has
# no testtype), assert (`code` is one assert statement), check (`code` is a check(candidate) program, run on the
# entry point in metadata), json (`code` is tests of any other form, as JSON, handed to the verifier as they are).
TESTS = pa.list_(pa.struct([("testtype", pa.string()), ("input", pa.string()), ("output", pa.string()),
                            ("code", pa.string())]))

SCHEMA = pa.schema([
    ("trace_id", pa.string()),
    ("prompt_id", pa.string()),
    ("source", pa.string()),
    ("prompt_messages", MESSAGES),
    ("answer", pa.string()),  # reference answer, if any
    ("tests", TESTS),  # reference tests, if any (see `stored_tests`)
    ("metadata", pa.string()),  # JSON: other fields of the prompt source (difficulty, ...)
    ("teacher", pa.string()),
    ("engine", pa.string()),
    ("sampling", SAMPLING),
    ("sample_index", pa.int32()),
    ("status", pa.string()),  # ok | failed
    ("error", pa.string()),
    ("response", pa.string()),
    ("reasoning", pa.string()),  # the response before its last </think> (`split_reasoning`), for the language filter
    ("finish_reason", pa.string()),
    ("prompt_tokens", pa.int32()),
    ("completion_tokens", pa.int32()),
    ("latency_s", pa.float32()),
    ("created", pa.float64()),
    ("endpoint", pa.string()),
    # Optional, for logit distillation (sampling.top_logprobs = k): the sampled token ids, and per token the k most
    # likely ids and their logprobs, flattened row-major (token i's k entries at [i*k, (i+1)*k); id -1: no entry).
    # 4 + 6k bytes per token before compression (int32 ids, float16 logprobs): 124 for k = 20.
    ("token_ids", pa.list_(pa.int32())),
    ("logprob_ids", pa.list_(pa.int32())),
    ("logprobs", pa.list_(pa.float16())),
])
LOGPROB_COLUMNS = ["token_ids", "logprob_ids", "logprobs"]
# Every other column must be in a shard. The logprob columns may be absent (shards from before they existed):
# absent means none were stored, which is what nulls say.
REQUIRED_COLUMNS = [name for name in SCHEMA.names if name not in LOGPROB_COLUMNS]
KEY_COLUMNS = ["prompt_id", "sample_index", "status"]
STATUSES = {"ok", "failed"}
# The prompt as stored in a trace: a prompt whose text changes changes these.
PROMPT_COLUMNS = ["prompt_messages", "answer", "tests", "metadata"]


class DamagedShard(DistillError):
    """A trace shard that cannot be read, or does not fit SCHEMA."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: damaged trace shard ({reason}); `distill generate RUN.yaml repair=true` moves it to "
                         f"{Path(path).parent / 'damaged'}/ and generates its samples again")


@dataclass
class Trace:
    prompt_id: str
    source: str
    prompt_messages: list[dict]
    sample_index: int
    teacher: str
    engine: str
    sampling: dict
    status: str = "ok"
    error: str | None = None
    response: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    created: float | None = None
    endpoint: str | None = None
    answer: str | None = None
    tests: Any = None
    metadata: dict = field(default_factory=dict)
    token_ids: list[int] | None = None
    top_logprob_ids: list[list[int]] | None = None
    top_logprobs: list[list[float]] | None = None

    def to_row(self) -> dict:
        row = asdict(self)
        top_ids, top_values = row.pop("top_logprob_ids"), row.pop("top_logprobs")
        row["logprob_ids"], row["logprobs"] = flatten_top_k(top_ids, top_values)
        row.update(
            trace_id=f"{self.prompt_id}/{self.sample_index}",
            **stored_prompt(self.prompt_messages, self.answer, self.tests, self.metadata),
            reasoning=split_reasoning(self.response)[0] if self.response is not None else None,
        )
        return row


def stored_prompt(messages: list[dict], answer: str | None, tests: Any, metadata: dict) -> dict:
    """The PROMPT_COLUMNS of a trace row, as stored (and as read back)."""
    return {"prompt_messages": [{"role": m["role"], "content": m["content"]} for m in messages], "answer": answer,
            "tests": stored_tests(tests), "metadata": json.dumps(metadata, ensure_ascii=False)}


def prompt_digest(row: dict) -> str:
    """A hash of a row's PROMPT_COLUMNS: equal for every trace of one prompt text."""
    return hashlib.sha256(json.dumps([row[c] for c in PROMPT_COLUMNS]).encode()).hexdigest()[:16]


def storable_row(trace: Trace) -> dict:
    """`trace.to_row()`, checked against SCHEMA; a trace whose answer does not fit is stored as a failed sample
    with the reason instead, so that writing a shard never fails on a row (and never loses the others)."""
    try:
        row = trace.to_row()
        pa.Table.from_pylist([row], schema=SCHEMA)
        return row
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        failed = replace(trace, status="failed", error=f"answer does not fit the trace schema: {reason}", response=None,
                         finish_reason=None, prompt_tokens=None, completion_tokens=None, token_ids=None,
                         top_logprob_ids=None, top_logprobs=None)
        return failed.to_row()


def flatten_top_k(ids: list[list[int]] | None, values: list[list[float]] | None) -> tuple[list[int] | None, np.ndarray | None]:
    """Per-token top-k lists -> flat row-major (ids, float16 logprobs), k = the longest list; shorter ones padded (-1, -inf)."""
    if ids is None or values is None:
        return None, None
    k = max((len(step) for step in ids), default=0)
    flat_ids = np.full((len(ids), k), -1, dtype=np.int32)
    flat_values = np.full((len(ids), k), -np.inf, dtype=np.float16)
    for i, (step_ids, step_values) in enumerate(zip(ids, values)):
        flat_ids[i, :len(step_ids)] = step_ids
        flat_values[i, :len(step_values)] = step_values
    return flat_ids.ravel().tolist(), flat_values.ravel()


def top_k_arrays(token_ids, logprob_ids, logprobs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A row's stored logprob columns -> (sampled ids (n,), top ids (n, k), top logprobs (n, k) as float32)."""
    sampled = np.asarray(token_ids, dtype=np.int64)
    ids = np.asarray(logprob_ids, dtype=np.int64)
    n = len(sampled)
    if n == 0 or len(ids) % n:
        raise ValueError(f"{len(ids)} stored top-k ids for {n} tokens: not a multiple")
    k = len(ids) // n
    return sampled, ids.reshape(n, k), np.asarray(logprobs, dtype=np.float32).reshape(n, k)


SHARD = re.compile(r"^shard-(\d{6})\.parquet$")


def write_traces(directory: str | Path, traces: list[Trace]) -> Path | None:
    """`traces` as one new shard in `directory` (None when there are none)."""
    return ShardWriter(directory, SCHEMA).write_rows([t.to_row() for t in traces])


def shard_paths(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if SHARD.match(p.name))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def open_shard(path: Path) -> pq.ParquetFile:
    """The shard, once its footer reads and it has every required column; else DamagedShard."""
    try:
        file = pq.ParquetFile(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        raise DamagedShard(path, _first_line(exc)) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in file.schema_arrow.names]
    if missing:
        raise DamagedShard(path, f"no column {', '.join(missing)}")
    return file


# Columns that shards of the earlier schema hold as JSON strings: their JSON value -> the column's value.
FROM_JSON = {"prompt_messages": lambda messages: messages, "sampling": lambda sampling: sampling, "tests": stored_tests}


def _from_json(name: str, column: pa.Array | pa.ChunkedArray, type: pa.DataType) -> pa.Array:
    values = [None if text in (None, "", "null") else FROM_JSON[name](json.loads(text)) for text in column.to_pylist()]
    return pa.array(values, type)


def _conform(path: Path, data: pa.Table | pa.RecordBatch, fields: list[pa.Field]) -> list[pa.Array]:
    """`data`'s columns as `fields` (absent logprob columns as nulls, earlier JSON columns converted), keys checked;
    else DamagedShard."""
    arrays = []
    for f in fields:
        if f.name not in data.schema.names:
            arrays.append(pa.nulls(data.num_rows, f.type))
            continue
        column = data.column(f.name)
        try:
            if f.name in FROM_JSON and pa.types.is_string(column.type):
                arrays.append(_from_json(f.name, column, f.type))
            else:
                arrays.append(column.cast(f.type))
        except (pa.ArrowException, ValueError, TypeError, KeyError) as exc:
            raise DamagedShard(path, f"column {f.name}: {_first_line(exc)}") from None
    for f, array in zip(fields, arrays):
        if f.name in KEY_COLUMNS and array.null_count:
            raise DamagedShard(path, f"{array.null_count} rows without {f.name}")
        if f.name == "status":
            unknown = set(pc.unique(array).to_pylist()) - STATUSES
            if unknown:
                raise DamagedShard(path, f"status {sorted(unknown)[0]!r}, expected ok or failed")
    return arrays


def read_shard(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One shard, checked, with SCHEMA's types."""
    fields = [SCHEMA.field(c) for c in (columns or SCHEMA.names)]
    file = open_shard(path)
    present = [f.name for f in fields if f.name in file.schema_arrow.names]
    try:
        table = file.read(columns=present)
    except (pa.ArrowException, OSError) as exc:
        raise DamagedShard(path, _first_line(exc)) from None
    return pa.Table.from_arrays(_conform(path, table, fields), schema=pa.schema(fields))


def read_table(directory: str | Path, columns: list[str] | None = None) -> pa.Table:
    """All shards as one table (every try, failed ones included), in write order."""
    paths = shard_paths(directory)
    if not paths:
        return SCHEMA.empty_table() if columns is None else SCHEMA.empty_table().select(columns)
    return pa.concat_tables(read_shard(p, columns) for p in paths)


def find_damaged(directory: str | Path) -> list[tuple[Path, str]]:
    """(shard, reason) for every shard that does not read whole and fit SCHEMA."""
    damaged = []
    for path in shard_paths(directory):
        try:
            read_shard(path)
        except DamagedShard as exc:
            damaged.append((path, exc.reason))
    return damaged


def move_aside(path: Path) -> Path:
    """Move a damaged shard to `damaged/` beside it (out of every read), under a name not yet taken there."""
    target = path.parent / "damaged" / path.name
    target.parent.mkdir(exist_ok=True)
    number = 0
    while target.exists():
        number += 1
        target = target.with_name(f"{path.name}.{number}")
    os.replace(path, target)
    return target


def prompt_digests(directory: str | Path) -> dict[str, set[str]]:
    """prompt_id -> the digests of its stored prompt text (one, unless the source changed under the run)."""
    digests: dict[str, set[str]] = {}
    for path in shard_paths(directory):
        table = read_shard(path, ["prompt_id", *PROMPT_COLUMNS])
        first: dict[str, int] = {}  # one row per prompt and shard: a shard is written by one run, with one text
        for index, prompt_id in enumerate(table.column("prompt_id").to_pylist()):
            first.setdefault(prompt_id, index)
        for row in table.take(list(first.values())).to_pylist():
            digests.setdefault(row["prompt_id"], set()).add(prompt_digest(row))
    return digests


def latest_rank(directory: str | Path) -> np.ndarray:
    """The latest try of each sample: for every stored row (all shards, in write order) its index among the
    chosen rows, or -1 if another try of its (prompt_id, sample_index) is chosen.

    The last ok try, else the last failed one; the chosen rows listed in order of first appearance of their
    pair. Computed on three columns, so that the heavy ones can be streamed afterwards.
    """
    table = read_table(directory, columns=["prompt_id", "sample_index", "status"])
    n = table.num_rows
    position = np.arange(n, dtype=np.int64)
    ok = pc.fill_null(pc.equal(table.column("status"), "ok"), False).to_numpy(zero_copy_only=False)
    keyed = pa.table({"prompt_id": table.column("prompt_id"), "sample_index": table.column("sample_index"),
                      "preference": position + n * ok, "position": position})
    groups = keyed.group_by(["prompt_id", "sample_index"], use_threads=False).aggregate(
        [("preference", "max"), ("position", "min")])
    preference = groups.column("preference_max").to_numpy()
    chosen = np.where(preference >= n, preference - n, preference)
    chosen = chosen[np.argsort(groups.column("position_min").to_numpy(), kind="stable")]
    rank = np.full(n, -1, dtype=np.int64)
    rank[chosen] = np.arange(len(chosen))
    return rank


def latest_rows(directory: str | Path, columns: list[str] | None = None) -> list[dict]:
    """The rows `latest_rank` chooses, in its order, with `columns` (default all)."""
    rank = latest_rank(directory)
    chosen = np.flatnonzero(rank >= 0)
    return read_table(directory, columns).take(chosen[np.argsort(rank[chosen])]).to_pylist()


def iter_batches(directory: str | Path, columns: list[str] | None = None,
                 batch_size: int = 4096) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(row number of its first row over all shards, batch), shard by shard in write order, with SCHEMA's types.

    Logprob columns that older shards lack come back as nulls; any other missing column is a DamagedShard.
    """
    fields = [SCHEMA.field(c) for c in (columns or SCHEMA.names)]
    start = 0
    for path in shard_paths(directory):
        file = open_shard(path)
        present = [f.name for f in fields if f.name in file.schema_arrow.names]
        batches = file.iter_batches(batch_size=batch_size, columns=present)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (pa.ArrowException, OSError) as exc:
                raise DamagedShard(path, _first_line(exc)) from None
            yield start, pa.RecordBatch.from_arrays(_conform(path, batch, fields), schema=pa.schema(fields))
            start += batch.num_rows


def done_pairs(directory: str | Path) -> set[tuple[str, int]]:
    """(prompt_id, sample_index) pairs that already have a successful sample."""
    table = read_table(directory, columns=["prompt_id", "sample_index", "status"])
    return {(p, i) for p, i, s in zip(*(table.column(c).to_pylist() for c in ("prompt_id", "sample_index", "status")))
            if s == "ok"}

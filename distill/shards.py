"""The project's one shard writer: parquet files <prefix>-NNN.parquet in a directory, each appearing whole or not at all.

Generation writes one shard per flush (`write_rows`), curation streams batches into files of at most `max_rows`
rows (`write`, then `close`), the verdict cache flushes like generation. A shard is written under a hidden
temporary name (`.<name>.tmp`), with page checksums (readers verify them), fsynced, then renamed: a crash never
leaves a half-written file under a shard's name, and the temporary files it leaves are removed by the next writer.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


class ShardWriter:
    """Shards `<prefix>-<index, `digits` wide><tag>.parquet`, numbered after those already in `directory`."""

    def __init__(self, directory: str | Path, schema: pa.Schema, prefix: str = "shard", digits: int = 6,
                 max_rows: int | None = None, tag: str = ""):
        self.dir, self.schema, self.prefix, self.digits, self.max_rows, self.tag = (
            Path(directory), schema, prefix, digits, max_rows, tag)
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(f".{prefix}-*.tmp"):  # left by a crash in the middle of a write
            stale.unlink()
        taken = re.compile(rf"^{re.escape(prefix)}-(\d{{{digits}}})(?:-[^.]*)?\.parquet$")
        numbers = [int(m.group(1)) for p in self.dir.iterdir() if (m := taken.match(p.name))]
        self.next_index = max(numbers, default=-1) + 1
        self.written: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0  # in the open shard

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        """Append rows to the open shard (opening one as needed); a shard that reaches `max_rows` is ended."""
        while data.num_rows:
            if self._writer is None:
                self._open()
            room = data.num_rows if self.max_rows is None else self.max_rows - self._rows
            part = data.slice(0, room)
            if isinstance(part, pa.Table):
                self._writer.write_table(part)
            else:
                self._writer.write_batch(part)
            self._rows += part.num_rows
            data = data.slice(part.num_rows)
            if self.max_rows is not None and self._rows == self.max_rows:
                self.end_shard()

    def write_rows(self, rows: list[dict]) -> Path | None:
        """`rows` as one whole shard (None when there are none)."""
        if not rows:
            return None
        self.write(pa.Table.from_pylist(rows, schema=self.schema))
        return self.end_shard()

    def end_shard(self) -> Path | None:
        """Close the open shard and put it under its name; the path, or None when none was open."""
        if self._writer is None:
            return None
        self._writer.close()
        self._writer = None
        with open(self._tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp, self._path)
        self.written.append(self._path)
        return self._path

    def close(self, keep_empty: bool = False) -> list[Path]:
        """End the open shard; with `keep_empty`, a writer that wrote nothing leaves one empty shard (the schema:
        the split exists, with no rows). The shards written, in order."""
        if keep_empty and not self.written and self._writer is None:
            self._open()
        self.end_shard()
        return self.written

    def _open(self) -> None:
        name = f"{self.prefix}-{self.next_index:0{self.digits}d}{self.tag}"
        self._path, self._tmp = self.dir / f"{name}.parquet", self.dir / f".{name}.tmp"
        self._writer = pq.ParquetWriter(self._tmp, self.schema, write_page_checksum=True)
        self.next_index += 1
        self._rows = 0

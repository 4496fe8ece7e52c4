"""Atomic writes: a crash never leaves a half-written file that looks whole."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from distill.errors import UsageError


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_write_yaml(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def atomic_write_parquet(table, path: str | Path) -> Path:
    """Write a pyarrow table to a hidden temporary file beside `path`, fsync it, then rename it."""
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp")
    pq.write_table(table, tmp, write_page_checksum=True)  # readers verify it: a flipped bit is an error, not data
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def replace_dir(staging: str | Path, final: str | Path) -> Path:
    """Move a fully written `staging` directory to `final`, replacing any previous one.

    The old directory is renamed aside first and removed only after the new one is in place, so
    at every moment `final` is either the old complete directory or the new complete one.
    """
    staging, final = Path(staging), Path(final)
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    if old.exists():
        shutil.rmtree(old)
    return final


def staging_dir_for(final: str | Path) -> Path:
    """A fresh empty directory beside `final`, for writing before `replace_dir`."""
    final = Path(final)
    staging = final.with_name(f".{final.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def read_utf8(path: str | Path, what: str, advice: str) -> str:
    """The text of `path`; UsageError naming `what` (a config key, or "" for the file alone), the file, the
    line and the column of the first byte that is not UTF-8, then `advice`."""
    path = Path(path)
    prefix = f"{what}: " if what else ""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{prefix}{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise UsageError(f"{prefix}{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column}); "
                         f"{advice}") from None


def text_lines(path: str | Path):
    """(line number, text) for each line of a UTF-8 file; a missing file, a directory or bytes that are not
    UTF-8 raise UsageError naming the file and the line."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UsageError(f"{path}:{number}: not UTF-8 text (byte {exc.start + 1}; expected JSON lines)") from None
            yield number, text


def check_output_path(out: str | Path, *inputs: str | Path) -> None:
    """UsageError when `out` cannot take a file, or is one of the inputs (the same path, or a link to it)."""
    if os.path.isdir(out):
        raise UsageError(f"--out {out} is a directory; name a file")
    for path in inputs:
        if os.path.exists(out) and os.path.exists(path) and os.path.samefile(out, path):
            raise UsageError(f"--out {out} is the input {path}: writing the output would destroy the input; "
                             "choose another --out")
